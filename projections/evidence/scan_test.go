package evidence

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/internal/eventscan"
)

// tableLog is events of every type a derived table reads.
func tableLog() [][]byte {
	ev := func(id, typ, tenant, subject, kind, groups, target, payload string) []byte {
		return fmt.Appendf(nil, `{"version":1,"id":%q,"type":%q,"time":"2026-12-01T10:00:%02d.5Z","tenant":%q,"source":{"kind":"postgres-proxy","instance":"p"},"actor":{"issuer":"https://idp","subject":%q,"email":"x@example.com","kind":%q,"groups":%s,"dev_identity":%t},"session_id":"s1"%s,"payload":%s}`,
			id, typ, len(id), tenant, subject, kind, groups, subject == "dave", target, payload)
	}
	tg := `,"target":{"kind":"postgres","name":"orders"}`
	return [][]byte{
		ev("e1", "session.started", "acme", "alice", "human", `["dba","ops"]`, tg, `{}`),
		ev("e2", "authn.failed", "acme", "bob", "human", `[]`, "", `{"client_addr":"10.0.0.1","reason":"bad password"}`),
		ev("e3", "authn.succeeded", "acme", "bob", "human", `[]`, "", `{}`),
		ev("e4", "approval.requested", "acme", "alice", "human", `["dba"]`, tg, `{"approval_id":"a1","rule":"ddl","statement_sha256":"aa"}`),
		ev("e5", "approval.granted", "acme", "bob", "human", `[]`, "", `{"approval_id":"a1","session_id":"s1","statement_sha256":"aa","requester":{"issuer":"https://idp","subject":"alice"}}`),
		ev("e6", "command.executed", "acme", "alice", "human", `[]`, tg, `{"statement":"ALTER TABLE t ADD c int","statement_sha256":"aa","kind":"alter"}`),
		ev("e7", "response.digest", "acme", "alice", "human", `[]`, tg, `{"command_id":"e6","rows":0,"command_tag":"ALTER TABLE"}`),
		ev("e8", "command.executed", "acme", "dave", "human", `[]`, tg, `{"statement":"SELECT email FROM customers","kind":"SELECT"}`),
		ev("e9", "mask.applied", "acme", "dave", "human", `[]`, tg, `{"command_id":"e8","column":"email","rule_id":"m1","rule_version":3,"method":"hash","count":7}`),
		ev("e10", "response.digest", "acme", "dave", "human", `[]`, tg, `{"command_id":"e8","rows":7,"command_tag":"SELECT 7"}`),
		ev("e11", "command.blocked", "acme", "carol", "human", `[]`, tg, `{"statement":"DROP TABLE z","rule":"no-drop","reason":"no"}`),
		ev("e12", "command.executed", "acme", "carol", "human", `[]`, tg, `{"statement":"DROP TABLE y","kind":"DROP"}`),
		ev("e13", "access.reviewed", "acme", "erin", "human", `[]`, "", `{"from":"2026-11-01","to":"2026-12-01","grants":3,"break_glass":0,"listing_sha256":"ff"}`),
		ev("e14", "identity.snapshot", "acme", "directory", "machine", `[]`, "", `{"snapshot":"s","part":1,"parts":1,"source":"scim","users":2,"active":1,"listing_sha256":"ee","members":[]}`),
		ev("e15", "audit.accessed", "acme", "carol", "human", `[]`, "", `{"resource":"events"}`),
		ev("e16", "evidence.exported", "acme", "carol", "human", `[]`, "", `{"framework":"iso27001-2022"}`),
		ev("e17", "approval.requested", "acme", "dave", "human", `["dba"]`, tg, `{"approval_id":"a2","rule":"ddl"}`),
		ev("e18", "approval.denied", "acme", "dave", "human", `[]`, "", `{"approval_id":"a2"}`),
		ev("c1", "ledger.clock.status", "_ledger", "writer", "machine", `[]`, "", `{"synchronised":true,"maxerror_us":1000,"esterror_us":10,"source":"ntp","host":"h1"}`),
	}
}

// The derived tables and the census are the same whether the events are
// read by eventscan or decoded by encoding/json, in every form eventscan
// takes and those it leaves to encoding/json.
func TestTablesSameScannedOrDecoded(t *testing.T) {
	fw, err := compliance.Load("iso27001-2022")
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string]func([]byte) []byte{
		"as sealed": func(b []byte) []byte { return b },
		"spaced": func(b []byte) []byte {
			return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte(`":`), []byte("\" :\n")), []byte(`,"`), []byte(" ,\t\""))
		},
		"escaped": func(b []byte) []byte {
			return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte(`alice`), []byte(`\u0061lice`)), []byte(`ddl`), []byte(`d\u0064l\n`))
		},
		"non-ascii": func(b []byte) []byte {
			return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte(`alice`), []byte(`alicé`)), []byte(`DROP TABLE`), []byte(`DROP TÄBLE`))
		},
		"upper-case": func(b []byte) []byte { return bytes.ReplaceAll(b, []byte(`"kind":`), []byte(`"Kind":`)) },
		"null target": func(b []byte) []byte {
			return bytes.ReplaceAll(b, []byte(`"target":{"kind":"postgres","name":"orders"}`), []byte(`"target":null`))
		},
	}
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for name, form := range forms {
		var sets [2]*tableSet
		var census [2]*identityCensus
		for i := range sets {
			if sets[i], err = newTables(derivedOf(fw)); err != nil {
				t.Fatal(err)
			}
			census[i] = newCensus()
		}
		for i, e := range tableLog() {
			b := form(e)
			system := bytes.Contains(b, []byte(`"_ledger"`))
			var ev eventscan.Event
			scanned := ev.Scan(b)
			if name == "as sealed" && !scanned {
				t.Fatalf("eventscan does not read %s", b)
			}
			sets[0].noteScanned(uint64(i), at, b, &ev, scanned, system)
			sets[1].noteScanned(uint64(i), at, b, nil, false, system)
			if !system {
				census[0].noteScanned(b, &ev, scanned)
				census[1].noteScanned(b, nil, false)
			}
			sealed := bytes.ReplaceAll(b, []byte(`x@example.com`), []byte(`pii1.0123456789abcdef0123456789abcdef.AAECAwQF`))
			var sev eventscan.Event
			if got, want := sealedInScanned(1, sealed, &sev, sev.Scan(sealed)), sealedInScanned(1, sealed, nil, false); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: sealed fields scanned %v, decoded %v", name, got, want)
			}
		}
		if sets[0].err != nil || sets[1].err != nil {
			t.Fatalf("%s: %v, %v", name, sets[0].err, sets[1].err)
		}
		rows := 0
		for _, k := range sets[0].order {
			got, n, _ := sets[0].csv(k, &tableIn{})
			want, _, _ := sets[1].csv(k, &tableIn{})
			if !bytes.Equal(got, want) {
				t.Errorf("%s: table %s scanned:\n%s\ndecoded:\n%s", name, k, got, want)
			}
			rows += n
		}
		if fmt.Sprint(census[0]) != fmt.Sprint(census[1]) {
			t.Errorf("%s: census scanned %v, decoded %v", name, census[0], census[1])
		}
		if name == "as sealed" && rows < 40 {
			t.Fatalf("only %d rows derived", rows)
		}
	}
}
