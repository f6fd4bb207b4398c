package compliance_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/auditledger/auditledger/compliance"
)

// The assertions are the same whether the events are read by eventscan
// or decoded by encoding/json, in every form eventscan takes (spaces,
// escapes, code points above ASCII) and those it leaves to encoding/json
// (upper-case member names).
func TestAssertionsSameScannedOrDecoded(t *testing.T) {
	fw, err := compliance.Load("iso27001-2022")
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string]func([]byte) []byte{
		"as sealed": func(b []byte) []byte { return b },
		"spaced": func(b []byte) []byte {
			return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte(`":`), []byte("\" :\n")), []byte(`,"`), []byte(" ,\t\""))
		},
		"escaped": func(b []byte) []byte { return bytes.ReplaceAll(b, []byte(`a`), []byte(`\u0061`)) },
		"non-ascii": func(b []byte) []byte {
			return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte(`alice`), []byte(`alicé`)), []byte(`DROP TABLE`), []byte(`DROP TÄBLE`))
		},
		"upper-case": func(b []byte) []byte { return bytes.ReplaceAll(b, []byte(`"kind":`), []byte(`"Kind":`)) },
		"bad time": func(b []byte) []byte {
			return bytes.ReplaceAll(b, []byte(`"2026-12-01T10:00:00Z"`), []byte(`"2026-12-01 10:00"`))
		},
	}
	for name, form := range forms {
		scanned, decoded := compliance.NewAsserter(fw.Expectations, nil), compliance.NewAsserter(fw.Expectations, nil)
		for _, o := range assertLog() {
			b := form(o.Event)
			err1, err2 := scanned.Add(o.Index, b), decoded.AddDecoded(o.Index, b)
			if (err1 == nil) != (err2 == nil) || err1 != nil && err1.Error() != err2.Error() {
				t.Fatalf("%s: event %d: scanned %v, decoded %v", name, o.Index, err1, err2)
			}
		}
		got, want := scanned.Assertions(assertPeriod), decoded.Assertions(assertPeriod)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: scanned %+v\ndecoded %+v", name, got, want)
		}
		if name == "as sealed" && len(got) == 0 {
			t.Fatal("no assertions")
		}
	}
}
