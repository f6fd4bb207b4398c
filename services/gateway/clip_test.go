package gateway_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/services/gateway"
)

// TestClipFitsAsRecorded: what Clip returns fits in max characters once
// the recording rule replaces its values — a placeholder is longer than
// a 13-digit card number or a short address — and never holds part of a
// value, wherever the value stands against the cut. A database name of
// 245 x's and a card number was recorded 272 characters long, so its
// authn.failed failed validation and was lost (review, stop 38).
func TestClipFitsAsRecorded(t *testing.T) {
	values := []string{"4111 1111 1111 1111", "4222222222222", "a@b.io", "jane.roe@example.com"}
	for _, max := range []int{32, 256, 2048} {
		for _, v := range values {
			for pad := max - 40; pad <= max+10; pad++ {
				if pad < 0 {
					continue
				}
				for _, s := range []string{
					strings.Repeat("x", pad) + " " + v + " tail",
					strings.Repeat("x", pad) + " " + v + " " + v + " " + v,
					"db_" + strings.Repeat("x", pad) + " " + v + " " + strings.Repeat("y", 300),
					"db_" + strings.Repeat("x", pad) + " " + v + strings.Repeat("y", 300), // no value whole: the cut must not make one too long
				} {
					got := gateway.Clip(s, max)
					scrubbed, _ := detect.Scrub(got)
					if n := utf8.RuneCountInString(scrubbed); n > max {
						t.Fatalf("Clip(%d x's + %q, %d): %d characters as recorded: %q", pad, v, max, n, scrubbed)
					}
					if len(detect.Spans(s)) > 0 && strings.Contains(scrubbed, strings.TrimSpace(v[:len(v)/2])) && !strings.Contains(got, v) {
						t.Fatalf("Clip(%d x's + %q, %d) = %q holds part of the value", pad, v, max, got)
					}
				}
			}
		}
	}
	db := "db_" + strings.Repeat("x", 245) + " 4111 1111 1111 1111 tail"
	if got, _ := detect.Scrub(gateway.Clip(db, 256)); utf8.RuneCountInString(got) > 256 {
		t.Fatal(fmt.Sprintf("the review's database name is recorded %d characters long", utf8.RuneCountInString(got)))
	}
}
