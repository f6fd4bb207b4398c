package detect

import (
	"hash/maphash"
	"strings"
	"sync/atomic"
)

// cleanTexts remembers texts the writer's judge (InEvent, read as text:
// chainsAll) found nothing in, so that a text that comes in event after
// event is not read again: a session's id, the host of its target, an
// issuer. A text is only ever taken as clean when it is equal, byte for
// byte, to one judged clean before (the verdict is a function of the
// text alone); a text seen once, such as an event's id, is not kept, so
// that a table of a few kilobytes keeps what recurs.
var cleanTexts textMemo

// memoSlots is the size of cleanTexts' table (a power of two).
const memoSlots = 1024

// memoMin and memoMax bound the texts cleanTexts holds: below memoMin,
// MayHold costs less than a look-up; above memoMax a text is rarely the
// same twice.
const memoMin, memoMax = 12, 160

// textMemo is a direct-mapped table of texts judged clean: seen holds
// the hash of the last text offered at each slot, kept the text kept
// there, taken on its second offer in a row. Safe for concurrent use.
type textMemo struct {
	seed maphash.Seed
	seen [memoSlots]atomic.Uint64
	kept [memoSlots]atomic.Pointer[string]
	off  bool // tests: judge as without the memo
}

func init() { cleanTexts.seed = maphash.MakeSeed() }

// fits reports whether s is of a length the memo holds.
func (m *textMemo) fits(s string) bool {
	return !m.off && len(s) >= memoMin && len(s) <= memoMax
}

// has reports whether s was judged clean and kept.
func (m *textMemo) has(s string) bool {
	h := maphash.String(m.seed, s)
	p := m.kept[h&(memoSlots-1)].Load()
	return p != nil && *p == s
}

// saw notes that s was judged clean, keeping it (a copy: s may point
// into an event's bytes) when the text last offered at its slot had the
// same hash.
func (m *textMemo) saw(s string) {
	h := maphash.String(m.seed, s)
	i := h & (memoSlots - 1)
	if m.seen[i].Swap(h) != h {
		return
	}
	if p := m.kept[i].Load(); p != nil && *p == s {
		return
	}
	c := strings.Clone(s)
	m.kept[i].Store(&c)
}
