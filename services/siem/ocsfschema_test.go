package siem

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// An OCSF schema read from the schema repository's own files (testdata,
// with their version and source): classes and objects with their
// "extends" chains, "$include"d profiles and includes, the dictionary's
// attribute types and enums. It checks what the OCSF server's validator
// checks that a rendering can get wrong: unknown attributes, missing
// required ones (a profile's only when the event applies the profile),
// values of the wrong type, enum values not in the enum, and the uid
// arithmetic of class, category and type.
type ocsfSchema struct {
	dir        string
	dict       map[string]ocsfAttr
	types      map[string]string // type → its base type ("" for the base types)
	classes    map[string]ocsfDef
	objects    map[string]ocsfDef
	categories map[string]int
	byUID      map[int]string // class_uid → class name
}

type ocsfDef struct {
	Name       string                     `json:"name"`
	UID        int                        `json:"uid"`
	Extends    string                     `json:"extends"`
	Category   string                     `json:"category"`
	Attributes map[string]json.RawMessage `json:"attributes"`
}

type ocsfAttr struct {
	Type        string                     `json:"type"`
	IsArray     bool                       `json:"is_array"`
	Requirement string                     `json:"requirement"`
	Enum        map[string]json.RawMessage `json:"enum"`
	profile     string                     // set when only a profile brings it
}

func loadOCSF(t *testing.T, dir string) *ocsfSchema {
	t.Helper()
	s := &ocsfSchema{dir: dir, classes: map[string]ocsfDef{}, objects: map[string]ocsfDef{}, categories: map[string]int{}, types: map[string]string{}}
	var dict struct {
		Attributes map[string]ocsfAttr `json:"attributes"`
		Types      struct {
			Attributes map[string]struct {
				Type string `json:"type"`
			} `json:"attributes"`
		} `json:"types"`
	}
	s.read(t, "dictionary.json", &dict)
	s.dict = dict.Attributes
	for k, v := range dict.Types.Attributes {
		s.types[k] = v.Type
	}
	var cats struct {
		Attributes map[string]struct {
			UID int `json:"uid"`
		} `json:"attributes"`
	}
	s.read(t, "categories.json", &cats)
	for k, v := range cats.Attributes {
		s.categories[k] = v.UID
	}
	for kind, into := range map[string]map[string]ocsfDef{"events": s.classes, "objects": s.objects} {
		filepath.Walk(filepath.Join(dir, kind), func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() || !strings.HasSuffix(p, ".json") {
				return err
			}
			var d ocsfDef
			rel, _ := filepath.Rel(dir, p)
			s.read(t, rel, &d)
			into[d.Name] = d
			return nil
		})
	}
	s.byUID = map[int]string{}
	for name, d := range s.classes {
		if _, full := s.attrs(t, s.classes, name); d.UID != 0 {
			s.byUID[s.categories[full.Category]*1000+d.UID] = name
		}
	}
	return s
}

