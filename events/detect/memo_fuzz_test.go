package detect

import (
	"fmt"
	"strings"
	"testing"
)

// escapeAll writes s as a JSON string whose every byte of ASCII is a
// \u escape: the same text as decoded, other bytes as written.
func escapeAll(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x80 {
			fmt.Fprintf(&b, `\u%04x`, c)
		} else {
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// The memo of texts judged clean changes no verdict, whatever the text:
// each event that places it (memoEvents, and the same with the text
// written in \u escapes, beside a fixed neighbour in an array, as a
// member name and a number's digits), judged after the memo kept the
// text from every other place, gets what the judge gives it without the
// memo.
func FuzzCleanTextsAgree(f *testing.F) {
	for _, v := range memoTexts() {
		f.Add(v)
	}
	f.Add("4802 8518 8959 2158")
	f.Add("jane.doe@example")
	f.Add("GB82 WEST 1234 5698 7654 32")
	f.Fuzz(func(t *testing.T, text string) {
		if !cleanTexts.fits(text) {
			return
		}
		q := escapeAll(text)
		evs := memoEvents(text)
		evs = append(evs,
			[]byte(`{"id":"b.1","payload":{"note":`+q+`,`+q+`:[`+q+`]}}`),
			[]byte(`{"id":"b.2","payload":{"values":["4802",`+q+`,"2158"],"a":[`+q+`,"1"]}}`),
			[]byte(`{"id":"b.3","actor":{"email":`+q+`,"subject":`+q+`},"payload":{}}`),
		)
		if digits := strings.Trim(text, " "); digits != "" && strings.Trim(digits, "0123456789") == "" && digits[0] != '0' {
			evs = append(evs, []byte(`{"id":"b.4","payload":{"n":`+digits+`,"s":"`+digits+`"}}`))
		}
		type verdict struct {
			m     Match
			found bool
			err   bool
		}
		judge := func(ev []byte, off bool) verdict {
			cleanTexts.off = off
			defer func() { cleanTexts.off = false }()
			m, found, err := InEvent(ev)
			return verdict{m, found, err != nil}
		}
		for i, ev := range evs {
			want := judge(ev, true)
			for _, other := range evs {
				judge(other, false) // the text kept from wherever it is clean
				judge(other, false)
			}
			if got := judge(ev, false); got != want {
				t.Fatalf("event %d %s: with the memo %+v, without %+v", i, ev, got, want)
			}
		}
	})
}
