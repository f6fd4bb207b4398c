package compliance

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current data")

// render is everything an evidence bundle takes from a framework (see
// projections/evidence: the manifest's framework, each control's folder,
// summary.md, the report and the OSCAL results), in one document.
func render(t *testing.T, f *Framework) []byte {
	t.Helper()
	type query struct{ Name, Summary, SQL string }
	type control struct {
		ID, Title, Observes string
		EventTypes          []string
		LedgerFacts         []string
		Queries             []query
		MappedFrom          []string
		Expectation         *Expectation `json:",omitempty"`
	}
	doc := struct {
		ID, Title, Version, Source, DataVersion string
		MappingVersion                          int
		MappingFramework                        string
		Catalog                                 []Control
		Controls                                []control
	}{ID: f.Catalog.ID, Title: f.Catalog.Title, Version: f.Catalog.Version, Source: f.Catalog.Source,
		DataVersion: f.Version(), MappingVersion: f.Mapping.Version, MappingFramework: f.Mapping.Framework,
		Catalog: f.Catalog.Controls}
	for _, e := range f.Mapping.Controls {
		ctl, ok := f.Catalog.Control(e.Control)
		if !ok {
			t.Fatalf("control %s not in the catalog", e.Control)
		}
		ev, ok := f.Evidence(e.Control)
		if !ok {
			t.Fatalf("no evidence for %s", e.Control)
		}
		c := control{ID: e.Control, Title: ctl.Title, Observes: ev.Observes, LedgerFacts: ev.LedgerFacts, MappedFrom: f.MappedFrom(e.Control)}
		if x, ok := f.Expectations.For(e.Control); ok {
			c.Expectation = &x
		}
		for _, ty := range ev.EventTypes {
			c.EventTypes = append(c.EventTypes, string(ty))
		}
		for _, q := range ev.Queries {
			c.Queries = append(c.Queries, query{q.Name, q.Summary, q.SQL})
		}
		doc.Controls = append(doc.Controls, c)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// What a bundle for ISO/IEC 27001:2022 contains does not change when the
// data is reorganised: the golden file was written from the data as it was
// before frameworks became folders, and any change to it is a change to
// every bundle built from now on.
func TestGolden(t *testing.T) {
	f, err := Load("iso27001-2022")
	if err != nil {
		t.Fatal(err)
	}
	got := render(t, f)
	const golden = "testdata/iso27001-2022.golden.json"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(golden + ".got")
	if !bytes.Equal(got, want) {
		os.WriteFile(golden+".got", got, 0o644)
		t.Errorf("what bundles take from iso27001-2022 changed: diff %s %s.got", golden, golden)
	}
}
