package compliance_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/compliance"
)

// verificationRecord is a ledger.verification record as the writer seals
// it (FORMAT §2.1).
func verificationRecord(idx uint64, size uint64, ok bool, gaps, failure string) []byte {
	if failure != "" {
		failure = `,"failure":` + failure
	}
	return fmt.Appendf(nil, `{"type":"ledger.verification","version":1,"id":"ledger/verification/%d","time":"2026-12-23T00:00:00Z","tenant":"_ledger","source":{"kind":"ledger","instance":"t/log"},"actor":{"issuer":"auditledger","subject":"ledger","kind":"machine"},"payload":{"started":"2026-12-22T23:59:00Z","finished":"2026-12-23T00:00:00.5Z","size":%d,"root":"","ok":%t,"gaps":[%s]%s}}`,
		idx, size, ok, gaps, failure)
}

// 5.33 and 8.15 from the writer's verification records: a covering
// verification that found the log whole makes both effective; none, or
// one that found a gap or failed, is an exception naming the record; a
// verification of fewer records than the range's end does not count,
// and a tenant's event of the type is never one.
func TestLogVerifiedFromRecords(t *testing.T) {
	x, err := compliance.ParseExpectations("x.yaml", []byte(`version: 4
controls:
  - control: "5.33"
    check: log-verified
    statement: verified
  - control: "8.15"
    check: log-intact
    statement: intact
`))
	if err != nil {
		t.Fatal(err)
	}
	p := compliance.Period{From: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 22, 0, 0, 0, 0, time.UTC), First: 100, End: 200}
	type rec struct {
		idx    uint64
		raw    []byte
		tenant bool // given as one of the tenant's events
	}
	// rows as index:exception ("-" for none), then the result
	summary := func(a compliance.Assertion) string {
		var rows []string
		for _, r := range a.Rows {
			ex := r.Exception
			if ex == "" {
				ex = "-"
			}
			rows = append(rows, fmt.Sprintf("%d:%s", r.Index, ex))
		}
		return strings.Join(rows, " ") + " => " + a.Result
	}
	for _, c := range []struct {
		name        string
		recs        []rec
		want, want2 string
	}{
		{"one covering, whole", []rec{{210, verificationRecord(210, 205, true, "", ""), false}},
			"210:- => effective", "210:- => effective"},
		{"none", nil,
			"0:" + compliance.ExNoVerification + " => exceptions found", " => not observed"},
		{"only one of fewer records (started before the range's end)", []rec{{201, verificationRecord(201, 150, true, "", ""), false}},
			"0:" + compliance.ExNoVerification + " => exceptions found", " => not observed"},
		{"a tenant's event of the type is not a verification", []rec{{150, verificationRecord(150, 300, true, "", ""), true}},
			"0:" + compliance.ExNoVerification + " => exceptions found", " => not observed"},
		{"a gap in the range", []rec{{210, verificationRecord(210, 205, false, `{"index":150,"first_seq":7,"last_seq":8}`, ""), false}},
			"210:" + compliance.ExLogNotWhole + ": gap records 150 => exceptions found",
			"210:" + compliance.ExRangeNotWhole + ": gap records 150 => exceptions found"},
		{"a gap before the range: the log, not the period", []rec{{210, verificationRecord(210, 205, false, `{"index":40,"first_seq":7,"last_seq":8}`, ""), false}},
			"210:" + compliance.ExLogNotWhole + ": gap records 40 => exceptions found", "210:- => effective"},
		{"a damaged segment in the range", []rec{{210, verificationRecord(210, 205, false, "", `{"object":"segments/x.seg","index":170,"error":"index 170: chain"}`), false}},
			"210:" + compliance.ExLogNotWhole + ": failed: index 170: chain => exceptions found",
			"210:" + compliance.ExRangeNotWhole + ": failed: index 170: chain => exceptions found"},
		{"a failed check after the range", []rec{{210, verificationRecord(210, 205, false, "", `{"index":202,"error":"index 202: chain"}`), false}},
			"210:" + compliance.ExLogNotWhole + ": failed: index 202: chain => exceptions found", "210:- => effective"},
		{"whole, then a failure", []rec{{210, verificationRecord(210, 205, true, "", ""), false}, {300, verificationRecord(300, 290, false, "", `{"error":"checkpoints/x: signature"}`), false}},
			"210:- 300:" + compliance.ExLogNotWhole + ": failed: checkpoints/x: signature => exceptions found",
			"210:- 300:" + compliance.ExRangeNotWhole + ": failed: checkpoints/x: signature => exceptions found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := compliance.NewAsserter(x, nil)
			for _, r := range c.recs {
				var err error
				if r.tenant {
					err = a.Add(r.idx, r.raw)
				} else {
					err = a.AddVerification(r.idx, r.raw)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			got := a.Assertions(p)
			if g := summary(got[0]); g != c.want {
				t.Errorf("5.33:\n got %s\nwant %s", g, c.want)
			}
			if g := summary(got[1]); g != c.want2 {
				t.Errorf("8.15:\n got %s\nwant %s", g, c.want2)
			}
			if len(c.recs) > 0 && !c.recs[0].tenant && len(got[0].Rows) > 0 && !got[0].Rows[0].NoEvent && !strings.HasPrefix(got[0].Rows[0].Item, "size=") {
				t.Errorf("item %q", got[0].Rows[0].Item)
			}
		})
	}
	if err := compliance.NewAsserter(x, nil).AddVerification(1, []byte(`{"type":"ledger.clock.status","payload":{}}`)); err == nil {
		t.Error("a clock status taken as a verification")
	}
}
