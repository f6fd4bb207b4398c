package events

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
)

// sameAsUnmarshal fails if decodeFast accepts b and decodes anything but
// what json.Unmarshal decodes; it reports whether decodeFast took b.
func sameAsUnmarshal(t *testing.T, b []byte) bool {
	t.Helper()
	fast, ok := decodeFast(b)
	// Viewing b instead of copying it (ParseShared) decodes the same.
	if shared, sok := decodeFastIn(b, true); sok != ok || !reflect.DeepEqual(fast, shared) {
		t.Fatalf("decodeFast shared took it %v, decoded\n%#v\ncopying took it %v, decoded\n%#v\nfrom %s", sok, shared, ok, fast, b)
	}
	if !ok {
		return false
	}
	slow, err := unmarshal(b)
	if err != nil {
		t.Fatalf("decodeFast accepted what json.Unmarshal refuses (%v):\n%s", err, b)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("decodeFast decoded\n%#v\njson.Unmarshal\n%#v\nfrom %s", fast, slow, b)
	}
	return true
}

// TestDecodeFastMatchesJSON: on the corpus, on 2,000 generated events and
// on every one-byte change of some of them, decodeFast either declines or
// decodes exactly what json.Unmarshal does; and it takes what Marshal
// writes, which is what makes it worth having.
func TestDecodeFastMatchesJSON(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sameAsUnmarshal(t, b)
		if strings.Contains(p, "valid/full") && !sameAsUnmarshal(t, b) {
			t.Fatalf("%s: the plain form is not taken", p)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	texts := []string{"plain", "é ü 日本 🙂", `with "quotes" \ and backslash`, "x", "<&>"}
	payloads := []string{`{}`, `{"a":1,"b":[1,2,{"c":"d"}]}`, `{ "ws" : [ 1 , 2 ] }`, `{"s":"\u00e9\n\"","n":-1.5e10,"t":true,"z":null}`}
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	mutations := 0
	for i := range 2000 {
		ev := &Event{Version: Version, ID: "id-" + pick([]string{"a", "b.7"}), Type: Catalog[r.IntN(len(Catalog))], Tenant: "acme",
			Source: Source{Kind: pick(texts), Instance: pick(texts)}, Actor: Actor{Issuer: pick(texts), Subject: pick(texts), Kind: Machine},
			Payload: []byte(pick(payloads))}
		ev.Time = ev.Time.AddDate(2026, 0, r.IntN(365)).Add(timeNanos(r))
		if i%2 == 0 {
			ev.Source.Version, ev.Actor.Email, ev.Actor.DevIdentity = pick(texts), pick(texts), true
			ev.SessionID, ev.SessionSeq = "s-1", r.Uint64N(1<<62)+1
			ev.Actor.Groups = []string{pick(texts), pick(texts)}
			ev.Target = &Target{Kind: "postgres", Name: pick(texts), Host: "db:5432", Database: pick(texts)}
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		taken := sameAsUnmarshal(t, b)
		if !taken && !strings.Contains(string(b), `\`) {
			t.Fatalf("an event in the plain form was not taken:\n%s", b)
		}
		if i%50 == 0 {
			// Every one-byte change: duplicates, truncations, stray
			// characters, broken numbers and strings.
			for j := range b {
				for _, c := range []byte{'"', ',', '}', '{', '1', 'x', ' ', '\\', 0x00, 0xff, ':', '-', '.', 'e'} {
					m := append([]byte(nil), b...)
					m[j] = c
					sameAsUnmarshal(t, m)
					mutations++
				}
			}
		}
	}
	t.Logf("%d mutated events checked", mutations)
}

// timeNanos is a time of day at a random precision (ns to s), so that
// encodings with and without trailing fractional digits both occur.
func timeNanos(r *rand.Rand) time.Duration {
	unit := func() time.Duration { return time.Duration([]int64{1, 1000, 1e6, 1e9}[r.IntN(4)]) }
	return time.Duration(r.Int64N(86400e9)) / unit() * unit()
}

// FuzzDecodeFast: whatever decodeFast accepts, json.Unmarshal decodes the
// same way.
func FuzzDecodeFast(f *testing.F) {
	addCorpus(f)
	f.Fuzz(func(t *testing.T, b []byte) { sameAsUnmarshal(t, b) })
}

// TestDecodeFastOwnsItsBytes: the event decodeFast returns shares no
// byte with its input, and its payload grown in place leaves its
// strings as they were (they share one copy of the input's bytes).
func TestDecodeFastOwnsItsBytes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "valid", "full.json"))
	if err != nil {
		t.Fatal(err)
	}
	ev, ok := decodeFast(b)
	if !ok {
		t.Fatal("the plain form is not taken")
	}
	want, err := unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'X'
	}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("changing the input changed the event:\n%#v\nwant\n%#v", ev, want)
	}
	ev.Payload = append(ev.Payload, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"...)
	ev.Payload = want.Payload
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("appending to the payload changed the event:\n%#v\nwant\n%#v", ev, want)
	}
}

// FuzzUTCTime: whatever utcTime reads, json.Unmarshal reads as the same
// time.Time (instant and location); and the form Marshal writes, utcTime
// reads.
func FuzzUTCTime(f *testing.F) {
	for _, s := range []string{
		"2026-12-07T17:46:12Z", "2026-12-07T17:46:12.5Z", "2026-12-07T17:46:12.123456789Z",
		"2026-12-07T17:46:12.1234567890Z", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z",
		"0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2026-12-07T24:00:00Z",
		"2026-12-07T17:46:60Z", "2026-12-07T17:46:12.Z", "2026-12-07T17:46:12+00:00",
		"2026-13-07T17:46:12Z", "2026-00-10T17:46:12Z", "2026-12-00T17:46:12Z", "2026-12-07t17:46:12z",
		"+026-12-07T17:46:12Z", "2026-12-07T17:46:12,5Z", "2026-1-07T17:46:12Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := utcTime(s)
		var want time.Time
		err := json.Unmarshal(append(append([]byte{'"'}, s...), '"'), &want)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("utcTime reads %q as %v, json.Unmarshal refuses it: %v", s, got, err)
		}
		if !got.Equal(want) || got.Location() != want.Location() || !reflect.DeepEqual(got, want) {
			t.Fatalf("utcTime reads %q as %#v, json.Unmarshal as %#v", s, got, want)
		}
	})
}

// TestUTCTimeReadsMarshal: every time Marshal writes is read by utcTime,
// not handed to json.Unmarshal.
func TestUTCTimeReadsMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		tm := time.Unix(r.Int64N(1<<34), 0).Add(timeNanos(r)).UTC()
		b := tm.AppendFormat(nil, time.RFC3339Nano)
		got, ok := utcTime(string(b))
		if !ok || !got.Equal(tm) {
			t.Fatalf("utcTime(%s) = %v, %v; want %v", b, got, ok, tm)
		}
	}
}

// TestRawStringEveryPlace: a byte that ends a string or needs a look — a
// quote, a backslash, a control character, a UTF-8 sequence valid or
// not — at every place of strings up to 40 bytes long (the scanner
// skips eight plain bytes at a time): decodeFast declines or decodes
// what json.Unmarshal does, and takes the plain strings.
func TestRawStringEveryPlace(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "valid", "full.json"))
	if err != nil {
		t.Fatal(err)
	}
	const at = `"tenant":"`
	i := strings.Index(string(b), at) + len(at)
	j := i + strings.IndexByte(string(b[i:]), '"')
	for _, odd := range []string{"", `\"`, `\\`, `\n`, "\x00", "\x1f", "\x7f", "é", "日", "🙂", "\xff", "\xc3", "\xed\xa0\x80", `\u00e9`} {
		for n := range 41 {
			for k := 0; k <= n; k++ {
				s := strings.Repeat("a", k) + odd + strings.Repeat("b", n-k)
				ev := append(append(append([]byte{}, b[:i]...), s...), b[j:]...)
				if took := sameAsUnmarshal(t, ev); !took && (odd == "" || odd == "é" || odd == "日" || odd == "🙂" || odd == "\x7f") {
					t.Fatalf("decodeFast declines the plain string %q", s)
				}
			}
		}
	}
}

// TestPrintableASCII: printableASCII agrees with a byte loop on every
// byte at every place of strings up to 20 bytes long.
func TestPrintableASCII(t *testing.T) {
	for c := range 256 {
		for n := range 21 {
			for k := range n {
				s := strings.Repeat("a", k) + string([]byte{byte(c)}) + strings.Repeat("b", n-k-1)
				want := c >= ' ' && c < 0x7f
				if got := printableASCII(s); got != want {
					t.Fatalf("printableASCII(%q) = %v", s, got)
				}
			}
		}
	}
}
