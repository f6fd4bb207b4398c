package events_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/eventstest"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(events.Schema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("event.v1.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("event.v1.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The field each invalid example must be blamed on.
var wantField = map[string]string{
	"actor-kind":               "actor.kind",
	"sealed-bad-pseudonym":     "actor.email",
	"sealed-padded":            "actor.email",
	"sealed-too-long":          "actor.email",
	"control-char":             "actor.subject",
	"envelope-string-too-long": "source.instance",
	"id-not-ascii":             "id",
	"missing-id":               "id",
	"not-utc":                  "time",
	"payload-array":            "payload",
	"session-id-without-seq":   "session_seq",
	"session-seq-without-id":   "session_seq",
	"session-seq-zero":         "session_seq",
	"source-missing-instance":  "source.instance",
	"subject-empty":            "actor.subject",
	"target-missing-kind":      "target.kind",
	"tenant-with-dot":          "tenant",
	"unknown-actor-member":     "actor.role",
	"unknown-member":           "extra",
	"unknown-type":             "type",
	"version-string":           "version",
	"wrong-version":            "version",
}

// TestSchemaAndGoAgree runs the same corpus through the published JSON
// Schema (with an independent validator) and through Validate.
func TestSchemaAndGoAgree(t *testing.T) {
	schema := compileSchema(t)
	for _, kind := range []string{"valid", "invalid"} {
		files, _ := filepath.Glob(filepath.Join("testdata", kind, "*.json"))
		if len(files) == 0 {
			t.Fatalf("no %s examples", kind)
		}
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".json")
			b, _ := os.ReadFile(f)
			b = bytes.TrimSpace(b)
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			schemaErr := schema.Validate(doc)
			goErr := events.Validate(b)
			if kind == "valid" {
				if schemaErr != nil || goErr != nil {
					t.Errorf("%s: schema says %v, Go says %v; both should accept", f, schemaErr, goErr)
				}
				continue
			}
			if schemaErr == nil {
				t.Errorf("%s: the JSON Schema accepts it", f)
			}
			var fe *events.FieldError
			if !errors.As(goErr, &fe) {
				t.Errorf("%s: Go says %v, want a FieldError", f, goErr)
				continue
			}
			if want, ok := wantField[name]; !ok || fe.Field != want {
				t.Errorf("%s: error %q blames %q, want %q", f, goErr, fe.Field, want)
			}
		}
	}
}

func valid() []byte {
	b, _ := os.ReadFile(filepath.Join("testdata", "valid", "minimal.json"))
	return bytes.TrimSpace(b)
}

func TestBeyondSchema(t *testing.T) {
	dup := bytes.Replace(valid(), []byte(`"tenant":"acme"`), []byte(`"tenant":"acme","tenant":"evil"`), 1)
	if err := events.Validate(dup); !errors.Is(err, events.ErrSyntax) || !strings.Contains(err.Error(), "tenant: duplicate member name") {
		t.Errorf("duplicate member: %v", err)
	}
	nested := bytes.Replace(valid(), []byte(`"payload":{}`), []byte(`"payload":{"a":1,"a":2}`), 1)
	if err := events.Validate(nested); err == nil || !strings.Contains(err.Error(), "payload.a") {
		t.Errorf("duplicate member inside payload: %v", err)
	}
	big := bytes.Replace(valid(), []byte(`"payload":{}`), fmt.Appendf(nil, `"payload":{"x":"%s"}`, strings.Repeat("a", events.MaxSize)), 1)
	if err := events.Validate(big); !errors.Is(err, events.ErrTooLarge) {
		t.Errorf("oversized event: %v", err)
	}
	badUTF8 := bytes.Replace(valid(), []byte(`"subject":"alice"`), []byte("\"subject\":\"al\xffice\""), 1)
	if err := events.Validate(badUTF8); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
	if err := events.Validate([]byte(`{"version":1,`)); !errors.Is(err, events.ErrSyntax) {
		t.Errorf("truncated JSON: %v", err)
	}
}

