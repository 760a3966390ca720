package crypto_test

import (
	"bytes"
	"fmt"
	"io"
	"log"

	"github.com/iambilly/billy/internal/crypto"
)

func Example() {
	// BILLY_MASTER_KEY: the current key first, then keys that only read older blobs.
	kr, err := crypto.ParseKeyring("k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=")
	if err != nil {
		log.Fatal(err)
	}
	var blob bytes.Buffer
	w := crypto.NewWriter(&blob, kr)
	if _, err := io.WriteString(w, "encounter audio bytes"); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	r, err := crypto.NewReader(bytes.NewReader(blob.Bytes()), int64(blob.Len()), kr)
	if err != nil {
		log.Fatal(err)
	}
	part := make([]byte, 5)
	if _, err := r.ReadAt(part, 10); err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Size(), r.KeyID(), string(part))
	// Output: 21 k2 audio
}
