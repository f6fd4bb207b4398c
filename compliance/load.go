package compliance

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/auditledger/auditledger/internal/yamlstrict"
)

// data is compliance/data: one folder per framework, named by its id.
//
//go:embed data
var data embed.FS

// The files of a framework's folder, compliance/data/<id>/. Any other
// file there is refused, so that a misspelt name is not silently skipped.
const (
	frameworkFile = "framework.yaml" // Metadata
	catalogFile   = "catalog.yaml"   // the controls
	crosswalkFile = "crosswalk.yaml" // to the hub; every framework but the hub has one
	evidenceFile  = "evidence.yaml"  // optional: without it no bundle is built for the framework
	// optional: the expectations each control is tested against
	// (assert.go); needs evidence.yaml
	expectationsFile = "expectations.yaml"
)

var (
	// ErrUnknownFramework: no folder of compliance/data has that id.
	ErrUnknownFramework = errors.New("compliance: unknown framework")
	// ErrNoEvidence: the framework has no evidence mapping, so no bundle
	// can be built for it; it can still be crosswalked.
	ErrNoEvidence = errors.New("compliance: no evidence mapping")
	// ErrUnknownControl: the framework's catalog has no such control.
	ErrUnknownControl = errors.New("compliance: unknown control")
)

// DataError is a fault in the framework data, at its file and line.
type DataError struct {
	// File is the file's path in the repository
	// ("compliance/data/soc2-2017/crosswalk.yaml").
	File string
	// Line is the line in File; 0 when the fault is the file's as a whole
	// (missing, misnamed).
	Line int
	Msg  string
}

