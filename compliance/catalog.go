package compliance

import (
	"fmt"
	"slices"

	"github.com/auditledger/auditledger/events"
)

// Default is the framework an evidence bundle is built for when none is
// named.
const Default = "iso27001-2022"

// Hub is the framework every crosswalk maps to: ISO/IEC 27001:2022 Annex
// A. Two other frameworks meet through its controls (a control of one →
// a 2022 control → a control of the other), so a new framework brings one
// crosswalk, not one per framework already there.
const Hub = "iso27001-2022"

// Metadata names a framework: its framework.yaml.
type Metadata struct {
	// ID is the framework's folder name under compliance/data.
	ID    string `yaml:"id"`
	Title string `yaml:"title"`
	// Version is the edition as its publisher names it ("2022", "Rev. 5").
	Version   string `yaml:"version"`
	Publisher string `yaml:"publisher"`
	// Published is the year the edition was published. Lists across
	// frameworks run oldest edition first, then by id, so their order does
	// not hang on folder names.
	Published int `yaml:"published"`
	// Source says where the control numbers and titles come from.
	Source string `yaml:"source"`
}

// Control is one control of a catalog: its number and short title.
type Control struct {
	ID    string `yaml:"id"`
	Title string `yaml:"title"`

	line int
}

// Catalog is a framework's metadata and its controls (catalog.yaml).
type Catalog struct {
	Metadata `yaml:",inline"`
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

// Relationship says how one control relates to another.
type Relationship string

const (
	// Equal: the same scope under another number.
	Equal Relationship = "equal"
	// Subset: the control is part of the other.
	Subset Relationship = "subset"
	// Intersects: they overlap; neither contains the other.
	Intersects Relationship = "intersects"
	// Superset: the control contains the other. Only found through the
	// hub (a control equal to a 2022 control that the other is part of);
	// crosswalk files say subset from the smaller side instead.
	Superset Relationship = "superset"
	// Related: both map to the same 2022 control, and the data says no
	// more (two parts of one 2022 control may or may not overlap). Only
	// found through the hub.
	Related Relationship = "related"
)

// inverse is how the other control relates to this one.
func (r Relationship) inverse() Relationship {
	switch r {
	case Subset:
		return Superset
	case Superset:
		return Subset
	}
	return r
}

// through is how x relates to y when x relates to a hub control as xh
// and y relates to it as yh: exact when either is equal to the hub
// control, else only Related.
func through(xh, yh Relationship) Relationship {
	switch {
	case xh == Equal:
		return yh.inverse()
	case yh == Equal:
		return xh
	}
	return Related
}

// Mapped is one control of a crosswalk: the hub controls it maps to and
// how it relates to them.
type Mapped struct {
	ID           string       `yaml:"id"`
	To           []string     `yaml:"to"`
	Relationship Relationship `yaml:"relationship"`

	line int
}

// Crosswalk maps a framework's controls to the hub's (crosswalk.yaml),
// with the source of the mapping.
type Crosswalk struct {
	// ID and Title are the framework's.
	ID       string   `yaml:"-"`
	Title    string   `yaml:"-"`
	Source   string   `yaml:"source"`
	Controls []Mapped `yaml:"controls"`
}

// Query is one table of a control's rows in a bundle. Every table is
// derived from the bundle's own records, as docs/FORMAT.md §12.3 defines
// it for the control and name, so a verifier re-derives it (Derived is
// true). Mappings before version 4 also named SQL run on the projection
// and vouched for by the evidence key; a mapping holding one is refused
// now, and bundles built from one still verify by their rules.
type Query struct {
	Name    string `yaml:"name"`
	Summary string `yaml:"summary"`
	SQL     string `yaml:"sql"`
	Derived bool   `yaml:"derived"`
}

// Evidence is what the ledger observes for one control.
type Evidence struct {
	Control     string        `yaml:"control"`
	Observes    string        `yaml:"observes"`
	EventTypes  []events.Type `yaml:"event_types"`
	LedgerFacts []string      `yaml:"ledger_facts"`
	Queries     []Query       `yaml:"queries"`

	line int
}

// Mapping is the evidence mapping of one framework (evidence.yaml),
// versioned.
type Mapping struct {
	Version int `yaml:"version"`
	// Framework is the id of the framework whose folder holds the mapping.
	Framework string     `yaml:"-"`
	Controls  []Evidence `yaml:"controls"`
}

// Framework is one folder of compliance/data: the catalog, the crosswalk
// to the hub and the evidence mapping a bundle is built from. Load, Lookup
// and All share one copy of each: callers must not modify it.
type Framework struct {
	Catalog Catalog
	// Crosswalk maps the controls to the hub's; empty for the hub itself.
	Crosswalk Crosswalk
	// Mapping is the evidence mapping. Its Controls are empty when the
	// framework has none: it is crosswalked, but no bundle is built for it.
	Mapping Mapping
	// Expectations are the default expectations each control is tested
	// against (expectations.yaml), and ExpectationsFile that file's bytes;
	// nil when the framework has none.
	Expectations     *Expectations
	ExpectationsFile []byte

	set *set // every framework, for crosswalks through the hub
}

// Evidence returns the mapping's evidence for a control, if any.
func (f *Framework) Evidence(control string) (Evidence, bool) {
	i := slices.IndexFunc(f.Mapping.Controls, func(e Evidence) bool { return e.Control == control })
	if i < 0 {
		return Evidence{}, false
	}
	return f.Mapping.Controls[i], true
}

// toHub lists the hub controls a control maps to, with how it relates to
// each. The hub's own controls map to themselves.
func (f *Framework) toHub(control string) []Correspondence {
	if f.Catalog.ID == Hub {
		if c, ok := f.Catalog.Control(control); ok {
			return []Correspondence{{Control: c, Via: c.ID, Relationship: Equal}}
		}
		return nil
	}
	var out []Correspondence
	for _, m := range f.Crosswalk.Controls {
		if m.ID == control {
			for _, to := range m.To {
				c, _ := f.set.hub.Catalog.Control(to)
				out = append(out, Correspondence{Control: c, Via: to, Relationship: m.Relationship})
			}
		}
	}
	return out
}

// Correspondence is a control reached from a control of another
// framework through a hub control.
type Correspondence struct {
	// Control is the control reached.
	Control Control
	// Via is the hub control the two meet in.
	Via string
	// Relationship is how the control started from relates to Control.
	Relationship Relationship
}

// Correspond lists the controls of framework to that correspond to a
// control of framework from, through the hub's controls: each hub control
// the control maps to, and each control of to that maps to it. The list
// follows from's crosswalk, then to's catalog order.
func Correspond(from, control, to string) ([]Correspondence, error) {
	s, err := loadSet()
	if err != nil {
		return nil, err
	}
	x, err := s.get(from)
	if err != nil {
		return nil, err
	}
	y, err := s.get(to)
	if err != nil {
		return nil, err
	}
	if _, ok := x.Catalog.Control(control); !ok {
		return nil, fmt.Errorf("%w: %s has no control %q", ErrUnknownControl, from, control)
	}
	return x.correspond(control, y), nil
}

// correspond lists the controls of to that meet one of f's controls in a
// hub control; see Correspond.
func (f *Framework) correspond(control string, to *Framework) []Correspondence {
	var out []Correspondence
	for _, xh := range f.toHub(control) {
		for _, c := range to.Catalog.Controls {
			for _, yh := range to.toHub(c.ID) {
				if yh.Via == xh.Via {
					out = append(out, Correspondence{Control: c, Via: xh.Via, Relationship: through(xh.Relationship, yh.Relationship)})
				}
			}
		}
	}
	return out
}

// MappedFrom lists the other frameworks' controls that correspond to one
// of f's controls, framework by framework, each as "<framework> <control>
// (<relationship>)", and, when f is not the hub, the hub control they
// meet in.
func (f *Framework) MappedFrom(control string) []string {
	var out []string
	for _, o := range f.set.order {
		if o == f {
			continue
		}
		for _, c := range o.Catalog.Controls {
			for _, k := range o.correspond(c.ID, f) {
				if k.Control.ID != control {
					continue
				}
				if f.Catalog.ID == Hub || o.Catalog.ID == Hub {
					out = append(out, fmt.Sprintf("%s %s (%s)", o.Catalog.ID, c.ID, k.Relationship))
				} else {
					out = append(out, fmt.Sprintf("%s %s (%s, through %s %s)", o.Catalog.ID, c.ID, k.Relationship, Hub, k.Via))
				}
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
