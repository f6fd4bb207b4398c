package sshproxy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	mathrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"

	"github.com/auditledger/auditledger/ledger/bulk"
	"github.com/auditledger/auditledger/ledger/bulk/bulktest"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/services/sshproxy"
	"github.com/auditledger/auditledger/test/natstest"
)

// bulkRig is the real parts a reader of bulk pieces meets: a JetStream
// server with AUDIT_BULK and the key store, and a file store.
func bulkRig(t *testing.T) (*bulk.Reader, *bulktest.Session) {
	_, js := natstest.Start(t).Connect(t)
	bulktest.EnsureStream(t, js)
	keys, err := piikeys.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	store, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &bulk.Reader{Store: store, Bus: js, Keys: keys}, bulktest.New(t, keys, js, store, "acme", "ssh-1", 120, 40)
}

// opener opens pieces with rd, as the API does.
func opener(rd *bulk.Reader) sshproxy.Opener {
	return func(ctx context.Context, pieces []sshproxy.Piece) ([][]byte, error) {
		return sshproxy.PlayPieces(ctx, pieces, func(ctx context.Context, _ int, p sshproxy.Piece) ([]byte, error) {
			return rd.Open(ctx, p.Piece)
		})
	}
}

func output(c *sshproxy.Cast, kind string) string {
	var b strings.Builder
	for _, f := range c.Frames {
		if f.Kind == kind {
			b.WriteString(f.Data)
		}
	}
	return b.String()
}

