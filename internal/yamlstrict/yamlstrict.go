// Package yamlstrict decodes YAML strictly: unknown keys and wrong types are
// errors at their line, with the nearest known key named. The configuration
// and the policy files both decode through it.
package yamlstrict

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldError is a problem with one key or value of a YAML document, at
// its line in the file.
type FieldError struct {
	Line int
	Msg  string
}

func (e *FieldError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// DecodeNode decodes n into v (a pointer) strictly: a key v has no field
// for is an error at the key's own line, naming the nearest known key,
// and a value of the wrong type says what was expected, in words rather
// than Go types. what names the node in errors ("approval rule").
func DecodeNode(n *yaml.Node, v any, what string) error {
	if err := checkKeys(n, reflect.TypeOf(v), what); err != nil {
		return err
	}
	if err := n.Decode(v); err != nil {
		return friendly(err)
	}
	return nil
}

// Decode parses the YAML document b and decodes it into v as DecodeNode
// does; an empty document leaves v as it is.
func Decode(b []byte, v any, what string) error {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return err
	}
	if len(root.Content) == 0 {
		return nil
	}
	return DecodeNode(&root, v, what)
}

var unmarshaler = reflect.TypeFor[yaml.Unmarshaler]()

// checkKeys walks n beside t and refuses keys t has no field for.
func checkKeys(n *yaml.Node, t reflect.Type, what string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return checkKeys(n.Content[0], t, what)
	}
	if t == reflect.TypeFor[yaml.Node]() || reflect.PointerTo(t).Implements(unmarshaler) {
		return nil // decoded by its own code
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		collectFields(t, fields)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				names := make([]string, 0, len(fields))
				for name := range fields {
					names = append(names, name)
				}
				msg := fmt.Sprintf("unknown field %q in %s", k.Value, what)
				if near := Nearest(k.Value, names); near != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", near)
				}
				return &FieldError{Line: k.Line, Msg: msg}
			}
			if err := checkKeys(val, ft, what+"."+k.Value); err != nil {
				return err
			}
		}
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode:
		for _, item := range n.Content {
			if err := checkKeys(item, t.Elem(), what); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i], t.Elem(), what); err != nil {
				return err
			}
		}
	}
	return nil
}

// collectFields maps the YAML names of t's fields, inline ones included,
// to their types.
func collectFields(t reflect.Type, into map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collectFields(ft, into)
			}
			continue
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		into[name] = f.Type
	}
}

var typeErrRe = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")

// friendly rewrites the decoder's type errors ("cannot unmarshal !!str
// `abc` into int") as what was wanted, in words.
func friendly(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return err
	}
	m := typeErrRe.FindStringSubmatch(te.Errors[0])
	if m == nil {
		return errors.New(strings.Join(te.Errors, "; "))
	}
	var line int
	fmt.Sscan(m[1], &line)
	got := fmt.Sprintf("%q", m[3])
	if m[3] == "" {
		got = map[string]string{"seq": "a list", "map": "a mapping"}[m[2]]
		if got == "" {
			got = "this value"
		}
	}
	return &FieldError{Line: line, Msg: fmt.Sprintf("%s is not %s", got, wanted(m[4]))}
}

// wanted says in words what a Go type takes.
func wanted(goType string) string {
	switch {
	case goType == "time.Duration":
		return "a duration (such as 30s, 5m or 1h)"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a text"
	case strings.HasPrefix(goType, "[]"):
		return "a list (such as [a, b])"
	case strings.HasPrefix(goType, "map["):
		return "a mapping of keys to values"
	}
	return "a mapping of fields (see the documented format)"
}

// Nearest returns the option closest to word (case-insensitively), if
// one is close enough to be a likely typo, else "".
func Nearest(word string, options []string) string {
	best, dist := "", len(word)/3+2
	w := strings.ToLower(word)
	for _, o := range options {
		if d := editDistance(w, strings.ToLower(o)); d < dist || d == dist && o < best {
			best, dist = o, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
