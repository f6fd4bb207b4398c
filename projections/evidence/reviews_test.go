package evidence_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/projections/evidence"
)

// buildAt builds r's bundle of tenant for [from, to) as if at now.
func (r *run) buildAt(t *testing.T, tenant string, from, to, now time.Time) {
	t.Helper()
	fw := must(compliance.Load("iso27001-2022"))
	var buf bytes.Buffer
	m, err := evidence.Build(t.Context(), evidence.Config{DB: r.db, Framework: fw, Tenant: tenant, From: from, To: to, Now: func() time.Time { return now },
		Signer: r.signer, LogVKey: r.vkey, GrantVKey: grantSigner.Verifier().String(), Generator: "auditledger test",
		RequestedBy: evidence.Requester{Issuer: "https://idp.test", Subject: "auditor-1"}}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	r.m, r.bundle = m, buf.Bytes()
}

// 8.16 tests the period's edges in a bundle as FORMAT §12.1 defines them:
// a month of globex's with no review, and acme's whose only review is 20
// days before the period's end, are exceptions, the end's row of no
// event; the time before the log's first record, and after the bundle was
// built, is not the period's; the verifier and FORMAT's reading re-derive
// each, and a stolen evidence key cannot drop the end's row.
func TestBundleReviewsCoverThePeriod(t *testing.T) {
	store, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	r := newRunWith(t, store, t0, 0, func(seg int) [][]byte {
		if seg != 1 {
			return nil
		}
		// acme's auditor reads the audit data once, as the segment of 1h
		// is sealed; a machine reads globex's (never a review)
		return [][]byte{
			fmt.Appendf(nil, `{"version":1,"tenant":"acme","source":{"kind":"api","instance":"api-1"},"actor":{"issuer":"https://idp.example.com","subject":"u-4000","kind":"human"},"id":"review-1","type":"audit.accessed","time":"2026-07-01T01:00:00Z","payload":{"resource":"events","method":"GET","path":"/v1/events"}}`),
			fmt.Appendf(nil, `{"version":1,"tenant":"globex","source":{"kind":"api","instance":"api-1"},"actor":{"issuer":"https://idp.example.com","subject":"siem","kind":"machine"},"id":"siem-1","type":"audit.accessed","time":"2026-07-01T01:00:00Z","payload":{"resource":"events","method":"GET","path":"/v1/events"}}`),
		}
	})
	day := 24 * time.Hour
	later := t0.Add(365 * day) // built long after every period below
	lateEnd := compliance.ExReviewLateEnd
	for _, c := range []struct {
		name             string
		tenant           string
		from, to, now    time.Time
		want             string // assertion.csv without its header
		result           string
		population, exns int
	}{
		{"no review in a month", "globex", t0.Add(30 * time.Minute), t0.Add(30*time.Minute + 30*day), later,
			",,,,no review from 2026-07-01T00:30:00Z to 2026-07-31T00:30:00Z,," + lateEnd + "\n", compliance.Exceptions, 1, 1},
		{"the last review 20 days before the end", "acme", t0.Add(30 * time.Minute), t0.Add(20*day + time.Hour), later,
			"%d,audit.accessed,,u-4000,events,,\n,,,,no review from 2026-07-01T01:00:00Z to 2026-07-21T01:00:00Z,," + lateEnd + "\n", compliance.Exceptions, 2, 1},
		{"within a day", "acme", t0.Add(30 * time.Minute), t0.Add(150 * time.Minute), later,
			"%d,audit.accessed,,u-4000,events,,\n", compliance.Effective, 1, 0},
		// the log began 10 days into the period: the time before its first
		// record is not counted
		{"from the log's first record", "acme", t0.Add(-10 * day), t0.Add(150 * time.Minute), later,
			"%d,audit.accessed,,u-4000,events,,\n", compliance.Effective, 1, 0},
		// built 3 hours after the review, 20 days before the period's end:
		// what came after had yet to be reviewed
		{"to the bundle's creation", "acme", t0.Add(30 * time.Minute), t0.Add(20*day + time.Hour), t0.Add(4 * time.Hour),
			"%d,audit.accessed,,u-4000,events,,\n", compliance.Effective, 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := *r
			r.buildAt(t, c.tenant, c.from, c.to, c.now)
			a := control(r.m, "8.16").Assertion
			if a == nil || a.Result != c.result || a.Population != c.population || a.Exceptions != c.exns {
				t.Fatalf("8.16: %+v, want %s, population %d, exceptions %d", a, c.result, c.population, c.exns)
			}
			files := zipFiles(t, r.bundle)
			want := c.want
			if strings.Contains(want, "%d") {
				want = fmt.Sprintf(want, reviewIndex(t, files))
			}
			if got := strings.TrimPrefix(string(files["controls/8.16/assertion.csv"]), "index,type,session_id,actor,item,evidence_index,exception\n"); got != want {
				t.Errorf("assertion.csv:\n%s\nwant\n%s", got, want)
			}
			if _, err := r.verify(r.bundle); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if c.exns > 0 && !strings.Contains(string(files["index.html"]), "<td>the period's end</td><td class=\"bad\">"+strings.ReplaceAll(lateEnd, "'", "&#39;")+"</td>") {
				t.Errorf("index.html does not list the end's exception")
			}
			specAgrees(t, &r)
			if c.exns == 0 {
				return
			}
			// With a stolen evidence key: the end's row dropped, the
			// control made effective.
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			attacker, _ := ssh.NewSignerFromKey(priv)
			csv := files["controls/8.16/assertion.csv"]
			files["controls/8.16/assertion.csv"] = csv[:bytes.LastIndex(csv[:len(csv)-1], []byte("\n"))+1]
			editManifest(t, files, func(m *evidence.Manifest) {
				for i := range m.Controls {
					if a := m.Controls[i].Assertion; a != nil && m.Controls[i].ID == "8.16" {
						a.Population, a.Exceptions, a.Result = a.Population-1, 0, compliance.Effective
						if a.Population == 0 {
							a.Result = compliance.NotObserved
						}
					}
				}
			})
			resign(t, files, attacker)
			bundle := rezip(t, files)
			_, err := evidence.Verify(bytes.NewReader(bundle), int64(len(bundle)), evidence.VerifyOptions{LogVerifier: r.verifer,
				AllowedSigners: []ssh.PublicKey{attacker.PublicKey()}, GrantVerifier: grantSigner.Verifier(), AllowUnlocked: true})
			if err == nil || !strings.Contains(err.Error(), "controls/8.16/assertion.csv") {
				t.Errorf("the end's row dropped: %v", err)
			}
		})
	}

	// A bundle is not built with expectations of version 2, whose rule
	// tested neither edge.
	fw := must(compliance.Load("iso27001-2022"))
	v2 := olderExpectations(fw.ExpectationsFile, 2)
	var buf bytes.Buffer
	_, err = evidence.Build(t.Context(), evidence.Config{DB: r.db, Framework: fw, Tenant: "acme", From: t0.Add(30 * time.Minute), To: t0.Add(150 * time.Minute),
		Signer: r.signer, LogVKey: r.vkey, GrantVKey: grantSigner.Verifier().String(), Expectations: v2,
		Generator: "auditledger test", RequestedBy: evidence.Requester{Issuer: "https://idp.test", Subject: "auditor-1"}}, &buf)
	if err == nil || !strings.Contains(err.Error(), "version 2") || !strings.Contains(err.Error(), "audit-reviewed") {
		t.Errorf("built with expectations of version 2: %v", err)
	}
}

// reviewIndex is the ledger index of acme's review in a bundle.
func reviewIndex(t *testing.T, files map[string][]byte) uint64 {
	t.Helper()
	for _, l := range strings.Split(string(files["events.jsonl"]), "\n") {
		if strings.Contains(l, `"id":"review-1"`) {
			var idx uint64
			if _, err := fmt.Sscanf(l, `{"index":%d`, &idx); err != nil {
				t.Fatalf("events.jsonl: %v", err)
			}
			return idx
		}
	}
	t.Fatal("no review in events.jsonl")
	return 0
}
