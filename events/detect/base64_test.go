package detect

import (
	"encoding/base64"
	"math/rand/v2"
	"strings"
	"testing"
)

// refBase64Text is base64Text decoding one character at a time through
// a switch: the table and the four-at-a-time loop must decode every token
// to the same text and verdict.
func refBase64Text(tok []byte) (string, bool) {
	if len(tok) < 16 || len(tok)%4 == 1 {
		return "", false
	}
	var d []byte
	var acc uint32
	bits := 0
	for _, c := range tok {
		var v int
		switch {
		case c >= 'A' && c <= 'Z':
			v = int(c - 'A')
		case c >= 'a' && c <= 'z':
			v = int(c-'a') + 26
		case isDigit(c):
			v = int(c-'0') + 52
		case c == '+' || c == '-':
			v = 62
		default: // '/' or '_'
			v = 63
		}
		acc, bits = acc<<6|uint32(v), bits+6
		if bits >= 8 {
			bits -= 8
			d = append(d, byte(acc>>bits))
		}
	}
	if !printable(d) && wideStart(d) && len(d) >= 8 {
		w, _, _ := wideDecode(string(d[:len(d)&^1]))
		if printable([]byte(w)) {
			return w, true
		}
	}
	return decodedText(d)
}

func base64Agrees(t *testing.T, tok []byte) {
	t.Helper()
	got, gok := base64Text(tok)
	want, wok := refBase64Text(tok)
	if got != want || gok != wok {
		t.Fatalf("base64Text(%q) = %q, %v; as first written %q, %v", tok, got, gok, want, wok)
	}
}

// TestBase64TextAgrees holds base64Text to refBase64Text: text of every
// length up to 3,000 bytes in both alphabets, padded or not, UTF-16LE
// text, random bytes and random base64 characters, and every token cut
// short.
func TestBase64TextAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"
	line := "Dec 07 05:12:01 web-3 nginx[1201]: 10.0.1.7 \"GET /api/v1/orders/4711 HTTP/1.1\" 200 317 é\r\n"
	for n := 0; n <= 3000; n += 1 + n/16 {
		text := []byte(strings.Repeat(line, n/len(line)+1)[:n])
		wide := make([]byte, 0, 2*n)
		for _, c := range text {
			wide = append(wide, c&0x7f, 0)
		}
		noise := make([]byte, n)
		for i := range noise {
			noise[i] = byte(r.Uint32())
		}
		chars := make([]byte, n)
		for i := range chars {
			chars[i] = alphabet[r.IntN(len(alphabet))]
		}
		for _, tok := range [][]byte{
			[]byte(base64.StdEncoding.EncodeToString(text)),
			[]byte(base64.RawURLEncoding.EncodeToString(text)),
			[]byte(base64.RawStdEncoding.EncodeToString(wide)),
			[]byte(base64.RawStdEncoding.EncodeToString(noise)),
			chars,
		} {
			tok = []byte(strings.TrimRight(string(tok), "="))
			base64Agrees(t, tok)
			for k := 1; k <= 3 && k < len(tok); k++ {
				base64Agrees(t, tok[k:])
				base64Agrees(t, tok[:len(tok)-k])
			}
		}
	}
}

func FuzzBase64Text(f *testing.F) {
	f.Add([]byte("RGVjIDA3IDA1OjEyOjAxIHdlYi0zIG5naW54"))
	f.Add([]byte("SABlAGwAbABvACAAdwBvAHIAbABkAA"))
	f.Fuzz(func(t *testing.T, tok []byte) {
		for i, c := range tok {
			if !isBase64Char(c) {
				tok[i] = 'A' + c%26
			}
		}
		base64Agrees(t, tok)
	})
}
