package rest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/fhirpath"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/schema"
)

// patchOp is one operation of a FHIRPath Patch (fhirpatch.html).
type patchOp struct {
	n                   int
	typ                 string // add, insert, delete, replace, move
	path                *fhirpath.Expr
	name                string
	value               *jsontree.Value // JSON value to write
	valueType           string          // the value[x] type suffix, "" for a part-built value
	index, source, dest int
}

// fhirPathPatcher validates a FHIRPath Patch Parameters resource and compiles its operations.
func (s *Server) fhirPathPatcher(params *jsontree.Value) (patcher, error) {
	if err := s.validator.Validate(params.Marshal()); err != nil {
		return nil, err
	}
	var ops []patchOp
	for i, p := range parameters(params) {
		at := fmt.Sprintf("Parameters.parameter[%d]", i)
		if p.GetString("name") != "operation" {
			return nil, fhir.Invalid("value", at+".name", "a FHIRPath Patch has only parameters named operation, not %q", p.GetString("name"))
		}
		op, err := parsePatchOp(i, p, at)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		return nil, fhir.Invalid("required", "Parameters.parameter", "the FHIRPath Patch has no operations")
	}
	return func(tree *jsontree.Value) (*jsontree.Value, error) {
		for _, op := range ops {
			if err := op.apply(tree); err != nil {
				return nil, fhir.Errorf(fhir.ErrUnprocessable, "processing", "FHIRPath Patch operation %d (%s %s): %v", op.n, op.typ, op.path, err).
					At(fmt.Sprintf("Parameters.parameter[%d]", op.n))
			}
		}
		return tree, nil
	}, nil
}

