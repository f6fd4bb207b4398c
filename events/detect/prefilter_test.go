package detect

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
)

// refMayHold is MayHold as it was before its one-pass form: each
// reading in turn (mayHoldRead), for text of six bytes or more.
func refMayHold(text string) bool { return len(text) >= 6 && mayHoldRead(text) }

// detectorVectors is every text the detector tests of this package hold
// (found or not), for TestMayHoldKeepsEveryVector.
func detectorVectors() []string {
	var out []string
	for _, cs := range [][]struct{ in, want string }{scrubCases, valuesInside, otherForms, separatorForms, encodedForms(), controlForms} {
		for _, c := range cs {
			out = append(out, c.in)
		}
	}
	for _, c := range detectorCases {
		out = append(out, c.value)
	}
	return append(out, "a@b.cc", "4111 1111 1111 1111", "+1 (415) 555-0132", "123-45-6789", "NL91ABNA0417164300",
		"NO9386011117947", "GB82WEST12345698765432", "AKIAIOSFODNN7EXAMPLE", "xoxb-0123456789-abcdefgh", "-----BEGIN RSA PRIVATE KEY-----\nMIIE",
		"4539:5787:6362:1486", "ab!@example.com", "o'brien@example.com", "de89370400440532013000", "9792131886430293", markedCard)
}

// The pre-filter drops nothing a detector finds: every detector test
// vector, alone and inside text, that the scrub finds a value in
// (scrubber.run, which MayHold does not gate) passes MayHold, and its
// one-pass form answers as the readings it stands for do.
func TestMayHoldKeepsEveryVector(t *testing.T) {
	found := 0
	for _, v := range detectorVectors() {
		for _, s := range []string{v, "x=" + v + "&y", "note: " + v + " end", `{"v":"` + v + `"}`, "id " + strings.ToUpper(hex.EncodeToString([]byte(v)))} {
			sc := scrubber{b: newView(s).b}
			if sc.run(); len(sc.found) > 0 {
				found++
				if !MayHold(s) {
					t.Errorf("MayHold(%q) = false, but the scrub finds %v", s, sc.all)
				}
			}
			checkMayHoldPlain(t, s)
		}
	}
	if found < 200 {
		t.Fatalf("only %d of the vectors hold a value: the test proves little", found)
	}
}

func checkMayHoldPlain(t *testing.T, s string) {
	t.Helper()
	if got, want := MayHold(s), refMayHold(s); got != want {
		t.Fatalf("MayHold(%q) = %v, its readings one after the other say %v", s, got, want)
	}
}

// The one-pass MayHold agrees with its readings taken one after the
// other on random text made of what either looks at: digits, separators,
// secret prefixes, @ and +, tokens of hex and base64 (of values and of
// noise), padding and slashes, and the bytes that stop the one pass
// (beyond ASCII, backslash, percent).
func TestMayHoldPlainAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	b64 := base64.StdEncoding.EncodeToString
	pieces := []string{"0", "1", "4", "9", "41", "4111", "1111", " ", "-", ".", "(", ")", "+", "@", "a", "x", "e", "A", "_", "/", "=", "==",
		"x.com", "DE", "GB82", "NL91ABNA", "AKIA", "IOSFODNN7EXAMPLE", "eyJ", "ghp_", "xoxb-", "sk_", "-----BEGIN",
		"%", "%40", "\\", "\\u0040", "\\x09", "é", "\u00a0", "４", "＠",
		hex.EncodeToString([]byte("4539578763621486")), b64([]byte("jane.roe@example.com")), b64([]byte("card 4539578763621486")),
		hex.EncodeToString([]byte("hello, world")), b64([]byte("hello world, nothing")), "pgbench_accounts", "0123456789abcdef0123"}
	held := 0
	var sb strings.Builder
	for range 100_000 {
		sb.Reset()
		for range 1 + r.IntN(12) {
			sb.WriteString(pieces[r.IntN(len(pieces))])
		}
		s := sb.String()
		if MayHold(s) {
			held++
		}
		checkMayHoldPlain(t, s)
	}
	if held < 1000 || held > 99_000 {
		t.Fatalf("%d of 100,000 random texts may hold a value: the test proves little", held)
	}
}

func FuzzMayHoldPlain(f *testing.F) {
	for _, s := range detectorVectors() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkMayHoldPlain(t, s) })
}

// quoteEscapeOrControl finds, in eight bytes, the first that is a quote,
// a backslash or a control character, as a loop over them does.
func TestQuoteEscapeOrControl(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	alphabet := []byte{'"', '\\', 0, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff, 'a', '0', 0x01, 0x02}
	var b [8]byte
	for range 1_000_000 {
		first := 8
		for i := range b {
			if r.IntN(3) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = byte(r.IntN(256))
			}
			if first == 8 && (b[i] == '"' || b[i] == '\\' || b[i] < 0x20) {
				first = i
			}
		}
		m := quoteEscapeOrControl(binary.LittleEndian.Uint64(b[:]))
		if got := bits.TrailingZeros64(m) >> 3; got != first {
			t.Fatalf("quoteEscapeOrControl(% x) = %x: first at %d, want %d", b, m, got, first)
		}
	}
}

// refStr is eventWalker.str as first written, a loop over every byte.
func refStr(b []byte, i int) ([]byte, bool, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, false, i, false
	}
	start, escaped := i+1, false
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\\':
			escaped = true
			i++
		case c == '"':
			i++
			return b[start : i-1], escaped, i, true
		case c < 0x20:
			return nil, false, i, false
		}
	}
	return nil, false, i, false
}

// The string reader that skips eight bytes at a time reads what the loop
// over every byte reads, ends where it ends and fails where it fails.
func TestStrAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	alphabet := []byte{'"', '"', '\\', '\\', 0x01, 0x1f, ' ', 'a', 'b', 'u', '0', 0x7f, 0xc3, 0xa9, 0xff}
	for range 300_000 {
		b := make([]byte, 1+r.IntN(40))
		b[0] = '"'
		for i := 1; i < len(b); i++ {
			if r.IntN(4) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = 'a' + byte(r.IntN(26))
			}
		}
		w := &eventWalker{b: b}
		got, esc, err := w.str()
		want, wantEsc, wantI, ok := refStr(b, 0)
		if (err == nil) != ok || string(got) != string(want) || esc != wantEsc || ok && w.i != wantI {
			t.Fatalf("str(%q) = %q, %v, %v at %d; the loop over every byte says %q, %v, %v at %d", b, got, esc, err, w.i, want, wantEsc, ok, wantI)
		}
	}
}