func (s *ocsfSchema) read(t *testing.T, rel string, into any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// attrs resolves a class's or object's attributes: its parent's, then its
// includes' (a profile's marked as such), then its own.
func (s *ocsfSchema) attrs(t *testing.T, defs map[string]ocsfDef, name string) (map[string]ocsfAttr, ocsfDef) {
	t.Helper()
	d, ok := defs[name]
	if !ok {
		t.Fatalf("OCSF: no class or object %q", name)
	}
	out := map[string]ocsfAttr{}
	if d.Extends != "" && d.Extends != "object" {
		parent, pd := s.attrs(t, defs, d.Extends)
		out = parent
		if d.Category == "" {
			d.Category = pd.Category
		}
	}
	merge := func(name string, raw json.RawMessage, profile string) {
		var a ocsfAttr
		json.Unmarshal(raw, &a)
		cur, had := out[name]
		if !had {
			cur = s.dict[name]
			cur.Enum = maps.Clone(cur.Enum)
			cur.profile = profile
		} else if profile == "" {
			cur.profile = ""
		}
		if a.Requirement != "" {
			cur.Requirement = a.Requirement
		}
		if a.Type != "" {
			cur.Type = a.Type
		}
		if len(a.Enum) > 0 {
			if cur.Enum == nil {
				cur.Enum = map[string]json.RawMessage{}
			}
			maps.Copy(cur.Enum, a.Enum)
		}
		out[name] = cur
	}
	if inc, ok := d.Attributes["$include"]; ok {
		var paths []string
		json.Unmarshal(inc, &paths)
		for _, p := range paths {
			var f struct {
				Name       string                     `json:"name"`
				Meta       string                     `json:"meta"`
				Attributes map[string]json.RawMessage `json:"attributes"`
			}
			s.read(t, p, &f)
			profile := ""
			if f.Meta == "profile" {
				profile = f.Name
			}
			for k, v := range f.Attributes {
				merge(k, v, profile)
			}
		}
	}
	for k, v := range d.Attributes {
		if k != "$include" {
			merge(k, v, "")
		}
	}
	return out, d
}

// validateEvent checks one rendered OCSF event against its class.
func (s *ocsfSchema) validateEvent(t *testing.T, b []byte) error {
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		return err
	}
	classUID := int(ev["class_uid"].(float64))
	class, ok := s.byUID[classUID]
	if !ok {
		return fmt.Errorf("class_uid %d is no class of the schema", classUID)
	}
	attrs, d := s.attrs(t, s.classes, class)
	if got, want := int(ev["category_uid"].(float64)), s.categories[d.Category]; got != want {
		return fmt.Errorf("class %s: category_uid %d, want %d", class, got, want)
	}
	if got, want := int(ev["type_uid"].(float64)), classUID*100+int(ev["activity_id"].(float64)); got != want {
		return fmt.Errorf("class %s: type_uid %d, want %d", class, got, want)
	}
	var profiles []string
	if m, ok := ev["metadata"].(map[string]any); ok {
		if ps, ok := m["profiles"].([]any); ok {
			for _, p := range ps {
				profiles = append(profiles, p.(string))
			}
		}
	}
	return s.validateObject(t, class, attrs, ev, profiles)
}

func (s *ocsfSchema) validateObject(t *testing.T, path string, attrs map[string]ocsfAttr, obj map[string]any, profiles []string) error {
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		a := attrs[k]
		if _, ok := obj[k]; !ok && a.Requirement == "required" && (a.profile == "" || slices.Contains(profiles, a.profile)) {
			return fmt.Errorf("%s: required attribute %s missing", path, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		a, ok := attrs[k]
		if !ok {
			return fmt.Errorf("%s.%s: no such attribute", path, k)
		}
		if a.profile != "" && !slices.Contains(profiles, a.profile) {
			return fmt.Errorf("%s.%s: an attribute of the profile %s, which metadata.profiles does not apply", path, k, a.profile)
		}
		vals := []any{obj[k]}
		if a.IsArray {
			arr, ok := obj[k].([]any)
			if !ok {
				return fmt.Errorf("%s.%s: want an array", path, k)
			}
			vals = arr
		}
		for _, v := range vals {
			if err := s.validateValue(t, path+"."+k, a, v, profiles); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *ocsfSchema) validateValue(t *testing.T, path string, a ocsfAttr, v any, profiles []string) error {
	base := a.Type
	for s.types[base] != "" {
		base = s.types[base]
	}
	switch base {
	case "string_t":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: want a string (%s), got %T", path, a.Type, v)
		}
	case "integer_t", "long_t":
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			return fmt.Errorf("%s: want an integer (%s), got %v", path, a.Type, v)
		}
		// The uids are checked by their arithmetic (validateEvent): the
		// dictionary's enums for them only hold 0.
		if last := path[strings.LastIndexByte(path, '.')+1:]; a.Enum != nil && last != "category_uid" && last != "class_uid" && last != "type_uid" {
			if _, ok := a.Enum[strconv.FormatInt(int64(f), 10)]; !ok {
				return fmt.Errorf("%s: %d is not in its enum %v", path, int64(f), slices.Sorted(maps.Keys(a.Enum)))
			}
		}
	case "float_t":
		if _, ok := v.(float64); !ok {
			return fmt.Errorf("%s: want a number, got %T", path, v)
		}
	case "boolean_t":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: want a boolean, got %T", path, v)
		}
	case "json_t", "object":
	case "":
		return fmt.Errorf("%s: attribute has no type in the dictionary", path)
	default: // an object
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object %s, got %T", path, a.Type, v)
		}
		attrs, _ := s.attrs(t, s.objects, a.Type)
		return s.validateObject(t, path, attrs, m, profiles)
	}
	return nil
}
