package coder_test

import (
	"fmt"

	"github.com/iambilly/billy/pipeline/coder"
)

func ExampleTimeCode() {
	fmt.Println(coder.TimeCode(35, true), coder.TimeCode(62, false), coder.TimeCode(8, true) == "")
	// Output: 99214 99205 true
}
