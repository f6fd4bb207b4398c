package compliance

import (
	"bytes"
	"embed"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/auditledger/auditledger/events"
)

//go:embed data/*.yaml
var data embed.FS

// Control is one control of a catalog: its number and short title.
type Control struct {
	ID    string `yaml:"id"`
	Title string `yaml:"title"`
}

// Catalog is a versioned list of controls.
type Catalog struct {
	ID       string    `yaml:"id"`
	Title    string    `yaml:"title"`
	Version  string    `yaml:"version"`
	Source   string    `yaml:"source"`
	Controls []Control `yaml:"controls"`
}

// Control returns the control numbered id.
func (c *Catalog) Control(id string) (Control, bool) {
	i := slices.IndexFunc(c.Controls, func(k Control) bool { return k.ID == id })
	if i < 0 {
		return Control{}, false
	}
	return c.Controls[i], true
}

// Relationship says how a control of another catalog relates to the
// ISO/IEC 27001:2022 controls it maps to.
type Relationship string

const (
	// Equal: the same scope under another number.
	Equal Relationship = "equal"
	// Subset: the other control is part of the 2022 control.
	Subset Relationship = "subset"
	// Intersects: they overlap; neither contains the other.
	Intersects Relationship = "intersects"
)

// Mapped is a control of another catalog with the 2022 controls it maps to.
type Mapped struct {
	Control      `yaml:",inline"`
	To           []string     `yaml:"to"`
	Relationship Relationship `yaml:"relationship"`
}

// Crosswalk maps another catalog's controls to ISO/IEC 27001:2022, with
// the source of the mapping.
type Crosswalk struct {
	ID       string   `yaml:"id"`
	Title    string   `yaml:"title"`
	Source   string   `yaml:"source"`
	Controls []Mapped `yaml:"controls"`
}

// Query is one query over the projection that yields a control's rows in
// a bundle. Its parameters are $1 tenant, $2 the period's first ledger
// index, $3 the index after its last.
type Query struct {
	Name    string `yaml:"name"`
	Summary string `yaml:"summary"`
	SQL     string `yaml:"sql"`
}

// Evidence is what the ledger observes for one control.
type Evidence struct {
	Control     string        `yaml:"control"`
	Observes    string        `yaml:"observes"`
	EventTypes  []events.Type `yaml:"event_types"`
	LedgerFacts []string      `yaml:"ledger_facts"`
	Queries     []Query       `yaml:"queries"`
}

// Mapping is the evidence mapping of one framework, versioned.
type Mapping struct {
	Version   int        `yaml:"version"`
	Framework string     `yaml:"framework"`
	Controls  []Evidence `yaml:"controls"`
}

// Framework is everything a bundle needs for one framework: its catalog,
// the crosswalks to other catalogs, and the evidence mapping.
type Framework struct {
	Catalog    Catalog
	Crosswalks []Crosswalk
	Mapping    Mapping
}

// Frameworks lists the frameworks Load knows.
var Frameworks = []string{"iso27001-2022"}

// Load reads the framework's data, embedded in the binary, and checks it:
// every mapped and evidenced control exists in the catalog, relationships
// are known, every mapping names its source, event types are in the
// catalog of events.
func Load(framework string) (*Framework, error) {
	if !slices.Contains(Frameworks, framework) {
		return nil, fmt.Errorf("framework %q unknown: want one of %s", framework, strings.Join(Frameworks, ", "))
	}
	var f Framework
	var cw struct {
		Version  int         `yaml:"version"`
		Catalogs []Crosswalk `yaml:"catalogs"`
	}
	for _, file := range []struct {
		name string
		into any
	}{{"data/iso27001-2022.yaml", &f.Catalog}, {"data/crosswalks.yaml", &cw}, {"data/evidence.yaml", &f.Mapping}} {
		b, err := data.ReadFile(file.name)
		if err != nil {
			return nil, err
		}
		d := yaml.NewDecoder(bytes.NewReader(b))
		d.KnownFields(true)
		if err := d.Decode(file.into); err != nil {
			return nil, fmt.Errorf("compliance/%s: %w", file.name, err)
		}
	}
	f.Crosswalks = cw.Catalogs
	return &f, f.check()
}

func (f *Framework) check() error {
	seen := map[string]bool{}
	for _, c := range f.Catalog.Controls {
		if seen[c.ID] || c.Title == "" {
			return fmt.Errorf("catalog %s: control %q repeated or untitled", f.Catalog.ID, c.ID)
		}
		seen[c.ID] = true
	}
	for _, cw := range f.Crosswalks {
		if cw.Source == "" {
			return fmt.Errorf("crosswalk %s: no source", cw.ID)
		}
		for _, m := range cw.Controls {
			switch m.Relationship {
			case Equal, Subset, Intersects:
			default:
				return fmt.Errorf("crosswalk %s: %s: relationship %q, want equal, subset or intersects", cw.ID, m.ID, m.Relationship)
			}
			if len(m.To) == 0 {
				return fmt.Errorf("crosswalk %s: %s maps to nothing", cw.ID, m.ID)
			}
			for _, to := range m.To {
				if !seen[to] {
					return fmt.Errorf("crosswalk %s: %s maps to %s, not a control of %s", cw.ID, m.ID, to, f.Catalog.ID)
				}
			}
		}
	}
	if f.Mapping.Framework != f.Catalog.ID {
		return fmt.Errorf("evidence mapping for %q, catalog %q", f.Mapping.Framework, f.Catalog.ID)
	}
	for _, e := range f.Mapping.Controls {
		if !seen[e.Control] {
			return fmt.Errorf("evidence mapping: %s is not a control of %s", e.Control, f.Catalog.ID)
		}
		if e.Observes == "" || len(e.Queries) == 0 {
			return fmt.Errorf("evidence mapping: %s says nothing of what is observed, or has no query", e.Control)
		}
		for _, t := range e.EventTypes {
			if !t.Known() {
				return fmt.Errorf("evidence mapping: %s: event type %q unknown", e.Control, t)
			}
		}
		for _, q := range e.Queries {
			if q.Name == "" || q.Summary == "" || !strings.Contains(q.SQL, "$1") || !strings.Contains(q.SQL, "$2") || !strings.Contains(q.SQL, "$3") {
				return fmt.Errorf("evidence mapping: %s: query %q needs a name, a summary and all of $1 (tenant), $2, $3 (index range)", e.Control, q.Name)
			}
		}
	}
	return nil
}

// Evidence returns the mapping's evidence for a control, if any.
func (f *Framework) Evidence(control string) (Evidence, bool) {
	i := slices.IndexFunc(f.Mapping.Controls, func(e Evidence) bool { return e.Control == control })
	if i < 0 {
		return Evidence{}, false
	}
	return f.Mapping.Controls[i], true
}

// MappedFrom lists the other catalogs' controls that map to a 2022
// control, with their catalog.
func (f *Framework) MappedFrom(control string) []string {
	var out []string
	for _, cw := range f.Crosswalks {
		for _, m := range cw.Controls {
			if slices.Contains(m.To, control) {
				out = append(out, fmt.Sprintf("%s %s (%s)", cw.ID, m.ID, m.Relationship))
			}
		}
	}
	return out
}

// Version names the data a bundle was built with: framework and mapping
// versions.
func (f *Framework) Version() string {
	return fmt.Sprintf("%s@%s mapping v%d", f.Catalog.ID, f.Catalog.Version, f.Mapping.Version)
}
