package compliance

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// The data loads and holds together: 93 Annex A controls, the
// correspondences the issue names, and evidence for every control the
// product claims to support.
func TestLoad(t *testing.T) {
	f, err := Load(Default)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.Catalog.Controls); n != 93 {
		t.Errorf("%d Annex A controls, want 93", n)
	}
	themes := map[byte]int{}
	for _, c := range f.Catalog.Controls {
		themes[c.ID[0]]++
	}
	if themes['5'] != 37 || themes['6'] != 8 || themes['7'] != 14 || themes['8'] != 34 {
		t.Errorf("controls per theme %v, want 37 organizational, 8 people, 14 physical, 34 technological", themes)
	}
	for from, to := range map[string]string{"A.9.2.3": "8.2", "A.12.4.1": "8.15", "A.12.4.2": "8.15", "A.12.4.3": "8.15", "A.12.4.4": "8.17", "A.9.4.1": "8.3"} {
		if got := f.MappedFrom(to); !containsPrefix(got, "iso27001-2013 "+from+" ") {
			t.Errorf("%s should map to %s: %v", from, to, got)
		}
	}
	// NIST's own mapping of SP 800-53 Rev. 5 to ISO/IEC 27001 pairs these.
	for from, to := range map[string]string{"AU-8": "8.17", "AC-5": "5.3", "SI-4": "8.16", "IA-5": "5.17"} {
		if got := f.MappedFrom(to); !containsPrefix(got, "nist-800-53r5 "+from+" ") {
			t.Errorf("%s should map to %s: %v", from, to, got)
		}
	}
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"CC6.1", "CC6.2", "CC6.3", "CC6.6", "CC6.7", "CC6.8", "CC7.2", "CC7.3", "CC8.1",
		"AU-2", "AU-3", "AU-6", "AU-9(3)", "AU-10", "AU-11", "AU-12", "AU-14", "AC-2", "AC-6(9)", "IA-2", "CM-3"} {
		found := false
		for _, o := range all {
			for _, m := range o.Crosswalk.Controls {
				found = found || m.ID == id
			}
		}
		if !found {
			t.Errorf("no crosswalk for %s", id)
		}
	}
	for _, c := range []string{"5.3", "5.15", "5.16", "5.17", "5.18", "5.28", "5.33", "8.2", "8.3", "8.5", "8.11", "8.12", "8.15", "8.16", "8.17", "8.32"} {
		if _, ok := f.Evidence(c); !ok {
			t.Errorf("no evidence mapping for %s", c)
		}
	}
	if !strings.Contains(f.Version(), "iso27001-2022@2022 mapping v4") {
		t.Errorf("version %q", f.Version())
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// The list of frameworks is the folders of compliance/data: each has its
// metadata and catalog, every one but the hub a crosswalk, and those with
// an evidence mapping are the ones a bundle is built for.
func TestFrameworks(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	// The frameworks whose data the repository has, oldest edition first;
	// a framework added later may fall anywhere in the list.
	var ids []string
	for i, f := range all {
		if f.Catalog.Publisher == "" || f.Catalog.Published == 0 {
			t.Errorf("%s: no publisher or year", f.Catalog.ID)
		}
		if i > 0 && f.Catalog.Published < all[i-1].Catalog.Published {
			t.Errorf("%s (%d) after %s (%d): want oldest edition first", f.Catalog.ID, f.Catalog.Published, all[i-1].Catalog.ID, all[i-1].Catalog.Published)
		}
		if slices.Contains([]string{"iso27001-2013", "soc2-2017", "nist-800-53r5", "iso27001-2022"}, f.Catalog.ID) {
			ids = append(ids, f.Catalog.ID)
		}
	}
	if want := []string{"iso27001-2013", "soc2-2017", "nist-800-53r5", "iso27001-2022"}; !slices.Equal(ids, want) {
		t.Errorf("frameworks %v, want %v (oldest edition first)", ids, want)
	}
	if !slices.Contains(Frameworks, Default) || slices.Contains(Frameworks, "soc2-2017") {
		t.Errorf("Frameworks %v, want %s and no framework without an evidence mapping", Frameworks, Default)
	}
	if _, err := Load("iso27001-2013"); !errors.Is(err, ErrNoEvidence) || !strings.Contains(err.Error(), "iso27001-2022") {
		t.Errorf("a bundle for a framework without an evidence mapping: %v", err)
	}
	if _, err := Load("iso27001-2005"); !errors.Is(err, ErrUnknownFramework) || !strings.Contains(err.Error(), "iso27001-2013, iso27001-2022, nist-800-53r5") {
		t.Errorf("unknown framework: %v", err)
	}

	// Adding a framework is adding a folder.
	fsys := dataFS(t)
	fsys["data/example-1/framework.yaml"] = file("id: example-1\ntitle: Example\nversion: \"1\"\npublisher: Example Org\npublished: 9999\nsource: made up for this test\n")
	fsys["data/example-1/catalog.yaml"] = file("controls:\n  - {id: E.1, title: Event logging}\n")
	fsys["data/example-1/crosswalk.yaml"] = file("source: made up for this test\ncontrols:\n  - {id: E.1, to: [\"8.15\"], relationship: equal}\n")
	s, err := read(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if f := s.order[len(s.order)-1]; f.Catalog.ID != "example-1" {
		t.Errorf("last framework %s, want example-1 (published 9999)", f.Catalog.ID)
	}
	if got := s.hub.MappedFrom("8.15"); got[len(got)-1] != "example-1 E.1 (equal)" {
		t.Errorf("8.15 mapped from %v, want example-1 E.1 last", got)
	}
	fsys["data/example-1/evidence.yaml"] = fsys["data/iso27001-2022/evidence.yaml"]
	if got := withEvidence(fsys); !slices.Contains(got, "example-1") || !slices.Contains(got, Default) {
		t.Errorf("with an evidence mapping: %v", got)
	}
}

// Two frameworks meet through the 2022 controls: an ISO/IEC 27001:2013
// control reaches the SOC 2 criteria that share its 2022 control, with the
// relationship that follows from the two crosswalks.
func TestCorrespond(t *testing.T) {
	got, err := Correspond("iso27001-2013", "A.9.2.3", "soc2-2017")
	if err != nil {
		t.Fatal(err)
	}
	// A.9.2.3 equals 8.2; CC6.3 intersects 5.15, 5.18 and 8.2.
	want := []Correspondence{{Control: Control{ID: "CC6.3", Title: "Role-based access, least privilege and removal of access"}, Via: "8.2", Relationship: Intersects}}
	if !equalCorrespondences(got, want) {
		t.Errorf("A.9.2.3 → SOC 2: %+v, want %+v", got, want)
	}
	// The other way round, and to the hub itself.
	back, err := Correspond("soc2-2017", "CC6.3", "iso27001-2013")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range back {
		ids = append(ids, c.Control.ID+" via "+c.Via+" "+string(c.Relationship))
	}
	if w := []string{
		"A.9.1.1 via 5.15 related", "A.9.1.2 via 5.15 related",
		"A.9.2.2 via 5.18 related", "A.9.2.5 via 5.18 related", "A.9.2.6 via 5.18 related",
		"A.9.2.3 via 8.2 intersects",
	}; !slices.Equal(ids, w) {
		t.Errorf("CC6.3 → 2013:\n%s\nwant\n%s", strings.Join(ids, "\n"), strings.Join(w, "\n"))
	}
	hub, err := Correspond("iso27001-2013", "A.12.1.2", Hub)
	if err != nil {
		t.Fatal(err)
	}
	if len(hub) != 1 || hub[0].Control.ID != "8.32" || hub[0].Relationship != Subset {
		t.Errorf("A.12.1.2 → 2022: %+v, want 8.32 subset", hub)
	}
	eq, err := Correspond(Hub, "8.2", "iso27001-2013")
	if err != nil {
		t.Fatal(err)
	}
	if len(eq) != 1 || eq[0].Control.ID != "A.9.2.3" || eq[0].Relationship != Equal {
		t.Errorf("8.2 → 2013: %+v, want A.9.2.3 equal", eq)
	}
	if _, err := Correspond("iso27001-2013", "A.99", "soc2-2017"); !errors.Is(err, ErrUnknownControl) {
		t.Errorf("unknown control: %v", err)
	}
	// A framework other than the hub lists what maps to its controls with
	// the 2022 control they meet in.
	soc2, err := Lookup("soc2-2017")
	if err != nil {
		t.Fatal(err)
	}
	if got := soc2.MappedFrom("CC6.3"); !slices.Contains(got, "iso27001-2013 A.9.2.3 (intersects, through iso27001-2022 8.2)") || !slices.Contains(got, "iso27001-2022 8.2 (intersects)") {
		t.Errorf("CC6.3 mapped from %v", got)
	}
}

func equalCorrespondences(a, b []Correspondence) bool {
	return slices.EqualFunc(a, b, func(x, y Correspondence) bool {
		return x.Control.ID == y.Control.ID && x.Control.Title == y.Control.Title && x.Via == y.Via && x.Relationship == y.Relationship
	})
}

// How two relationships to one hub control combine.
func TestThrough(t *testing.T) {
	for _, c := range []struct{ xh, yh, want Relationship }{
		{Equal, Equal, Equal},
		{Equal, Subset, Superset},
		{Subset, Equal, Subset},
		{Equal, Intersects, Intersects},
		{Intersects, Equal, Intersects},
		{Subset, Subset, Related},
		{Subset, Intersects, Related},
		{Intersects, Intersects, Related},
	} {
		if got := through(c.xh, c.yh); got != c.want {
			t.Errorf("through(%s, %s) = %s, want %s", c.xh, c.yh, got, c.want)
		}
	}
}

// Broken data is refused with the file, the line and what is wrong.
func TestDataErrors(t *testing.T) {
	for _, c := range []struct {
		name, file, old, new string
		want                 string
	}{
		{"mapped to an unknown control", "data/soc2-2017/crosswalk.yaml", `{id: CC6.2, to: ["5.16", "5.18"]`, `{id: CC6.2, to: ["5.16", "9.9"]`,
			`compliance/data/soc2-2017/crosswalk.yaml:10: CC6.2 maps to 9.9, not a control of iso27001-2022`},
		{"an unknown event type", "data/iso27001-2022/evidence.yaml", "[approval.requested,", "[approval.reqested,",
			`compliance/data/iso27001-2022/evidence.yaml:17: 5.3: event type "approval.reqested" unknown`},
		{"a misspelt key", "data/nist-800-53r5/crosswalk.yaml", "{id: AU-3, to:", "{id: AU-3, tp:",
			`compliance/data/nist-800-53r5/crosswalk.yaml:10: unknown field "tp" in crosswalk.yaml.controls (did you mean "to"?)`},
		{"a relationship of its own", "data/iso27001-2013/crosswalk.yaml", `{id: A.6.1.1, to: ["5.2"], relationship: equal}`, `{id: A.6.1.1, to: ["5.2"], relationship: same}`,
			`compliance/data/iso27001-2013/crosswalk.yaml:10: A.6.1.1: relationship "same", want equal, subset or intersects`},
		{"a control crosswalked but not in the catalog", "data/soc2-2017/crosswalk.yaml", "{id: CC8.1,", "{id: CC8.2,",
			`compliance/data/soc2-2017/crosswalk.yaml:17: CC8.2 is not a control of soc2-2017 (catalog.yaml)`},
		{"a repeated control", "data/iso27001-2022/catalog.yaml", `{id: "5.2", title:`, `{id: "5.1", title:`,
			`compliance/data/iso27001-2022/catalog.yaml:6: control "5.1" repeated`},
		{"an id unlike its folder", "data/soc2-2017/framework.yaml", "id: soc2-2017", "id: soc2",
			`compliance/data/soc2-2017/framework.yaml:1: id "soc2", but the folder is "soc2-2017"`},
		{"a wrong type", "data/iso27001-2022/framework.yaml", "published: 2022", "published: last year",
			`compliance/data/iso27001-2022/framework.yaml:8: "last year" is not a whole number`},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys := dataFS(t)
			b := string(fsys[c.file].Data)
			if !strings.Contains(b, c.old) {
				t.Fatalf("%s does not hold %q", c.file, c.old)
			}
			fsys[c.file] = file(strings.Replace(b, c.old, c.new, 1))
			_, err := read(fsys)
			var de *DataError
			if !errors.As(err, &de) || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("got  %v\nwant %s", err, c.want)
			}
		})
	}
	for _, c := range []struct {
		name string
		edit func(fstest.MapFS)
		want string
	}{
		{"a misnamed file", func(m fstest.MapFS) {
			m["data/soc2-2017/crosswalks.yaml"] = m["data/soc2-2017/crosswalk.yaml"]
			delete(m, "data/soc2-2017/crosswalk.yaml")
		}, `compliance/data/soc2-2017/crosswalks.yaml: unknown file in a framework folder, want framework.yaml, catalog.yaml, crosswalk.yaml, evidence.yaml, expectations.yaml (did you mean "crosswalk.yaml"?)`},
		{"no crosswalk", func(m fstest.MapFS) { delete(m, "data/soc2-2017/crosswalk.yaml") },
			`compliance/data/soc2-2017/crosswalk.yaml: missing`},
		{"a file beside the folders", func(m fstest.MapFS) { m["data/crosswalks.yaml"] = file("version: 1\n") },
			`compliance/data/crosswalks.yaml: not a framework folder`},
		{"no hub", func(m fstest.MapFS) {
			for name := range m {
				if strings.HasPrefix(name, "data/iso27001-2022/") {
					delete(m, name)
				}
			}
		}, `compliance/data/iso27001-2022: missing: the hub of every crosswalk`},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys := dataFS(t)
			c.edit(fsys)
			_, err := read(fsys)
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("got  %v\nwant %s", err, c.want)
			}
		})
	}
}

// dataFS is a copy of the embedded data to break.
func dataFS(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(data, "data", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(data, name)
		m[name] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