// A stream recorded as text, then bulk pieces (stored, and one only on
// the bus, not yet copied by the writer), then text again plays byte for
// byte; without an opener each piece plays as sealed.
func TestCastPlaysBulkPieces(t *testing.T) {
	rd, s := bulkRig(t)
	raw := make([]byte, 3*300<<10)
	// Bytes of a fixed seed: random base64 now and then decodes, at one of
	// its alignments, to text the detectors find an address in, which a
	// chunk would record replaced too.
	mathrand.NewChaCha8([32]byte{'c', 'a', 's', 't'}).Read(raw)
	text := base64.StdEncoding.EncodeToString(raw) // 1.2 MiB of text, no line breaks
	text = strings.ReplaceAll(text, "A", "\n")
	s.Text("stdout", []byte("$ cat big.b64\n"))
	s.Piece("stdout", []byte(text[:piikeys.MaxBulkPiece]), bulktest.InStore|bulktest.OnBus)
	s.Piece("stdout", []byte(text[piikeys.MaxBulkPiece:2*piikeys.MaxBulkPiece]), bulktest.OnBus)
	s.Piece("stdout", []byte(text[2*piikeys.MaxBulkPiece:]), bulktest.InStore)
	s.Text("stdout", []byte("$ exit\n"))
	s.Piece("stdin", []byte("typed fast\n"), bulktest.InStore)
	s.End()
	c, err := sshproxy.CastWith(t.Context(), s.Events, s.ID, opener(rd))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := output(c, "o"), "$ cat big.b64\n"+text+"$ exit\n"; got != want {
		t.Fatalf("played %d bytes, want %d; they differ", len(got), len(want))
	}
	if got := output(c, "i"); got != "typed fast\n" {
		t.Errorf("input played %q", got)
	}
	c, err = sshproxy.CastOf(s.Events, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := output(c, "o"), "$ cat big.b64\n"+strings.Repeat(sshproxy.SealedPiece, 3)+"$ exit\n"; got != want {
		t.Errorf("without an opener: %q, want %q", got, want)
	}
}

// What the detectors find in a piece plays replaced, as in a chunk's
// data, a value across two pieces in both; a piece of an erased subject
// plays as erased; bytes that are not text play as binary.
func TestCastMasksBulkPieces(t *testing.T) {
	rd, s := bulkRig(t)
	filler := strings.Repeat("log line 0123\n", 20000)
	s.Piece("stdout", []byte(filler+"card 4111 1111 1111 1111 ok\n"), bulktest.InStore)
	s.Piece("stdout", []byte("colour \x1b[31m4012\x1b[0m8888\x1b[K88881881 end\n"+filler+"split 5555 5555 "), bulktest.InStore)
	s.Piece("stdout", []byte("5555 4444 done\n"), bulktest.InStore)
	s.Piece("stdout", []byte("zip\x00\x01\x02\xff\xfe"), bulktest.InStore)
	c, err := sshproxy.CastWith(t.Context(), s.Events, s.ID, opener(rd))
	if err != nil {
		t.Fatal(err)
	}
	got := output(c, "o")
	for _, want := range []string{"card [REDACTED:credit_card] ok\n", "colour \x1b[31m[REDACTED:credit_card] end\n",
		"split [REDACTED:credit_card][REDACTED:credit_card] done\n", sshproxy.BinaryPiece} {
		if !strings.Contains(got, want) {
			t.Errorf("the cast does not play %q", want)
		}
	}
	for _, v := range []string{"4111", "8888", "5555", "4444"} {
		if strings.Contains(got, v) {
			t.Errorf("the cast plays %q", v)
		}
	}
	if n := strings.Count(got, "log line 0123\n"); n != 40000 {
		t.Errorf("the filler played %d times, want 40000", n)
	}

	if _, err := rd.Keys.Erase(t.Context(), s.Tenant, s.Issuer, s.Subject); err != nil {
		t.Fatal(err)
	}
	c, err = sshproxy.CastWith(t.Context(), s.Events, s.ID, opener(rd))
	if err != nil {
		t.Fatal(err)
	}
	if got := output(c, "o"); got != strings.Repeat(sshproxy.ErasedPiece, 4) {
		t.Errorf("erased: %q", got)
	}
}

// A piece that is not what its event names (another object under its
// name, one missing everywhere, one that opens nowhere) fails the cast,
// naming the object and the event.
func TestCastRefusesDamagedPieces(t *testing.T) {
	rd, s := bulkRig(t)
	e, object := s.Piece("stdout", []byte("hello\n"), 0) // in neither place yet
	p, _, err := bulk.Of(e)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, want error) {
		t.Helper()
		_, err := sshproxy.CastWith(t.Context(), s.Events, s.ID, opener(rd))
		if !errors.Is(err, want) || !strings.Contains(err.Error(), p.Object) || !strings.Contains(err.Error(), e.ID) {
			t.Errorf("%s: %v, want %v naming %s and %s", what, err, want, p.Object, e.ID)
		}
	}
	check("missing", bulk.ErrMissing)
	bad := bytes.Clone(object)
	bad[len(bad)-1] ^= 1
	if err := s.Store.Create(t.Context(), bulk.Name(p.Object), bad, zero); err != nil {
		t.Fatal(err)
	}
	check("a byte changed", bulk.ErrDamaged)
	// The object of another place, under its own name: it is what the
	// name says, but does not open here.
	other := *s
	other.Events = nil
	other.ID = "ssh-2"
	e2, _ := other.Piece("stdout", []byte("hello\n"), bulktest.InStore)
	s.Events[len(s.Events)-1].Payload = bytes.Replace(e.Payload, []byte(p.Object), []byte(mustOf(t, e2).Object), 1)
	p = mustOf(t, s.Events[len(s.Events)-1])
	check("another session's", bulk.ErrDamaged)
}

var zero = time.Time{}

func mustOf(t *testing.T, e *events.Event) bulk.Piece {
	t.Helper()
	p, ok, err := bulk.Of(e)
	if !ok || err != nil {
		t.Fatalf("event %s names no piece: %v", e.ID, err)
	}
	return p
}

// A value that began at the end of a piece and ended in the text chunk
// after it (bulk_before) plays as the chunk's placeholder: the piece's
// part of it is not played as it is.
func TestCastDropsAValuesStartInAPiece(t *testing.T) {
	rd, s := bulkRig(t)
	card := gatewaytest.Card(t)
	first, second := card[:10], card[10:]
	s.Piece("stdout", []byte(strings.Repeat("log line\n", 100)+"card "+first), bulktest.InStore)
	s.TextWith("stdout", []byte("[REDACTED:credit_card] ok\n"), len(second)+4, map[string]any{"bulk_before": len(first)})
	c, err := sshproxy.CastWith(t.Context(), s.Events, s.ID, opener(rd))
	if err != nil {
		t.Fatal(err)
	}
	got := output(c, "o")
	if !strings.HasSuffix(got, "log line\ncard [REDACTED:credit_card] ok\n") || strings.Contains(got, first) {
		t.Errorf("played %q", got[max(0, len(got)-60):])
	}
}
