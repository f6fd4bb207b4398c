package detect_test

import (
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events/detect"
)

// TestBulkNamesNotRead: a bulk piece's name and pseudonym (docs/FORMAT.md
// §1.7) are digests the detectors do not read, at their place and in
// their exact form; the same strings anywhere else, or in another form,
// are read as any text. The name below holds a card number's digits, as
// about one SHA-256 in 800 does.
func TestBulkNamesNotRead(t *testing.T) {
	name := "4111111111111111" + strings.Repeat("ab", 24)
	pseudonym := "4111111111111111" + strings.Repeat("c", 16)
	event := func(payload string) []byte {
		return []byte(`{"version":1,"id":"ssh-1.1","type":"session.output","time":"2026-12-08T00:00:00Z","tenant":"acme",` +
			`"source":{"kind":"ssh-gateway","instance":"t1"},"actor":{"issuer":"https://idp.example","subject":"alice","kind":"human"},` +
			`"session_id":"ssh-1","session_seq":1,"payload":` + payload + `}`)
	}
	ok := `{"stream":"stdout","offset":0,"bytes":10,"bulk":{"object":"` + name + `","pseudonym":"` + pseudonym + `","size":38}}`
	if err := detect.CheckEvent(event(ok)); err != nil {
		t.Fatalf("a bulk piece's name and pseudonym were read: %v", err)
	}
	for _, p := range []string{
		`{"stream":"stdout","offset":0,"bytes":10,"note":"` + name + `"}`,
		`{"stream":"stdout","offset":0,"bytes":10,"bulk":{"object":"` + strings.ToUpper(name) + `","pseudonym":"` + pseudonym + `","size":38}}`,
		`{"stream":"stdout","offset":0,"bytes":10,"bulk":{"object":"` + name + `x","pseudonym":"` + pseudonym + `","size":38}}`,
		`{"stream":"stdout","offset":0,"bytes":10,"bulk":{"name":"` + name + `","pseudonym":"` + pseudonym + `","size":38}}`,
		`{"stream":"stdout","offset":0,"bytes":10,"bulk":{"object":"` + strings.Repeat("ab", 32) + `","pseudonym":"` + pseudonym + `0","size":38}}`,
		`{"stream":"stdout","offset":0,"bytes":10,"x":{"bulk":{"object":"` + name + `"}}}`,
	} {
		if err := detect.CheckEvent(event(p)); err == nil {
			t.Errorf("a card number's digits in a string outside a bulk piece's exact name were not found:\n%s", p)
		}
	}
}
