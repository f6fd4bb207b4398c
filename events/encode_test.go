package events

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// sameAsJSON fails unless appendJSON writes what json.Marshal writes for
// ev, or both refuse it.
func sameAsJSON(t *testing.T, ev *Event) {
	t.Helper()
	want, werr := json.Marshal(ev)
	got, gerr := ev.appendJSON(nil)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("json.Marshal error %v, appendJSON error %v\nevent %+v", werr, gerr, ev)
	}
	if werr == nil && !bytes.Equal(got, want) {
		t.Fatalf("appendJSON differs from json.Marshal:\n got %s\nwant %s", got, want)
	}
}

// TestEncoderMatchesJSON holds the hand-written encoder to json.Marshal's
// bytes: the valid corpus, every optional field on and off, strings that
// need escaping, and payloads json.Marshal reformats or refuses.
func TestEncoderMatchesJSON(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "valid", "*.json"))
	if len(files) == 0 {
		t.Fatal("no corpus")
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		sameAsJSON(t, ev)
	}
	texts := []string{"plain", `quote " and \ backslash`, "<script>&amp;</script>", "line\u2028sep\u2029", "é ü 日本 🙂", "tab\tnot allowed but encoded", "\x7f", ""}
	payloads := []string{`{}`, `{ "a" : 1 , "b" : [ 1, 2, {"c": "d"} ] }`, `{"s":"\u00e9\n\"","n":-1.5e10,"t":true,"z":null}`,
		`{"a":1,"a":2}`, "{\"bad\":\"\xff\"}", `{"deep":{"x":[[[]]]}}`, "{\n\t\"ws\": \"x\"\n}", `{"esc":"\/\b\f"}`}
	r := rand.New(rand.NewPCG(1, 2))
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	for i := range 2000 {
		ev := &Event{Version: Version, ID: "id-" + pick(texts), Type: Catalog[r.IntN(len(Catalog))],
			Time:   time.Unix(r.Int64N(4e9), r.Int64N(1e9)*int64(r.IntN(2))).UTC(),
			Tenant: "acme", Source: Source{Kind: pick(texts), Instance: pick(texts)},
			Actor:   Actor{Issuer: pick(texts), Subject: pick(texts), Kind: Human},
			Payload: jsontext.Value(pick(payloads))}
		if i%2 == 0 {
			ev.Source.Version = pick(texts)
			ev.Actor.Email = pick(texts)
			ev.Actor.DevIdentity = true
			ev.SessionID, ev.SessionSeq = "s-"+pick(texts), r.Uint64()
		}
		switch i % 3 {
		case 0:
			ev.Actor.Groups = []string{pick(texts), pick(texts)}
		case 1:
			ev.Actor.Groups = []string{}
		}
		if i%4 != 0 {
			ev.Target = &Target{Kind: pick(texts)}
			if i%4 == 1 {
				ev.Target.Name, ev.Target.Host, ev.Target.Database = pick(texts), pick(texts), pick(texts)
			}
		}
		sameAsJSON(t, ev)
	}
}

// FuzzEncoder: for every event Parse accepts, appendJSON writes what
// json.Marshal writes.
func FuzzEncoder(f *testing.F) {
	addCorpus(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Parse(b)
		if err != nil {
			return
		}
		sameAsJSON(t, ev)
	})
}

func BenchmarkMarshal(b *testing.B) {
	raw, err := os.ReadFile("testdata/valid/full.json")
	if err != nil {
		b.Fatal(err)
	}
	ev, err := Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("appendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ev.Marshal(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := ev.Validate(); err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
