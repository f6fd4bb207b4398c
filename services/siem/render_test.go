package siem

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
)

// policySum is a policy file's digest in the samples.
const policySum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// samples is one event of every type in the catalog: the sample log, and
// the types it lacks, as the proxies, the API and the ledger write them
// (docs/FORMAT.md §1.1).
func samples(t *testing.T) []Sealed {
	t.Helper()
	f, err := os.Open("../../ledger/testdata/sample.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var raws [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		raws = append(raws, bytes.Clone(sc.Bytes()))
	}
	env := func(id, typ, actor, payload string) []byte {
		return fmt.Appendf(nil, `{"version":1,"id":%q,"type":%q,"time":"2026-11-27T10:00:00.5Z","tenant":"acme","source":{"kind":"http-proxy","instance":"gw-1"},"actor":{"issuer":"https://idp.example.com","subject":%q,"kind":"human","groups":["dba"]},"session_id":"h-1","session_seq":1,"target":{"kind":"http","name":"billing","host":"billing:8080"},"payload":%s}`, id, typ, actor, payload)
	}
	sys := func(id, typ, payload string) []byte {
		return fmt.Appendf(nil, `{"type":%q,"version":1,"id":%q,"time":"2026-11-27T10:00:01Z","tenant":"_ledger","source":{"kind":"ledger","instance":"log.example/log"},"actor":{"issuer":"auditledger","subject":"ledger","kind":"machine"},"payload":%s}`, typ, id, payload)
	}
	adm := func(id, typ, payload string) []byte {
		return fmt.Appendf(nil, `{"version":1,"id":%q,"type":%q,"time":"2026-11-27T10:00:03Z","tenant":"acme","source":{"kind":"cli","instance":"auditledger-admin"},"actor":{"issuer":"auditledger-cli","subject":"ops@host-1","kind":"human"},"target":{"kind":"auditledger-pii-keys"},"payload":%s}`, id, typ, payload)
	}
	raws = append(raws,
		env("h-1", "command.executed", "u-7", `{"protocol":"http","method":"POST","path":"/invoices","query":"a=1","statement":"POST /invoices?a=1","statement_sha256":"ab","body_bytes":10,"body_sha256":"cd","content_type":"application/json","client_addr":"10.1.2.3:5555"}`),
		env("h-2", "response.digest", "u-7", `{"command_id":"h-1","status":201,"bytes":40,"hmac":"hmac:ef","content_type":"application/json"}`),
		env("h-3", "command.blocked", "u-7", `{"protocol":"http","method":"DELETE","path":"/admin/x","statement":"DELETE /admin/x","statement_sha256":"01","rule":"no-admin-deletes","reason":"needs a ticket","client_addr":"10.1.2.3:5556"}`),
		env("h-4", "mask.applied", "u-7", `{"command_id":"h-1","rule_id":"pii","rule_version":1,"field":"customers.*.email","info_type":"EMAIL_ADDRESS","count":2,"method":"redact"}`),
		env("a-1", "authn.failed", "unknown", `{"client_addr":"10.1.2.4:4000","reason":"token expired","method":"GET","path":"/x"}`),
		env("a-2", "authn.succeeded", "u-7", `{"client_addr":"10.1.2.4:4001"}`),
		env("p-1", "approval.denied", "u-9", `{"approval_id":"apr-2","rule":"schema-change","statement_sha256":"aa","requester":{"issuer":"https://idp.example.com","subject":"u-7"},"requested_at":"2026-11-27T09:59:00Z","reason":"not now","session_id":"h-1"}`),
		env("p-2", "approval.expired", "approvals", `{"approval_id":"apr-3","rule":"schema-change","statement_sha256":"bb","requester":{"issuer":"https://idp.example.com","subject":"u-7"},"requested_at":"2026-11-27T09:49:00Z","reason":"","session_id":"h-1"}`),
		env("g-1", "access.granted", "u-9", `{"group":"dba"}`),
		env("g-2", "access.revoked", "u-9", `{"group":"dba"}`),
		env("c-1", "ssh.certificate.issued", "u-7", `{"client_addr":"10.1.2.3:5558","serial":"4242","key_id":"u-7","principals":["u-7"],"valid_before":"2026-11-27T18:00:00Z","public_key_sha256":"SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU","ca":"SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"}`),
		env("j-1", "access.requested", "u-7", `{"access_id":"acc-1","rule":"prod","status":"pending","target":"orders","requester":{"issuer":"https://idp.example.com","subject":"u-7"},"duration_seconds":7200,"requested_at":"2026-11-27T09:59:00Z","expires_at":"2026-11-27T10:59:00Z","reason":"INC-42"}`),
		env("j-2", "access.approved", "u-9", `{"access_id":"acc-1","rule":"prod","status":"pending","target":"orders","requester":{"issuer":"https://idp.example.com","subject":"u-7"},"duration_seconds":7200,"requested_at":"2026-11-27T09:59:00Z","expires_at":"2026-11-27T10:59:00Z","reason":"ok","approvals":1,"complete":false}`),
		env("j-3", "access.denied", "u-9", `{"access_id":"acc-2","rule":"prod","status":"denied","target":"orders","requester":{"issuer":"https://idp.example.com","subject":"u-7"},"duration_seconds":7200,"requested_at":"2026-11-27T09:59:00Z","expires_at":"2026-11-27T10:59:00Z","reason":"no"}`),
		env("j-4", "access.expired", "access", `{"access_id":"acc-3","rule":"prod","status":"expired","target":"orders","requester":{"issuer":"https://idp.example.com","subject":"u-7"},"duration_seconds":7200,"requested_at":"2026-11-27T09:59:00Z","expires_at":"2026-11-27T10:59:00Z","reason":"the grant reached its end"}`),
		env("r-1", "audit.accessed", "carol", `{"resource":"events","method":"GET","path":"/v1/events","client_addr":"127.0.0.1:9999","returned":3}`),
		env("r-2", "evidence.exported", "carol", `{"bundle_id":"0123","tenant":"acme","method":"POST","path":"/v1/evidence","client_addr":"127.0.0.1:9998"}`),
		sys("ledger/gap/3-4", "ledger.gap", `{"first_seq":3,"last_seq":4,"count":2,"noticed_at":"2026-11-27T10:00:01Z","stream":{"first_seq":1,"last_seq":8,"msgs":6,"num_deleted":2},"reason":"missing"}`),
		sys("ledger/rejected/9", "ledger.rejected", `{"seq":9,"subject":"audit.events.acme.x.p","reason":"bad","sha256":"00","bytes":3}`),
		sys("ledger/sealed/1", "ledger.segment.sealed", `{"first":0,"count":10}`),
		sys("ledger/verification/111", "ledger.verification", `{"started":"2026-11-27T09:59:00Z","finished":"2026-11-27T10:00:00Z","size":110,"root":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=","ok":false,"gaps":[{"index":42,"first_seq":3,"last_seq":4}],"failure":{"object":"segments/00000000000000000100.seg","index":105,"error":"index 105: record does not parse"}}`),
		sys("ledger/clock/110", "ledger.clock.status", `{"synchronised":false,"maxerror_us":16000000,"esterror_us":16000000,"status":64,"host":"host-1","source":"chrony"}`),
		[]byte(`{"version":1,"id":"identity-snapshot/0123456789abcdef/1","type":"identity.snapshot","time":"2026-11-27T10:00:07Z","tenant":"acme","source":{"kind":"api","instance":"api-1"},"actor":{"issuer":"auditledger","subject":"directory","kind":"machine"},"payload":{"snapshot":"0123456789abcdef","part":1,"parts":1,"source":"scim","issuer":"https://idp.example.com","endpoint":"https://idp.example.com/scim/v2","users":1,"active":1,"listing_sha256":"`+policySum+`","members":[{"subject":"u-7","active":true,"kind":"human","groups":["dba"]}],"groups":[{"name":"dba","members":1,"members_sha256":"`+policySum+`"}]}}`),
		sys("ledger/retention/20", "ledger.retention.changed", `{"tenant":"*","old_seconds":31536000,"new_seconds":220752000,"old":"365d","new":"2555d","by":"ledger.tenant_retention and the store URL's retention in /etc/auditledger.yaml, recorded by writer host-1"}`),
		[]byte(`{"version":1,"id":"legal-hold/0-41/1","type":"legal_hold.set","time":"2026-11-27T10:00:04Z","tenant":"_ledger","source":{"kind":"cli","instance":"auditledger-legal-hold"},"actor":{"issuer":"https://idp.example.com","subject":"u-9","kind":"human"},"payload":{"from":0,"to":41,"reason":"matter 2026-17","store":"s3://audit/log/","objects":["segments/00000000000000000000.seg","checkpoints/00000000000000000042"]}}`),
		[]byte(`{"version":1,"id":"legal-hold/0-41/2","type":"legal_hold.released","time":"2026-11-28T10:00:04Z","tenant":"_ledger","source":{"kind":"cli","instance":"auditledger-legal-hold"},"actor":{"issuer":"local:host-1","subject":"alice","kind":"human"},"payload":{"from":0,"to":41,"reason":"matter 2026-17 closed","store":"s3://audit/log/","objects":["segments/00000000000000000000.seg","checkpoints/00000000000000000042"]}}`),
		env("h-5", "command.blocked", "u-7", `{"protocol":"http","method":"DELETE","path":"/admin/y","statement":"DELETE /admin/y","statement_sha256":"02","rule":"no-admin-deletes","reason":"needs a ticket","client_addr":"10.1.2.3:5557","policy":{"version":2,"sha256":"`+policySum+`"}}`),
		env("s-1", "session.output", "u-7", `{"stream":"stdout","offset":0,"bytes":5,"data":"aGVsbG8=","policy":{"version":2,"sha256":"`+policySum+`"}}`),
		env("s-2", "session.ended", "u-7", `{"reason":"lost","last_seq":7,"started_at":"2026-11-27T09:00:00Z","detail":"the gateway stopped without ending the session; recorded when it started again"}`),
		[]byte(`{"version":1,"id":"policy-loaded/0123456789abcdef","type":"policy.loaded","time":"2026-11-27T09:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"gw-1"},"actor":{"issuer":"auditledger","subject":"gw-1","kind":"machine"},"payload":{"file":"/etc/auditledger/policy.yaml","version":1,"sha256":"`+policySum+`","exemptions_by_omission":[{"rule":"ddl","kind":"approve","groups":["dba"]}]}}`),
		adm("erasure/1/requested", "erasure.requested", `{"pseudonym":"0123456789abcdef0123456789abcdef","fields":["actor.email"],"reason":"art. 17 request 42","by":"ops"}`),
		adm("erasure/1/performed", "erasure.performed", `{"pseudonym":"0123456789abcdef0123456789abcdef","fields":["actor.email"],"reason":"art. 17 request 42","by":"ops","requested":"erasure/1/requested"}`),
		adm("erasure/2/refused", "erasure.refused", `{"pseudonym":"0123456789abcdef0123456789abcdef","fields":["actor.email"],"reason":"the data subject is under legal hold (case 7)","by":"ops"}`),
		adm("subject-hold/1", "subject_hold.set", `{"pseudonym":"0123456789abcdef0123456789abcdef","reason":"case 7","by":"ops"}`),
		[]byte(`{"version":1,"id":"alert/blocked-prod/41","type":"alert.raised","time":"2026-11-27T10:00:05Z","tenant":"acme","source":{"kind":"alerter","instance":"host-1"},"actor":{"issuer":"auditledger","subject":"alerter","kind":"machine"},"target":{"kind":"http","name":"billing"},"payload":{"rule":"blocked-prod","title":"Blocked","severity":"high","index":41,"event_id":"h-3","event_type":"command.blocked","sealed_at":"2026-11-27T10:00:04Z"}}`),
		[]byte(`{"version":1,"id":"access-review/0123456789abcdef0123456789abcdef","type":"access.reviewed","time":"2026-11-27T10:00:06Z","tenant":"acme","source":{"kind":"cli","instance":"auditledger-admin"},"actor":{"issuer":"auditledger-admin","subject":"ops@host-1","kind":"human"},"target":{"kind":"access-review","name":"acme"},"payload":{"tenant":"acme","from":"2026-11-01T00:00:00Z","to":"2026-12-01T00:00:00Z","grants":2,"holders":2,"sessions":3,"break_glass":1,"listing_sha256":"`+policySum+`","reason":"all grants justified","by":"ops@host-1"}}`),
		adm("subject-hold/2", "subject_hold.released", `{"pseudonym":"0123456789abcdef0123456789abcdef","reason":"case 7 closed","by":"ops"}`),
		[]byte(`{"version":1,"id":"attest/gw/1/1","type":"producer.attested","time":"2026-11-27T10:00:02Z","tenant":"_producers","source":{"kind":"producer","instance":"gw-1"},"actor":{"issuer":"auditledger","subject":"gw-1","kind":"machine"},"payload":{"producer":"gw-1","boot":"0000000000000001","seq":1,"events":[],"signature":"AA=="}}`),
	)
	var out []Sealed
	for i, raw := range raws {
		ev, err := events.Parse(raw)
		if err != nil {
			t.Fatalf("sample %d: %v\n%s", i, err, raw)
		}
		rec := ledger.Record{Index: uint64(100 + i), Time: time.Date(2026, 11, 27, 10, 0, 3, 123456789, time.UTC), Bound: true, Tenant: ledger.TenantHash(ev.Tenant), Event: raw}
		b := rec.AppendBinary(nil)
		s, err := FromRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	have := map[events.Type]bool{}
	for _, s := range out {
		have[s.Event.Type] = true
	}
	for _, typ := range events.Catalog {
		if !have[typ] {
			t.Fatalf("no sample of %s: every event type must be rendered and validated", typ)
		}
	}
	return out
}

// Every event type renders to OCSF that validates against the OCSF 1.2.0
// schema files, in the class docs/SIEM.md names; every rendering keeps the
// ledger index, leaf and event id.
func TestRenderings(t *testing.T) {
	schema := loadOCSF(t, "testdata/ocsf-schema-1.2.0")
	classes := map[events.Type]map[int]bool{}
	for _, s := range samples(t) {
		leaf := hex.EncodeToString(s.Leaf[:])
		o, err := RenderOCSF(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.validateEvent(t, o); err != nil {
			t.Errorf("%s (%s): %v\n%s", s.Event.Type, s.Event.ID, err, o)
		}
		var doc struct {
			ClassUID int `json:"class_uid"`
			Metadata struct {
				UID string `json:"uid"`
			} `json:"metadata"`
			Unmapped struct {
				Auditledger struct {
					Index uint64 `json:"index"`
					Leaf  string `json:"leaf"`
				} `json:"auditledger"`
			} `json:"unmapped"`
		}
		json.Unmarshal(o, &doc)
		if doc.Metadata.UID != s.Event.ID || doc.Unmapped.Auditledger.Index != s.Index || doc.Unmapped.Auditledger.Leaf != leaf {
			t.Errorf("%s: OCSF lost the ledger's coordinates: %s", s.Event.Type, o)
		}
		if classes[s.Event.Type] == nil {
			classes[s.Event.Type] = map[int]bool{}
		}
		classes[s.Event.Type][doc.ClassUID] = true

		c := string(RenderCEF(s))
		if !strings.HasPrefix(c, "CEF:0|auditledger|auditledger|") || !strings.Contains(c, "cn1="+fmt.Sprint(s.Index)) ||
			!strings.Contains(c, "cs1="+leaf) || !strings.Contains(c, "externalId="+cefValue(s.Event.ID)) || strings.ContainsAny(c, "\n\r") {
			t.Errorf("%s: CEF %s", s.Event.Type, c)
		}
		if strings.Count(c, "|") < 7 {
			t.Errorf("%s: CEF header: %s", s.Event.Type, c)
		}

		j := RenderJSON(s)
		var native struct {
			Index uint64          `json:"index"`
			Leaf  string          `json:"leaf"`
			Event json.RawMessage `json:"event"`
		}
		if err := json.Unmarshal(j, &native); err != nil || native.Index != s.Index || native.Leaf != leaf || !bytes.Equal(native.Event, s.Raw) {
			t.Errorf("%s: native JSON %s (%v)", s.Event.Type, j, err)
		}
	}
	// The classes docs/SIEM.md promises.
	want := map[events.Type]int{events.SessionStarted: 3002, events.AuthnFailed: 3002, events.CommandExecuted: 6005, events.MaskApplied: 2006,
		events.ApprovalGranted: 3005, events.AuditAccessed: 6003, events.LedgerGap: 6002}
	for typ, class := range want {
		if !classes[typ][class] {
			t.Errorf("%s rendered as classes %v, want %d among them", typ, classes[typ], class)
		}
	}
	if !classes[events.CommandExecuted][6003] || !classes[events.ResponseDigest][4002] {
		t.Errorf("HTTP requests and responses: %v %v, want API Activity and HTTP Activity", classes[events.CommandExecuted], classes[events.ResponseDigest])
	}
}

// The validator does refuse: an unknown attribute, a missing required
// one, an enum value outside the enum.
func TestOCSFValidatorRefuses(t *testing.T) {
	schema := loadOCSF(t, "testdata/ocsf-schema-1.2.0")
	s := samples(t)[1] // command.executed (postgres)
	o, _ := RenderOCSF(s)
	for name, change := range map[string]func(map[string]any){
		"no such attribute":            func(m map[string]any) { m["ledger_index"] = 1 },
		"required attribute actor":     func(m map[string]any) { delete(m, "actor") },
		"is not in its enum":           func(m map[string]any) { m["severity_id"] = 42 },
		"want a string":                func(m map[string]any) { m["message"] = 7 },
		"profile security_control":     func(m map[string]any) { m["action_id"] = 2 },
		"type_uid":                     func(m map[string]any) { m["type_uid"] = 600501 },
		"actor.user.type_id: 9 is not": func(m map[string]any) { m["actor"].(map[string]any)["user"].(map[string]any)["type_id"] = 9 },
	} {
		var m map[string]any
		json.Unmarshal(o, &m)
		change(m)
		b, _ := json.Marshal(m)
		if err := schema.validateEvent(t, b); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The policy reference a gateway puts on an event reaches every
// rendering: OCSF's unmapped.auditledger.policy, CEF's cs6.
func TestPolicyReferenceRendered(t *testing.T) {
	for _, s := range samples(t) {
		if s.Event.ID != "h-5" {
			continue
		}
		o, err := RenderOCSF(s)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Unmapped struct {
				Auditledger struct {
					Policy struct {
						Version int    `json:"version"`
						SHA256  string `json:"sha256"`
					} `json:"policy"`
				} `json:"auditledger"`
			} `json:"unmapped"`
		}
		json.Unmarshal(o, &doc)
		if p := doc.Unmapped.Auditledger.Policy; p.Version != 2 || p.SHA256 != policySum {
			t.Errorf("OCSF unmapped.auditledger.policy = %+v\n%s", p, o)
		}
		if c := string(RenderCEF(s)); !strings.Contains(c, "cs6Label=policySha256 cs6="+policySum) {
			t.Errorf("CEF lacks the policy digest: %s", c)
		}
		return
	}
	t.Fatal("no sample h-5")
}
