package eventscan

import (
	"encoding/json"
	"slices"
	"testing"
)

// union is every member Scan reads, as encoding/json decodes it.
type union struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Time    string `json:"time"`
	Tenant  string `json:"tenant"`
	Session string `json:"session_id"`
	Source  struct {
		Kind string `json:"kind"`
	} `json:"source"`
	Actor struct {
		Issuer      string   `json:"issuer"`
		Subject     string   `json:"subject"`
		Email       string   `json:"email"`
		Kind        string   `json:"kind"`
		Groups      []string `json:"groups"`
		DevIdentity bool     `json:"dev_identity"`
	} `json:"actor"`
	Target *struct {
		Name string `json:"name"`
	} `json:"target"`
	Payload map[string]json.RawMessage `json:"payload"`
}

var payloadNames = []string{"access_id", "access_required", "active", "approval_id", "break_glass", "client_addr", "column", "command_id", "command_tag", "count",
	"error_code", "esterror_us", "field", "framework", "from", "grants", "host", "kind", "listing_sha256", "maxerror_us", "members", "method",
	"not_after", "not_before", "part", "parts", "path", "read_error", "reason", "requester", "resource", "rows", "rule", "rule_id",
	"rule_version", "session_id", "snapshot", "source", "statement", "statement_sha256", "synchronised", "to", "unverified", "users"}

// same fails unless what Scan read of b is what encoding/json decodes,
// when Scan takes b.
func same(t *testing.T, b []byte) {
	var e Event
	if !e.Scan(b) {
		return
	}
	var u union
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatalf("Scan took %q, encoding/json: %v", b, err)
	}
	for _, c := range []struct {
		f    Field
		want string
	}{{ID, u.ID}, {Type, u.Type}, {Time, u.Time}, {Tenant, u.Tenant}, {SessionID, u.Session}, {SourceKind, u.Source.Kind},
		{ActorIssuer, u.Actor.Issuer}, {ActorSubject, u.Actor.Subject}, {ActorEmail, u.Actor.Email}, {ActorKind, u.Actor.Kind}} {
		if got := e.Str(c.f); got != c.want {
			t.Fatalf("%q: member %d is %q, encoding/json %q", b, c.f, got, c.want)
		}
		if got := string(e.Bytes(c.f)); got != c.want {
			t.Fatalf("%q: member %d's bytes are %q, encoding/json %q", b, c.f, got, c.want)
		}
	}
	if g := e.Strings(ActorGroups); !slices.Equal(g, u.Actor.Groups) || (g == nil) != (u.Actor.Groups == nil) {
		t.Fatalf("%q: groups %q, encoding/json %q", b, g, u.Actor.Groups)
	}
	if e.Bool(ActorDevIdentity) != u.Actor.DevIdentity {
		t.Fatalf("%q: dev_identity", b)
	}
	if e.Has(Target) != (u.Target != nil) || u.Target != nil && e.Str(TargetName) != u.Target.Name {
		t.Fatalf("%q: target", b)
	}
	for i, name := range payloadNames {
		f := PAccessID + Field(i)
		if got, want := string(e.Raw(f)), string(u.Payload[name]); got != want {
			t.Fatalf("%q: payload %s is %q, encoding/json %q", b, name, got, want)
		}
	}
}

var seeds = []string{
	`{"version":1,"id":"ev-1","type":"command.executed","time":"2026-11-27T10:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"u1","email":"a@b","kind":"human","groups":["dba","x"],"dev_identity":true},"session_id":"s1","session_seq":1,"target":{"kind":"postgres","name":"orders"},"payload":{"statement":"SELECT * FROM orders WHERE id = 1","statement_sha256":"ab","kind":"SELECT","rows":12,"requester":{"issuer":"i","subject":"s"},"members":[{"subject":"a","groups":["g"]}],"x":[1,-2.5e3,true,false,null,{}]}}`,
	` { "id" : "e\u00e9\n" , "type":"t", "actor":{"groups":[]} , "payload" : { } } `,
	`{"id":"a","id":"b"}`,
	`{"ID":"a"}`,
	`{"payload":{"Rule":"x"}}`,
	`{"payload":{"rule":"x","rule":"y"}}`,
	`{"target":null}`,
	`{"actor":{"groups":["a",1]}}`,
	`{"id":"a\xffb"}`,
	`{"payload":{"rows":01}}`,
	`{"payload":{"rows":1.}}`,
	`{"actor":{},"actor":{}}`,
	`{"id":"x"} x`,
	`{"payload":{"statement":"caf\u00e9 \"q\""}}`,
}

func TestScanSeeds(t *testing.T) {
	var e Event
	if !e.Scan([]byte(seeds[0])) || !e.Scan([]byte(seeds[1])) {
		t.Fatal("Scan does not take plain events")
	}
	for _, s := range seeds[2:13] {
		if e.Scan([]byte(s)) {
			t.Errorf("Scan took %q", s)
		}
	}
	for _, s := range seeds {
		same(t, []byte(s))
	}
}

func FuzzScan(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { same(t, b) })
}

func FuzzInt(f *testing.F) {
	for _, s := range []string{"0", "-0", "01", "12", "-5", "1e3", "1.0", "9223372036854775808", "-9223372036854775808", `"1"`, "null", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want int64
		if json.Unmarshal(b, &want) != nil {
			want = 0
		}
		if got := Int(b); got != want {
			t.Fatalf("Int(%q) = %d, encoding/json %d", b, got, want)
		}
	})
}

func FuzzString(f *testing.F) {
	for _, s := range []string{`"a"`, `"a\u00e9"`, "\"a\xff\"", `"\"`, `1`, `""`, `"a\"b"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want string
		if len(b) == 0 || b[0] != '"' || json.Unmarshal(b, &want) != nil {
			want = ""
		}
		if got := String(b); got != want {
			t.Fatalf("String(%q) = %q, encoding/json %q", b, got, want)
		}
	})
}
