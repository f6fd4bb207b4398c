package evidence

import (
	"testing"
	"time"
)

// The asserted period (FORMAT §12.1): from period.from, or the log's
// first record when the range starts at index 0 after it; to period.to,
// or the bundle's creation when earlier, never before the range's last
// record was sealed.
func TestAssertedPeriod(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 7, 1, h, 0, 0, 0, time.UTC) }
	ptr := func(t time.Time) *time.Time { return &t }
	for _, c := range []struct {
		name     string
		m        Manifest
		from, to time.Time
	}{
		{"the period", Manifest{Period: Period{at(1), at(5)}, Created: at(9), Range: Range{First: 7, FirstSealed: ptr(at(2)), LastSealed: ptr(at(4))}}, at(1), at(5)},
		{"from the log's first record", Manifest{Period: Period{at(1), at(5)}, Created: at(9), Range: Range{First: 0, FirstSealed: ptr(at(2)), LastSealed: ptr(at(4))}}, at(2), at(5)},
		{"to the creation", Manifest{Period: Period{at(1), at(5)}, Created: at(3), Range: Range{First: 7, FirstSealed: ptr(at(2)), LastSealed: ptr(at(2))}}, at(1), at(3)},
		{"created before the last record", Manifest{Period: Period{at(1), at(5)}, Created: at(3), Range: Range{First: 7, FirstSealed: ptr(at(2)), LastSealed: ptr(at(4))}}, at(1), at(4)},
		{"an empty range", Manifest{Period: Period{at(1), at(5)}, Created: at(3), Range: Range{First: 7}}, at(1), at(3)},
	} {
		p := assertedPeriod(&c.m)
		if !p.From.Equal(c.from) || !p.To.Equal(c.to) {
			t.Errorf("%s: %s to %s, want %s to %s", c.name, p.From, p.To, c.from, c.to)
		}
	}
}