func (e *DataError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Frameworks lists the frameworks a bundle can be built for (those with an
// evidence mapping), sorted: the folders of compliance/data that hold an
// evidence.yaml.
var Frameworks = withEvidence(data)

func withEvidence(fsys fs.FS) []string {
	dirs, _ := fs.ReadDir(fsys, "data")
	var out []string
	for _, d := range dirs {
		if _, err := fs.Stat(fsys, path.Join("data", d.Name(), evidenceFile)); err == nil && d.IsDir() {
			out = append(out, d.Name())
		}
	}
	return out
}

// set is every framework of the data, read and checked together.
type set struct {
	byID  map[string]*Framework
	order []*Framework // oldest edition first, then by id
	hub   *Framework
}

var loadSet = sync.OnceValues(func() (*set, error) { return read(data) })

// Load returns a framework a bundle can be built for: one with an
// evidence mapping. The data is embedded in the binary and checked as a
// whole on first use: every mapped and evidenced control exists,
// relationships are known, every crosswalk names its source, event types
// are in the catalog of events.
func Load(framework string) (*Framework, error) {
	f, err := Lookup(framework)
	if err != nil {
		return nil, err
	}
	if len(f.Mapping.Controls) == 0 {
		return nil, fmt.Errorf("%w for %q (compliance/data/%s/%s): bundles are built for %s", ErrNoEvidence, framework, framework, evidenceFile, strings.Join(Frameworks, ", "))
	}
	return f, nil
}

// Lookup returns any framework of the data, with or without an evidence
// mapping.
func Lookup(framework string) (*Framework, error) {
	s, err := loadSet()
	if err != nil {
		return nil, err
	}
	return s.get(framework)
}

// All returns every framework of the data, oldest edition first.
func All() ([]*Framework, error) {
	s, err := loadSet()
	if err != nil {
		return nil, err
	}
	return slices.Clone(s.order), nil
}

func (s *set) get(id string) (*Framework, error) {
	if f, ok := s.byID[id]; ok {
		return f, nil
	}
	ids := make([]string, 0, len(s.order))
	for _, f := range s.order {
		ids = append(ids, f.Catalog.ID)
	}
	slices.Sort(ids)
	return nil, fmt.Errorf("%w %q: want one of %s", ErrUnknownFramework, id, strings.Join(ids, ", "))
}

// read reads and checks every folder under data/ of fsys.
func read(fsys fs.FS) (*set, error) {
	dirs, err := fs.ReadDir(fsys, "data")
	if err != nil {
		return nil, fmt.Errorf("compliance: reading the data: %w", err)
	}
	s := &set{byID: map[string]*Framework{}}
	for _, d := range dirs {
		if !d.IsDir() {
			return nil, &DataError{File: display(path.Join("data", d.Name())), Msg: "not a framework folder: each framework is a folder compliance/data/<id>/ holding " + frameworkFile + " and " + catalogFile}
		}
		f, err := readFramework(fsys, d.Name())
		if err != nil {
			return nil, err
		}
		f.set = s
		s.byID[d.Name()] = f
		s.order = append(s.order, f)
	}
	s.hub = s.byID[Hub]
	if s.hub == nil {
		return nil, &DataError{File: display(path.Join("data", Hub)), Msg: "missing: the hub of every crosswalk"}
	}
	slices.SortFunc(s.order, func(a, b *Framework) int {
		if a.Catalog.Published != b.Catalog.Published {
			return a.Catalog.Published - b.Catalog.Published
		}
		return strings.Compare(a.Catalog.ID, b.Catalog.ID)
	})
	for _, f := range s.order {
		if err := f.checkCrosswalk(s.hub); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// display is the path of a data file in the repository, for errors.
func display(name string) string { return "compliance/" + name }

// readFramework reads one folder and checks what can be checked inside it.
func readFramework(fsys fs.FS, id string) (*Framework, error) {
	dir := path.Join("data", id)
	files, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	known := []string{frameworkFile, catalogFile, crosswalkFile, evidenceFile, expectationsFile}
	has := map[string]bool{}
	for _, e := range files {
		if !slices.Contains(known, e.Name()) {
			msg := fmt.Sprintf("unknown file in a framework folder, want %s", strings.Join(known, ", "))
			if near := yamlstrict.Nearest(e.Name(), known); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
			return nil, &DataError{File: display(path.Join(dir, e.Name())), Msg: msg}
		}
		has[e.Name()] = true
	}
	for _, want := range []string{frameworkFile, catalogFile} {
		if !has[want] {
			return nil, &DataError{File: display(path.Join(dir, want)), Msg: "missing"}
		}
	}
	switch {
	case id == Hub && has[crosswalkFile]:
		return nil, &DataError{File: display(path.Join(dir, crosswalkFile)), Msg: "the hub has no crosswalk: the others map to it"}
	case id != Hub && !has[crosswalkFile]:
		return nil, &DataError{File: display(path.Join(dir, crosswalkFile)), Msg: "missing: every framework but " + Hub + " maps its controls to the hub's"}
	}

	f := &Framework{}
	metaLine, _, err := decode(fsys, path.Join(dir, frameworkFile), &f.Catalog.Metadata)
	if err != nil {
		return nil, err
	}
	if err := f.checkMetadata(id, metaLine); err != nil {
		return nil, err
	}
	var cat struct {
		Controls []Control `yaml:"controls"`
	}
	_, lines, err := decode(fsys, path.Join(dir, catalogFile), &cat)
	if err != nil {
		return nil, err
	}
	for i := range cat.Controls {
		cat.Controls[i].line = lines[i]
	}
	f.Catalog.Controls = cat.Controls
	if err := f.checkCatalog(); err != nil {
		return nil, err
	}
	if has[crosswalkFile] {
		if _, lines, err = decode(fsys, path.Join(dir, crosswalkFile), &f.Crosswalk); err != nil {
			return nil, err
		}
		for i := range f.Crosswalk.Controls {
			f.Crosswalk.Controls[i].line = lines[i]
		}
		f.Crosswalk.ID, f.Crosswalk.Title = f.Catalog.ID, f.Catalog.Title
	}
	if has[evidenceFile] {
		if _, lines, err = decode(fsys, path.Join(dir, evidenceFile), &f.Mapping); err != nil {
			return nil, err
		}
		for i := range f.Mapping.Controls {
			f.Mapping.Controls[i].line = lines[i]
		}
		f.Mapping.Framework = id
		if err := f.checkMapping(); err != nil {
			return nil, err
		}
	}
	if has[expectationsFile] {
		name := path.Join(dir, expectationsFile)
		if !has[evidenceFile] {
			return nil, &DataError{File: display(name), Msg: "expectations without an evidence mapping (" + evidenceFile + ")"}
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		x, err := ParseExpectations(display(name), b)
		if err != nil {
			return nil, &DataError{File: display(name), Msg: strings.TrimPrefix(err.Error(), display(name)+": ")}
		}
		for _, e := range x.Controls {
			if _, ok := f.Evidence(e.Control); !ok {
				return nil, &DataError{File: display(name), Msg: fmt.Sprintf("control %s has an expectation but no evidence mapping", e.Control)}
			}
		}
		f.Expectations, f.ExpectationsFile = x, b
	}
	return f, nil
}

var syntaxLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// decode reads the YAML file name of fsys strictly into v: unknown keys and
// wrong types are errors at their line. It returns the line of the
// document and the lines of the items of its top-level controls list.
func decode(fsys fs.FS, name string, v any) (int, []int, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return 0, nil, err
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		var line int
		if m := syntaxLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		return 0, nil, &DataError{File: display(name), Line: line, Msg: msg}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return 0, nil, &DataError{File: display(name), Msg: "want a mapping of fields"}
	}
	if err := yamlstrict.DecodeNode(&doc, v, path.Base(name)); err != nil {
		var fe *yamlstrict.FieldError
		if errors.As(err, &fe) {
			return 0, nil, &DataError{File: display(name), Line: fe.Line, Msg: fe.Msg}
		}
		return 0, nil, &DataError{File: display(name), Msg: err.Error()}
	}
	top := doc.Content[0]
	var lines []int
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "controls" {
			for _, item := range top.Content[i+1].Content {
				lines = append(lines, item.Line)
			}
		}
	}
	return top.Line, lines, nil
}