func TestCatalogMatchesSchema(t *testing.T) {
	s := string(events.Schema())
	for _, ty := range events.Catalog {
		if !strings.Contains(s, `"`+string(ty)+`"`) {
			t.Errorf("type %s missing from the JSON Schema", ty)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	ev := &events.Event{
		Version: events.Version, ID: "ev-9", Type: events.CommandExecuted,
		Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Tenant: "acme",
		Source:    events.Source{Kind: "postgres-proxy", Instance: "p1"},
		Actor:     events.Actor{Issuer: "https://idp.example", Subject: "alice", Kind: events.Human},
		SessionID: "s1", SessionSeq: 1,
		Payload: []byte(`{"statement":"SELECT 1"}`),
	}
	b, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := events.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != ev.ID || !back.Time.Equal(ev.Time) || string(back.Payload) != string(ev.Payload) {
		t.Fatalf("round trip: %+v", back)
	}
	ev.Tenant = ""
	if _, err := ev.Marshal(); err == nil {
		t.Fatal("Marshal accepted an invalid event")
	}
}

func ExampleValidate() {
	err := events.Validate([]byte(`{"version":1,"id":"ev-1","type":"command.executed","time":"2026-11-26T12:00:00Z","tenant":"acme",` +
		`"source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"alice","kind":"person"},"payload":{}}`))
	fmt.Println(err)
	// Output: actor.kind: "person" is not "human" or "machine"
}

func TestCleanFitsAnyTextField(t *testing.T) {
	long := strings.Repeat("é\x00\n\x1b[31m", 2000) + "\xff"
	got := events.Clean(long, 0)
	ev := eventstest.Command("clean-1", "")
	ev.Actor.Subject = got
	if err := ev.Validate(); err != nil {
		t.Fatalf("a cleaned 10 KiB name full of control characters: %v", err)
	}
	if n := utf8.RuneCountInString(got); n != 256 || !strings.HasSuffix(got, "…") {
		t.Fatalf("cleaned to %d characters %q", n, got)
	}
	if events.Clean("alice", 0) != "alice" {
		t.Fatal("a clean name changed")
	}
}

// The rules docs/FORMAT.md §1 states beyond the schema, each with a vector
// in testdata/refused: events JSON Schema 2020-12 accepts (an independent
// validator says so here) and this format refuses — integers written with
// a fraction or exponent, a leap second, an escaped lone surrogate — and
// the field each is blamed on.
var wantRefused = map[string]struct{ field, reason string }{
	"version-one-point-zero":  {"version", "digits only"},
	"session-seq-exponent":    {"session_seq", "digits only"},
	"leap-second":             {"time", "leap second"},
	"lone-surrogate-envelope": {"actor.subject", "surrogate"},
	"lone-surrogate-payload":  {"payload.statement", "surrogate"},
}

func TestRefusedBeyondSchema(t *testing.T) {
	schema := compileSchema(t)
	files, _ := filepath.Glob(filepath.Join("testdata", "refused", "*.json"))
	if len(files) != len(wantRefused) {
		t.Fatalf("%d vectors in testdata/refused, %d expected", len(files), len(wantRefused))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		b := bytes.TrimSpace(must(os.ReadFile(f)))
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := schema.Validate(doc); err != nil {
			t.Errorf("%s: the JSON Schema refuses it too (%v): it belongs in testdata/invalid", f, err)
		}
		want := wantRefused[name]
		var fe *events.FieldError
		if err := events.Validate(b); !errors.As(err, &fe) || fe.Field != want.field || !strings.Contains(fe.Reason, want.reason) {
			t.Errorf("%s: Go says %v, want it refused at %s saying %q", f, err, want.field, want.reason)
		}
	}
}

// TestLegacyForms: each vector in testdata/legacy is a form releases
// before wrote, which the schema refuses, readers accept in sealed
// records (events.Parse) and events.Legacy names, and which the encoder
// never writes again.
func TestLegacyForms(t *testing.T) {
	schema := compileSchema(t)
	files, _ := filepath.Glob(filepath.Join("testdata", "legacy", "*.json"))
	if len(files) == 0 {
		t.Fatal("no legacy vectors")
	}
	for _, f := range files {
		b := bytes.TrimSpace(must(os.ReadFile(f)))
		doc, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if schema.Validate(doc) == nil {
			t.Errorf("%s: the schema accepts it: not a legacy form", f)
		}
		ev, err := events.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v, want it accepted in a sealed record", f, err)
		}
		if events.Legacy(b) != events.LegacySessionSeqZero {
			t.Errorf("%s: Legacy says %q", f, events.Legacy(b))
		}
		if events.LegacyOf(ev, b) != events.LegacySessionSeqZero {
			t.Errorf("%s: LegacyOf says %q", f, events.LegacyOf(ev, b))
		}
		again, err := ev.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if events.Legacy(again) != "" || events.LegacyOf(ev, again) != "" || schema.Validate(must(jsonschema.UnmarshalJSON(bytes.NewReader(again)))) != nil {
			t.Errorf("%s: encoded again as %s, still not in the schema's form", f, again)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
