package api

import (
	"encoding/base64"
	"encoding/json"
	"testing"
)

// A session.output chunk redacted as a whole (its data is the
// placeholder, not base64) is played as the placeholder; a chunk of
// base64 is left as it is.
func TestCastable(t *testing.T) {
	whole := []byte(`{"bytes":11562,"data":"[REDACTED:credit_card]","offset":0,"stream":"stdout"}`)
	var p struct{ Data, Stream string }
	if err := json.Unmarshal(castable(whole), &p); err != nil {
		t.Fatal(err)
	}
	if raw, err := base64.StdEncoding.DecodeString(p.Data); err != nil || string(raw) != "[REDACTED:credit_card]" || p.Stream != "stdout" {
		t.Fatalf("a chunk redacted as a whole: %q %v", p.Data, err)
	}
	ok := []byte(`{"data":"aGVsbG8=","stream":"stdout"}`)
	if got := castable(ok); string(got) != string(ok) {
		t.Fatalf("a base64 chunk was changed: %s", got)
	}
}
