package events

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// addCorpus seeds f with every valid and invalid example event.
func addCorpus(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		if len(files) == 0 {
			f.Fatalf("no example events in testdata/%s", dir)
		}
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// FuzzParse: Parse never panics, whatever it accepts survives Marshal
// and Parse again unchanged, and LegacyOf names its form as Legacy does.
func FuzzParse(f *testing.F) {
	addCorpus(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Parse(b)
		if err != nil {
			return
		}
		if got, want := LegacyOf(ev, b), Legacy(b); got != want {
			t.Fatalf("LegacyOf says %q, Legacy %q: %s", got, want, b)
		}
		out, err := ev.Marshal()
		if err != nil {
			t.Fatalf("accepted event does not marshal: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoded event rejected: %v\n%s", err, out)
		}
		if !ev.Time.Equal(back.Time) {
			t.Fatalf("time changed: %v → %v", ev.Time, back.Time)
		}
		back.Time = ev.Time // same instant; the zone's name may differ (+00:00 vs Z)
		if len(ev.Actor.Groups) == 0 && len(back.Actor.Groups) == 0 {
			ev.Actor.Groups, back.Actor.Groups = nil, nil // [] is omitted on output
		}
		if !reflect.DeepEqual(ev, back) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", ev, back)
		}
	})
}
