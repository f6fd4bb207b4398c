package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
)

var update = flag.Bool("update", false, "rewrite golden files and the committed fuzz corpus")

// goldenKey is a fixed key so golden files are reproducible. Never use it
// for anything else.
func goldenKey(t testing.TB) *ledger.NoteSigner {
	skey, _, err := ledger.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{0x42}, 32)), "golden.auditledger.dev/log")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewNoteSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func event(i int) []byte {
	return fmt.Appendf(nil, `{"version":1,"id":"ev-%d","type":"command.executed","time":"2026-11-26T12:00:0%dZ","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"alice","kind":"human"},"session_id":"s1","session_seq":%d,"payload":{"statement":"SELECT %d"}}`, i, i%10, i+1, i)
}

func fixedClock() func() time.Time {
	t := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

func newLog(t *testing.T, dir string, s *ledger.NoteSigner) (*ledger.Log, *file.Store) {
	t.Helper()
	st, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), ledger.Config{Store: st, Signer: s, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	return l, st
}

func entries(from, n int) []ledger.Entry {
	var es []ledger.Entry
	for i := from; i < from+n; i++ {
		es = append(es, ledger.Entry{Event: event(i), Source: uint64(i + 1)})
	}
	return es
}

// TestGolden pins the exact bytes of a segment, its checkpoint and both
// proof forms. A change here is a format change: update docs/FORMAT.md and
// run go test ./ledger -run Golden -update.
func TestGolden(t *testing.T) {
	ctx := context.Background()
	s := goldenKey(t)
	l, st := newLog(t, t.TempDir(), s)
	if _, err := l.Append(ctx, entries(0, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, entries(3, 4)); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, name := range []string{ledger.SegmentName(0), ledger.SegmentName(3), ledger.CheckpointName(3), ledger.CheckpointName(7)} {
		b, err := st.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(name)] = b
	}
	incl, _ := l.Tree().InclusionProof(4, 7)
	files["index4-size7.tlog-proof"] = (&ledger.InclusionProofText{Index: 4, Hashes: incl, Checkpoint: files[filepath.Base(ledger.CheckpointName(7))]}).Marshal()
	cons, _ := l.Tree().ConsistencyProof(3, 7)
	files["consistency-3-7.txt"] = (&ledger.ConsistencyProofText{Old: 3, New: 7, Hashes: cons}).Marshal()
	var vec strings.Builder
	fmt.Fprintf(&vec, "verifier key: %s\n", s.Verifier())
	chain := ledger.Hash{}
	for i := uint64(0); i < 7; i++ {
		leaf, _ := l.Tree().LeafHash(i)
		chain = ledger.ChainHash(chain, leaf)
		root, _ := l.Tree().Root(i + 1)
		fmt.Fprintf(&vec, "index %d leaf %s chain %s root(size %d) %s\n", i, leaf, chain, i+1, root)
	}
	files["vectors.txt"] = []byte(vec.String())

	for name, got := range files {
		path := filepath.Join("testdata", "golden", name)
		if *update {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the golden file: the format changed", name)
		}
	}
	// The golden proofs verify with the golden key.
	rec0, _ := ledger.ParseSegment(files[filepath.Base(ledger.SegmentName(3))])
	if _, err := ledger.VerifyInclusionProof(files["index4-size7.tlog-proof"], rec0.Records[1], s.Verifier()); err != nil {
		t.Fatalf("golden inclusion proof: %v", err)
	}
	if *update {
		writeFuzzCorpus(t, files)
	}
}

// writeFuzzCorpus commits seeds for every parser's fuzz test.
func writeFuzzCorpus(t *testing.T, files map[string][]byte) {
	seg := files[filepath.Base(ledger.SegmentName(0))]
	parsed, _ := ledger.ParseSegment(seg)
	seeds := map[string][][]byte{
		"FuzzParseSegment":          {seg, seg[:len(seg)-9], files[filepath.Base(ledger.SegmentName(3))]},
		"FuzzParseRecord":           {parsed.Records[0], parsed.Records[2][:30]},
		"FuzzParseCheckpoint":       {files[filepath.Base(ledger.CheckpointName(7))], files[filepath.Base(ledger.CheckpointName(3))]},
		"FuzzParseInclusionProof":   {files["index4-size7.tlog-proof"]},
		"FuzzParseConsistencyProof": {files["consistency-3-7.txt"]},
	}
	for fuzz, list := range seeds {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		os.MkdirAll(dir, 0o755)
		for i, b := range list {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("golden-%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestReopenContinues(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := goldenKey(t)
	l, _ := newLog(t, dir, s)
	if _, err := l.Append(ctx, entries(0, 5)); err != nil {
		t.Fatal(err)
	}
	l2, st := newLog(t, dir, s)
	if l2.Size() != 5 || l2.LastSource() != 5 {
		t.Fatalf("reopened at size %d source %d, want 5 and 5", l2.Size(), l2.LastSource())
	}
	if _, err := l2.Append(ctx, entries(5, 5)); err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.Verify(ctx, st, ledger.VerifyOptions{Verifier: s.Verifier()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Size != 10 || len(rep.Segments) != 2 || rep.Checkpoints != 2 {
		t.Fatalf("report %+v", rep)
	}
	// A source at or below what is sealed is refused: no event twice.
	if _, err := l2.Append(ctx, []ledger.Entry{{Event: event(99), Source: 10}}); err == nil {
		t.Fatal("duplicate source accepted")
	}
}

// TestCrashBeforeCheckpoint: a writer that died after sealing a segment but
// before signing its checkpoint leaves a store that verify rejects (records
// not covered by a signature); reopening signs it, and verify passes.
func TestCrashBeforeCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := goldenKey(t)
	l, st := newLog(t, dir, s)
	if _, err := l.Append(ctx, entries(0, 4)); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, filepath.FromSlash(ledger.CheckpointName(4)))
	if err := os.Remove(cp); err != nil {
		t.Fatal(err)
	}
	_, err := ledger.Verify(ctx, st, ledger.VerifyOptions{Verifier: s.Verifier()})
	var ve *ledger.VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("verify after losing the checkpoint: %v, want a VerifyError", err)
	}
	newLog(t, dir, s)
	if _, err := ledger.Verify(ctx, st, ledger.VerifyOptions{Verifier: s.Verifier()}); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
}

// TestFencing: two writers on one store; the second to seal an index is
// refused with ErrFenced and nothing is overwritten.
func TestFencing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := goldenKey(t)
	a, st := newLog(t, dir, s)
	b, _ := newLog(t, dir, s)
	if _, err := a.Append(ctx, entries(0, 2)); err != nil {
		t.Fatal(err)
	}
	_, err := b.Append(ctx, entries(0, 3))
	if !errors.Is(err, ledger.ErrFenced) {
		t.Fatalf("second writer: %v, want ErrFenced", err)
	}
	rep, err := ledger.Verify(ctx, st, ledger.VerifyOptions{Verifier: s.Verifier()})
	if err != nil || rep.Size != 2 {
		t.Fatalf("verify: %v, size %v", err, rep)
	}
}

// Sources are contiguous: a skipped stream sequence is refused unless a
// gap record covers it, and the verifier reports the gap.
func TestSourcesContiguous(t *testing.T) {
	s := goldenKey(t)
	l, st := newLog(t, t.TempDir(), s)
	src := func(i int, source uint64) ledger.Entry { return ledger.Entry{Event: event(i), Source: source} }
	if _, err := l.Append(t.Context(), []ledger.Entry{src(0, 1), src(1, 2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(t.Context(), []ledger.Entry{src(2, 5)}); err == nil || !strings.Contains(err.Error(), "3..4 skipped with no gap record") {
		t.Fatalf("append skipping sequences 3..4: %v", err)
	}
	if _, err := l.Append(t.Context(), []ledger.Entry{src(2, 2)}); err == nil || !strings.Contains(err.Error(), "not increasing") {
		t.Fatalf("append repeating sequence 2: %v", err)
	}
	gap, err := ledger.GapEntry(s.Name(), ledger.Gap{FirstSeq: 3, LastSeq: 4, NoticedAt: time.Unix(1, 0), Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	wrong, _ := ledger.GapEntry(s.Name(), ledger.Gap{FirstSeq: 4, LastSeq: 4, NoticedAt: time.Unix(1, 0), Reason: "test"})
	if _, err := l.Append(t.Context(), []ledger.Entry{wrong}); err == nil {
		t.Fatal("a gap record starting after the next sequence was accepted")
	}
	if _, err := l.Append(t.Context(), []ledger.Entry{gap, src(2, 5)}); err != nil {
		t.Fatal(err)
	}
	_, err = ledger.Verify(t.Context(), st, ledger.VerifyOptions{Verifier: s.Verifier()})
	if !errors.Is(err, ledger.ErrGaps) {
		t.Fatalf("verify: %v, want the gap reported", err)
	}
	rep, err := ledger.Verify(t.Context(), st, ledger.VerifyOptions{Verifier: s.Verifier(), AllowGaps: true})
	if err != nil || len(rep.Gaps) != 1 || rep.Gaps[0].Index != 2 || rep.Gaps[0].Count != 2 {
		t.Fatalf("verify --allow-gaps: %v %+v", err, rep)
	}
	// The events of one batch message share its sequence, and are sealed
	// together; a later segment may not repeat it.
	if _, err := l.Append(t.Context(), []ledger.Entry{src(3, 6), src(4, 6), src(5, 6), src(6, 7)}); err != nil {
		t.Fatalf("one batch message's events in one segment: %v", err)
	}
	if _, err := l.Append(t.Context(), []ledger.Entry{src(7, 7)}); err == nil || !strings.Contains(err.Error(), "not increasing") {
		t.Fatalf("append repeating sequence 7 in a new segment: %v", err)
	}
	if _, err := l.Append(t.Context(), []ledger.Entry{src(7, 8), src(8, 7)}); err == nil || !strings.Contains(err.Error(), "not increasing") {
		t.Fatalf("append going back to sequence 7: %v", err)
	}
	if rep, err = ledger.Verify(t.Context(), st, ledger.VerifyOptions{Verifier: s.Verifier(), AllowGaps: true}); err != nil || rep.LastSource != 7 || rep.Size != 8 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// resentPUT is a real store whose Create behaves as an S3 client that
// resent a timed-out PUT: the delayed original lands, and the resend is
// refused because the object now exists.
type resentPUT struct{ ledger.SegmentStore }

func (s resentPUT) Create(ctx context.Context, name string, data []byte, retain time.Time) error {
	if err := s.SegmentStore.Create(ctx, name, data, retain); err != nil {
		return err
	}
	return fmt.Errorf("precondition failed on resend: %w", ledger.ErrExist)
}

// A lone writer whose own delayed write refuses its resend is not fenced:
// it reads the object back and finds its own bytes. Different bytes still
// fence it.
func TestResentWriteDoesNotFence(t *testing.T) {
	s := goldenKey(t)
	dir := t.TempDir()
	st, _ := file.New(dir)
	l, err := ledger.Open(t.Context(), ledger.Config{Store: resentPUT{st}, Signer: s, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := l.Append(t.Context(), entries(2*i, 2)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	rep, err := ledger.Verify(t.Context(), st, ledger.VerifyOptions{Verifier: s.Verifier()})
	if err != nil || rep.Size != 6 {
		t.Fatalf("verify: %v %v", err, rep)
	}
	other, _ := newLog(t, dir, s)
	l2, _ := ledger.Open(t.Context(), ledger.Config{Store: resentPUT{st}, Signer: s, Now: fixedClock()})
	if _, err := other.Append(t.Context(), entries(6, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Append(t.Context(), entries(6, 2)); !errors.Is(err, ledger.ErrFenced) {
		t.Fatalf("a writer finding other bytes at its segment: %v, want ErrFenced", err)
	}
}

// TestOpenWithAnotherKey: opening a store with a signing key that is not
// its log's says so — which key signed it, which was given — rather than
// that another writer is at work.
func TestOpenWithAnotherKey(t *testing.T) {
	s := goldenKey(t)
	dir := t.TempDir()
	l, st := newLog(t, dir, s)
	if _, err := l.Append(t.Context(), entries(0, 3)); err != nil {
		t.Fatal(err)
	}
	skey, _, _ := ledger.GenerateKey(nil, "other.auditledger.dev/log")
	other, _ := ledger.NewNoteSigner(skey)
	_, err := ledger.Open(t.Context(), ledger.Config{Store: st, Signer: other})
	if !errors.Is(err, ledger.ErrWrongKey) || errors.Is(err, ledger.ErrFenced) || !strings.Contains(err.Error(), "is signed by "+s.Name()) {
		t.Fatalf("open with another key: %v", err)
	}
}

// A bound record's event is outside its leaf, so the tree does not catch
// an event changed in the store; the digest the leaf covers does.
func TestChangedEventOfABoundRecord(t *testing.T) {
	ctx := context.Background()
	s := goldenKey(t)
	dir := t.TempDir()
	l, st := newLog(t, dir, s)
	if _, err := l.Append(ctx, entries(0, 3)); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, filepath.FromSlash(ledger.SegmentName(0)))
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(`"id":"ev-1"`))
	b[i+6] = 'X'
	os.Chmod(name, 0o644)
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ledger.Verify(ctx, st, ledger.VerifyOptions{Verifier: s.Verifier()})
	if err == nil || !strings.Contains(err.Error(), "index 1") || !strings.Contains(err.Error(), "does not match the digest") {
		t.Fatalf("verify: %v, want record 1's event refused against its digest", err)
	}
}
