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
// there (with its hash, so that a miss costs no comparison), taken on
// its second offer in a row. Safe for concurrent use.
type textMemo struct {
	seed maphash.Seed
	seen [memoSlots]atomic.Uint64
	kept [memoSlots]atomic.Pointer[keptText]
	off  bool // tests: judge as without the memo
}

type keptText struct {
	h uint64
	s string
}

func init() { cleanTexts.seed = maphash.MakeSeed() }

// fits reports whether s is of a length the memo holds.
func (m *textMemo) fits(s string) bool {
	return !m.off && len(s) >= memoMin && len(s) <= memoMax
}

// hash is the hash has and saw take.
func (m *textMemo) hash(s string) uint64 { return maphash.String(m.seed, s) }

// has reports whether s, of hash h, was judged clean and kept.
func (m *textMemo) has(s string, h uint64) bool {
	k := m.kept[h&(memoSlots-1)].Load()
	return k != nil && k.h == h && k.s == s
}

// saw notes that s, of hash h, was judged clean, keeping it (a copy: s
// may point into an event's bytes) when the text last offered at its
// slot had the same hash.
func (m *textMemo) saw(s string, h uint64) {
	i := h & (memoSlots - 1)
	if m.seen[i].Swap(h) != h || m.has(s, h) {
		return
	}
	m.kept[i].Store(&keptText{h: h, s: strings.Clone(s)})
}