func parsePatchOp(i int, p *jsontree.Value, at string) (patchOp, error) {
	op := patchOp{n: i, index: -1, source: -1, dest: -1}
	parts := p.Get("part")
	if parts == nil {
		return op, fhir.Invalid("required", at+".part", "operation %d has no parts", i)
	}
	var pathStr string
	for _, part := range parts.Items {
		name := part.GetString("name")
		switch name {
		case "type":
			op.typ = part.GetString("valueCode")
		case "path":
			pathStr = part.GetString("valueString")
		case "name":
			op.name = part.GetString("valueString")
		case "index", "source", "destination":
			vi := part.Get("valueInteger")
			n := -1
			if vi != nil {
				n, _ = strconv.Atoi(vi.Str)
			}
			if n < 0 {
				return op, fhir.Invalid("value", at+".part", "operation %d: %s must be a valueInteger >= 0", i, name)
			}
			switch name {
			case "index":
				op.index = n
			case "source":
				op.source = n
			default:
				op.dest = n
			}
		case "value":
			v, typ, err := partValue(part)
			if err != nil {
				return op, fhir.Invalid("value", at+".part", "operation %d: %v", i, err)
			}
			op.value, op.valueType = v, typ
		}
	}
	var missing []string
	need := map[string][]string{
		"add": {"path", "name", "value"}, "insert": {"path", "index", "value"}, "delete": {"path"},
		"replace": {"path", "value"}, "move": {"path", "source", "destination"},
	}[op.typ]
	if need == nil {
		return op, fhir.Invalid("code-invalid", at+".part", "operation %d: type %q is not add, insert, delete, replace or move", i, op.typ)
	}
	for _, n := range need {
		switch {
		case n == "path" && pathStr == "", n == "name" && op.name == "", n == "value" && op.value == nil,
			n == "index" && op.index < 0, n == "source" && op.source < 0, n == "destination" && op.dest < 0:
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return op, fhir.Invalid("required", at+".part", "operation %d (%s) lacks %s", i, op.typ, strings.Join(missing, ", "))
	}
	expr, err := fhirpath.Compile(pathStr)
	if err != nil {
		return op, fhir.Invalid("value", at+".part", "operation %d: path %q: %v", i, pathStr, err)
	}
	op.path = expr
	return op, nil
}

// partValue reads the value of a "value" part: a value[x] (its JSON and type suffix), or nested
// parts that build an anonymous (backbone) element.
func partValue(part *jsontree.Value) (*jsontree.Value, string, error) {
	for _, m := range part.Members {
		if strings.HasPrefix(m.Key, "value") && len(m.Key) > len("value") {
			return m.Value.Clone(), m.Key[len("value"):], nil
		}
	}
	sub := part.Get("part")
	if sub == nil {
		return nil, "", fmt.Errorf("the value part has neither a value[x] nor parts")
	}
	o := jsontree.NewObject()
	for _, p := range sub.Items {
		v, _, err := partValue(p)
		if err != nil {
			return nil, "", err
		}
		key := p.GetString("name")
		if cur := o.Get(key); cur != nil {
			if cur.Kind != jsontree.Array {
				cur = jsontree.NewArray(cur)
				o.Set(key, cur)
			}
			cur.Items = append(cur.Items, v)
			continue
		}
		o.Set(key, v)
	}
	return o, "", nil
}

func (op patchOp) apply(tree *jsontree.Value) error {
	nodes, err := op.path.Eval(tree)
	if err != nil {
		return err
	}
	switch op.typ {
	case "add":
		if len(nodes) != 1 || nodes[0].Value == nil || nodes[0].Value.Kind != jsontree.Object {
			return fmt.Errorf("the path must select exactly one element to add to, it selects %d", len(nodes))
		}
		return addChild(nodes[0], op.name, op.value, op.valueType)
	case "insert", "move":
		list, err := listOf(nodes, op.path.String())
		if err != nil {
			return err
		}
		items := list.Items
		if op.typ == "insert" {
			if op.index > len(items) {
				return fmt.Errorf("index %d is beyond the list of %d", op.index, len(items))
			}
			items = append(items, nil)
			copy(items[op.index+1:], items[op.index:])
			items[op.index] = op.value
		} else {
			if op.source >= len(items) || op.dest >= len(items) {
				return fmt.Errorf("source %d or destination %d is outside the list of %d", op.source, op.dest, len(items))
			}
			v := items[op.source]
			items = append(items[:op.source], items[op.source+1:]...)
			items = append(items, nil)
			copy(items[op.dest+1:], items[op.dest:])
			items[op.dest] = v
		}
		list.Items = items
		return nil
	case "delete":
		if len(nodes) == 0 {
			return nil // deleting nothing is not an error (fhirpatch.html)
		}
		if len(nodes) > 1 {
			return fmt.Errorf("the path selects %d elements; delete takes one", len(nodes))
		}
		return removeNode(nodes[0])
	case "replace":
		if len(nodes) != 1 {
			return fmt.Errorf("the path must select exactly one element to replace, it selects %d", len(nodes))
		}
		return replaceNode(nodes[0], op.value)
	}
	return fmt.Errorf("unknown operation %q", op.typ)
}

// addChild adds element name to the object node: appended when the element repeats, set when it is
// a single element that is not there yet. For a choice element the value's type names the member.
func addChild(n fhirpath.Node, name string, v *jsontree.Value, valueType string) error {
	key := name
	el, ok := schema.Resolve(n.Path + "." + name)
	if ok && el.Choice && valueType != "" {
		key = name + strings.ToUpper(valueType[:1]) + valueType[1:]
	}
	repeats := ok && el.Max != 1
	cur := n.Value.Get(key)
	switch {
	case repeats && cur == nil:
		n.Value.Set(key, jsontree.NewArray(v))
	case repeats && cur.Kind == jsontree.Array:
		cur.Items = append(cur.Items, v)
	case cur != nil:
		return fmt.Errorf("%s already has a value; use replace", key)
	default:
		n.Value.Set(key, v)
	}
	return nil
}

// listOf returns the JSON array that the nodes (the items of one list) live in.
func listOf(nodes []fhirpath.Node, path string) (*jsontree.Value, error) {
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%s selects no list", path)
	}
	n := nodes[0]
	if n.Parent == nil || n.Index < 0 {
		return nil, fmt.Errorf("%s does not select a list", path)
	}
	list := n.Parent.Get(n.Key)
	for _, o := range nodes[1:] {
		if o.Parent != n.Parent || o.Key != n.Key {
			return nil, fmt.Errorf("%s selects elements of more than one list", path)
		}
	}
	return list, nil
}

func removeNode(n fhirpath.Node) error {
	if n.Parent == nil {
		return fmt.Errorf("cannot delete the resource itself")
	}
	if n.Index < 0 {
		n.Parent.Delete(n.Key)
		n.Parent.Delete("_" + n.Key)
		return nil
	}
	list := n.Parent.Get(n.Key)
	list.Items = append(list.Items[:n.Index], list.Items[n.Index+1:]...)
	if twin := n.Parent.Get("_" + n.Key); twin != nil && twin.Kind == jsontree.Array && n.Index < len(twin.Items) {
		twin.Items = append(twin.Items[:n.Index], twin.Items[n.Index+1:]...)
	}
	if len(list.Items) == 0 {
		n.Parent.Delete(n.Key)
		n.Parent.Delete("_" + n.Key)
	}
	return nil
}

func replaceNode(n fhirpath.Node, v *jsontree.Value) error {
	if n.Parent == nil {
		return fmt.Errorf("cannot replace the resource itself")
	}
	if n.Index < 0 {
		n.Parent.Set(n.Key, v)
		return nil
	}
	n.Parent.Get(n.Key).Items[n.Index] = v
	return nil
}
