package detect_test

import (
	"fmt"
	"testing"

	"github.com/auditledger/auditledger/events/detect"
)

// A value split over parts is found joined; a list of codes, each a
// letter and a number, is not read as the card numbers its numbers make
// back to back (v1024v1025v1026v1027: a one-letter gap is read inside a
// value, not where two parts meet).
func TestJoinedValues(t *testing.T) {
	split := []string{"4111", "1111", "1111", "1111"}
	found := detect.JoinedValues(split)
	if len(found) == 0 || found[0].Detector != "credit_card" {
		t.Fatalf("a card in four parts: found %v", found)
	}
	spaced := []string{"4111 1111", "1111 1111"}
	if found := detect.JoinedValues(spaced); len(found) == 0 {
		t.Fatal("a card in two spaced halves is not found")
	}
	var codes []string
	for i := 1000; i < 4000; i++ {
		codes = append(codes, fmt.Sprintf("v%d", i))
	}
	if found := detect.JoinedValues(codes); len(found) != 0 {
		t.Fatalf("codes v1000…v3999 read as %d values, the first %v", len(found), found[0])
	}
	var trailing []string
	for i := 1000; i < 4000; i++ {
		trailing = append(trailing, fmt.Sprintf("%dx", i))
	}
	if found := detect.JoinedValues(trailing); len(found) != 0 {
		t.Fatalf("codes 1000x…3999x read as %d values, the first %v", len(found), found[0])
	}
}
