package compliance

import (
	"fmt"
	"path"
)

// fault is a DataError in one of f's files.
func (f *Framework) fault(file string, line int, format string, args ...any) error {
	return &DataError{File: display(path.Join("data", f.Catalog.ID, file)), Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (f *Framework) checkMetadata(folder string, line int) error {
	m := f.Catalog.Metadata
	if m.ID != folder {
		return &DataError{File: display(path.Join("data", folder, frameworkFile)), Line: line,
			Msg: fmt.Sprintf("id %q, but the folder is %q: they must be the same", m.ID, folder)}
	}
	if m.Title == "" || m.Version == "" || m.Publisher == "" || m.Source == "" || m.Published <= 0 {
		return f.fault(frameworkFile, line, "id, title, version, publisher, published (the year) and source are all required")
	}
	return nil
}

func (f *Framework) checkCatalog() error {
	if len(f.Catalog.Controls) == 0 {
		return f.fault(catalogFile, 0, "no controls")
	}
	seen := map[string]bool{}
	for _, c := range f.Catalog.Controls {
		switch {
		case c.ID == "":
			return f.fault(catalogFile, c.line, "a control without an id")
		case seen[c.ID]:
			return f.fault(catalogFile, c.line, "control %q repeated", c.ID)
		case c.Title == "":
			return f.fault(catalogFile, c.line, "control %q has no title", c.ID)
		}
		seen[c.ID] = true
	}
	return nil
}

// checkCrosswalk checks f's crosswalk against its own catalog and the
// hub's.
func (f *Framework) checkCrosswalk(hub *Framework) error {
	if f == hub {
		return nil
	}
	cw := f.Crosswalk
	if cw.Source == "" {
		return f.fault(crosswalkFile, 0, "no source: say where the correspondence comes from")
	}
	if len(cw.Controls) == 0 {
		return f.fault(crosswalkFile, 0, "maps no control")
	}
	seen := map[string]bool{}
	for _, m := range cw.Controls {
		if _, ok := f.Catalog.Control(m.ID); !ok {
			return f.fault(crosswalkFile, m.line, "%s is not a control of %s (%s)", m.ID, f.Catalog.ID, catalogFile)
		}
		if seen[m.ID] {
			return f.fault(crosswalkFile, m.line, "%s mapped twice", m.ID)
		}
		seen[m.ID] = true
		switch m.Relationship {
		case Equal, Subset, Intersects:
		default:
			return f.fault(crosswalkFile, m.line, "%s: relationship %q, want equal, subset or intersects", m.ID, m.Relationship)
		}
		if len(m.To) == 0 {
			return f.fault(crosswalkFile, m.line, "%s maps to nothing", m.ID)
		}
		for _, to := range m.To {
			if _, ok := hub.Catalog.Control(to); !ok {
				return f.fault(crosswalkFile, m.line, "%s maps to %s, not a control of %s", m.ID, to, hub.Catalog.ID)
			}
		}
	}
	return nil
}

func (f *Framework) checkMapping() error {
	if len(f.Mapping.Controls) == 0 {
		return f.fault(evidenceFile, 0, "maps no control: delete the file if the framework has no evidence mapping")
	}
	if f.Mapping.Version <= 0 {
		return f.fault(evidenceFile, 0, "version %d: want 1 or more, raised whenever what a bundle contains changes", f.Mapping.Version)
	}
	seen := map[string]bool{}
	for _, e := range f.Mapping.Controls {
		if _, ok := f.Catalog.Control(e.Control); !ok {
			return f.fault(evidenceFile, e.line, "%s is not a control of %s", e.Control, f.Catalog.ID)
		}
		if seen[e.Control] {
			return f.fault(evidenceFile, e.line, "%s mapped twice", e.Control)
		}
		seen[e.Control] = true
		if e.Observes == "" || len(e.Queries) == 0 {
			return f.fault(evidenceFile, e.line, "%s says nothing of what is observed, or has no query", e.Control)
		}
		for _, t := range e.EventTypes {
			if !t.Known() {
				return f.fault(evidenceFile, e.line, "%s: event type %q unknown", e.Control, t)
			}
		}
		for _, q := range e.Queries {
			switch {
			case q.Name == "" || q.Summary == "":
				return f.fault(evidenceFile, e.line, "%s: query %q needs a name and a summary", e.Control, q.Name)
			case q.Derived && q.SQL != "":
				return f.fault(evidenceFile, e.line, "%s: query %q is derived from the records (FORMAT §12.3) and has SQL too: give one", e.Control, q.Name)
			case !q.Derived:
				return f.fault(evidenceFile, e.line, "%s: query %q is not derived: true; every table of a bundle is derived from the sealed records (FORMAT §12.3), none is queried from the projection", e.Control, q.Name)
			}
		}
	}
	return nil
}
