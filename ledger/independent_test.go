package ledger_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
)

// TestIndependentVerifierAgrees runs a second verifier, written in Python
// from docs/FORMAT.md alone (test/formatverify/verify.py: events with the JSON
// Schema and the rules §1 states beyond it, records and redacted records,
// segments, the tree, the chain, checkpoints as signed notes, inclusion and
// consistency proofs, the golden vectors, §7's order of checks), over every
// vector in ledger/testdata — plus the golden store with bytes of its
// segments changed, tampered checkpoints, proofs and vector lines, and the
// events of events/testdata — and requires it to reach the verdict Go
// reaches on each (ledger.Verify, OpenCheckpoint, ParseRecord,
// VerifyInclusionProof, VerifyConsistency, events.Parse, …): the document
// is precise enough to implement, and the code does what it says. Every
// file and directory in ledger/testdata must be claimed by a case, so a
// new vector cannot be left out silently.
func TestIndependentVerifierAgrees(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed for the independent verifier: %v", err)
	}
	if out, err := exec.Command(py, "-c", "import jsonschema, cryptography").CombinedOutput(); err != nil {
		t.Fatalf("the independent verifier needs Python's jsonschema and cryptography (pip install jsonschema cryptography): %v\n%s", err, out)
	}
	vkeyFile, _ := filepath.Abs("testdata/rules/golden.vkey")
	vkeyText, err := os.ReadFile(vkeyFile)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ledger.NewNoteVerifier(string(vkeyText))
	if err != nil {
		t.Fatal(err)
	}
	type verdict struct {
		ok     bool
		reason string
		detail string // compared too when both accept
	}
	type kase struct {
		Kind     string   `json:"kind"`
		Path     string   `json:"path"`
		VKey     string   `json:"vkey,omitempty"`
		Sealed   bool     `json:"sealed,omitempty"`
		Line     *int     `json:"line,omitempty"`
		Record   string   `json:"record,omitempty"`
		Old      string   `json:"old,omitempty"`
		New      string   `json:"new,omitempty"`
		Segments []string `json:"segments,omitempty"`
		goes     verdict
	}
	var cases []kase
	fail := func(err error) verdict { return verdict{false, err.Error(), ""} }
	okv := func(format string, a ...any) verdict { return verdict{ok: true, detail: fmt.Sprintf(format, a...)} }

	// Every entry of ledger/testdata, claimed below by the cases that use it.
	claimed := map[string]bool{}
	var entries []string
	err = filepath.WalkDir("testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != "testdata" {
			entries = append(entries, filepath.ToSlash(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// claim marks a testdata file, or a directory and all under it.
	claim := func(p string) {
		p = filepath.ToSlash(p)
		if i := strings.Index(p, "testdata/"); i >= 0 {
			p = p[i:]
		}
		for _, e := range entries {
			if e == p || strings.HasPrefix(e, p+"/") {
				claimed[e] = true
			}
		}
	}
	// claimDir marks a directory that only holds vectors, not what is in it.
	claimDir := func(p string) { claimed[filepath.ToSlash(p)] = true }
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tmp := t.TempDir()
	n := 0
	// scratch writes b to a new file and returns its path.
	scratch := func(name string, b []byte) string {
		n++
		p := filepath.Join(tmp, fmt.Sprintf("%03d-%s", n, name))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// Stores (§7).
	storeVerdict := func(dir string) verdict {
		st, err := file.Open(dir)
		if err != nil {
			return fail(err)
		}
		rep, err := ledger.Verify(t.Context(), st, ledger.VerifyOptions{Verifier: v})
		if err != nil {
			return fail(err)
		}
		if len(rep.UnnamedBulk) > 0 {
			// §7: objects under bulk/ no record names, a warning.
			return okv("unnamed %s", strings.Join(rep.UnnamedBulk, " "))
		}
		return verdict{ok: true}
	}
	claim("testdata/rules/golden.vkey") // the key of every case below
	stores, _ := filepath.Glob("testdata/rules/store-*")
	for _, dir := range stores {
		claim(dir)
		cases = append(cases, kase{Kind: "store", Path: abs(dir), VKey: vkeyFile, goes: storeVerdict(abs(dir))})
	}
	// The golden store with one byte changed, at spread positions of each
	// segment: framing, records, events, trailers.
	golden := abs("testdata/rules/store-golden")
	segs, _ := filepath.Glob(filepath.Join(golden, "segments", "*.seg"))
	for _, seg := range segs {
		b, _ := os.ReadFile(seg)
		for _, at := range []int{0, 9, 18, 30, 60, len(b) / 3, len(b) / 2, 2 * len(b) / 3, len(b) - 50, len(b) - 1} {
			dir := filepath.Join(t.TempDir(), "store")
			copyTree(t, golden, dir)
			p := filepath.Join(dir, "segments", filepath.Base(seg))
			c := bytes.Clone(b)
			c[at] ^= 0x20
			os.Chmod(p, 0o644)
			if err := os.WriteFile(p, c, 0o444); err != nil {
				t.Fatal(err)
			}
			cases = append(cases, kase{Kind: "store", Path: dir, VKey: vkeyFile, goes: storeVerdict(dir)})
		}
	}
	// testdata/golden holds the golden log's objects side by side: laid
	// out as a store (§4), it is one.
	gdir := filepath.Join(tmp, "golden-store")
	var gsegs []string
	for _, e := range []string{"segments", "checkpoints"} {
		os.MkdirAll(filepath.Join(gdir, e), 0o755)
	}
	for _, name := range []string{"00000000000000000000.seg", "00000000000000000003.seg", "00000000000000000003", "00000000000000000007"} {
		p := filepath.Join("testdata/golden", name)
		claim(p)
		to := filepath.Join(gdir, "checkpoints", name)
		if strings.HasSuffix(name, ".seg") {
			to = filepath.Join(gdir, "segments", name)
			gsegs = append(gsegs, abs(p))
		}
		if err := os.WriteFile(to, read(p), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	cases = append(cases, kase{Kind: "store", Path: gdir, VKey: vkeyFile, goes: storeVerdict(gdir)})

	// Checkpoints (§5): the vectors, the golden ones, and the golden one
	// at 7 with a byte changed in each part.
	cpVerdict := func(p string) verdict {
		c, err := ledger.OpenCheckpoint(read(p), v)
		if err != nil {
			return fail(err)
		}
		return okv("size %d root %x", c.Size, c.Root[:])
	}
	addCheckpoint := func(p string) {
		cases = append(cases, kase{Kind: "checkpoint", Path: abs(p), VKey: vkeyFile, goes: cpVerdict(p)})
	}
	cps, _ := filepath.Glob("testdata/rules/checkpoint-*")
	for _, p := range cps {
		claim(p)
		addCheckpoint(p)
	}
	addCheckpoint("testdata/golden/00000000000000000003")
	cp7 := read("testdata/golden/00000000000000000007")
	for _, at := range []int{0, 5, 28, 40, 73, 76, 110, 150, len(cp7) - 2, len(cp7) - 1} {
		c := bytes.Clone(cp7)
		c[at] ^= 0x01
		addCheckpoint(scratch("checkpoint", c))
	}
	addCheckpoint(scratch("checkpoint-witness", append(bytes.Clone(cp7), "— witness.example.com/w AAAAAAAA\n"...)))
	addCheckpoint(scratch("checkpoint-extension", bytes.Replace(cp7, []byte("=\n\n"), []byte("=\nextension\n\n"), 1)))
	addCheckpoint(scratch("checkpoint-leading-zero", bytes.Replace(cp7, []byte("\n7\n"), []byte("\n07\n"), 1)))
	addCheckpoint(scratch("checkpoint-witness-noncanonical", append(bytes.Clone(cp7), "— witness.example.com/w AAAAAB==\n"...)))
	addCheckpoint(scratch("checkpoint-witness-first", bytes.Replace(cp7, []byte("\n\n"), []byte("\n\n— witness.example.com/w AAAAAAAA\n"), 1)))
	addCheckpoint(scratch("checkpoint-witness-short", append(bytes.Clone(cp7), "— witness.example.com/w AAAA\n"...)))
	addCheckpoint(scratch("checkpoint-witness-no-signature", append(bytes.Clone(cp7), "— witness.example.com/w\n"...)))
	addCheckpoint(scratch("checkpoint-witness-4-bytes", append(bytes.Clone(cp7), "— witness.example.com/w AAAAAA==\n"...)))
	addCheckpoint(scratch("checkpoint-witness-5-bytes", append(bytes.Clone(cp7), "— witness.example.com/w AAAAAAA=\n"...)))
	addCheckpoint(scratch("checkpoint-witness-plus", append(bytes.Clone(cp7), "— witness+x AAAAAAAA\n"...)))
	addCheckpoint(scratch("checkpoint-witness-two-spaces", append(bytes.Clone(cp7), "— witness  AAAAAAAA\n"...)))
	addCheckpoint(scratch("checkpoint-witness-no-dash", append(bytes.Clone(cp7), "- witness AAAAAAAA\n"...)))
	addCheckpoint(scratch("checkpoint-crlf", bytes.ReplaceAll(cp7, []byte("\n"), []byte("\r\n"))))
	addCheckpoint(scratch("checkpoint-no-final-newline", cp7[:len(cp7)-1]))
	addCheckpoint(scratch("checkpoint-blank-line", bytes.Replace(cp7, []byte("\n\n"), []byte("\n\n\n"), 1)))
	addCheckpoint(scratch("checkpoint-no-signature", bytes.SplitAfter(cp7, []byte("\n\n"))[0]))
	addCheckpoint(scratch("checkpoint-size-2^64", bytes.Replace(cp7, []byte("\n7\n"), []byte("\n18446744073709551616\n"), 1)))

	// Notes signed by the golden key whose text breaks a rule of §5, so
	// that the rule, not the signature, refuses them; and a checkpoint at
	// 7 with another root (a fork), for the proofs below.
	signer := goldenKey(t)
	signedNote := func(name, text string) string {
		b, err := signer.SignNote([]byte(text))
		if err != nil {
			t.Fatalf("signing %q: %v", text, err)
		}
		return scratch(name, b)
	}
	const origin = "golden.auditledger.dev/log\n"
	for _, c := range []struct{ name, text string }{
		{"signed-size-0", origin + "0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"},
		{"signed-leading-zero", origin + "07\ni+QuKSeqET2QMbIDXpJFK8r8IqLG2Y3RFio+CzHP2m8=\n"},
		{"signed-size-plus", origin + "+7\ni+QuKSeqET2QMbIDXpJFK8r8IqLG2Y3RFio+CzHP2m8=\n"},
		{"signed-size-2^64", origin + "18446744073709551616\ni+QuKSeqET2QMbIDXpJFK8r8IqLG2Y3RFio+CzHP2m8=\n"},
		{"signed-size-2^64-1", origin + "18446744073709551615\ni+QuKSeqET2QMbIDXpJFK8r8IqLG2Y3RFio+CzHP2m8=\n"},
		{"signed-root-31-bytes", origin + "7\ni+QuKSeqET2QMbIDXpJFK8r8IqLG2Y3RFio+CzHP2g==\n"},
		{"signed-root-unpadded", origin + "7\ni+QuKSeqET2QMbIDXpJFK8r8IqLG2Y3RFio+CzHP2m8\n"},
		{"signed-extension", origin + "7\ni+QuKSeqET2QMbIDXpJFK8r8IqLG2Y3RFio+CzHP2m8=\nextension\n"},
		{"signed-other-origin", "other.example/log\n7\ni+QuKSeqET2QMbIDXpJFK8r8IqLG2Y3RFio+CzHP2m8=\n"},
	} {
		addCheckpoint(signedNote(c.name, c.text))
	}
	fork := ledger.Hash{0x42}
	forked, err := ledger.SignCheckpoint(signer, 7, fork)
	if err != nil {
		t.Fatal(err)
	}
	cpFork := scratch("checkpoint-fork-7", forked.Signed)
	addCheckpoint(cpFork)

	// Records (§2, §2.4): each golden and version-1 record alone, the
	// redacted vector, and a bound record with a changed event.
	recVerdict := func(b []byte) verdict {
		r, err := ledger.ParseRecord(b)
		if err != nil {
			return fail(err)
		}
		return okv("index %d redacted %v", r.Index, r.Redacted())
	}
	addRecord := func(p string) {
		cases = append(cases, kase{Kind: "record", Path: abs(p), goes: recVerdict(read(p))})
	}
	claim("testdata/rules/record4-redacted")
	addRecord("testdata/rules/record4-redacted")
	var record4, record3, record4v1 []byte
	for _, dir := range []string{golden, abs("testdata/rules/store-version1")} {
		ss, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
		for _, p := range ss {
			seg, err := ledger.ParseSegment(read(p))
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range seg.Records {
				addRecord(scratch("record", r))
				switch idx := seg.First + uint64(i); {
				case idx == 4 && dir == golden:
					record4 = r
				case idx == 3 && dir == golden:
					record3 = r
				case idx == 4:
					record4v1 = r
				}
			}
		}
	}
	if record4 == nil || record3 == nil || record4v1 == nil {
		t.Fatal("the golden stores lack records 3 and 4")
	}
	claim("testdata/rules/record4-event-changed")
	changedRec := abs("testdata/rules/record4-event-changed")
	addRecord(changedRec)
	addRecord(scratch("record-short", record4[:40]))
	addRecord(scratch("record-v1-one-byte-event", append(bytes.Clone(record4v1[:25]), '{')))
	addRecord(scratch("record-v3-one-byte-event", append(bytes.Clone(record4[:89]), '{')))
	addRecord(scratch("record-v1-no-event", record4v1[:25]))
	addRecord(scratch("record-v5", append([]byte{5}, record4v1[1:]...)))
	big := append(bytes.Clone(record4v1[:25]), bytes.Repeat([]byte{' '}, 65537)...)
	addRecord(scratch("record-v1-65537", big))
	addRecord(scratch("record-v1-65536", big[:len(big)-1]))

	// Inclusion proofs (§6): each proof for record 4, whole and redacted,
	// and for records it does not prove.
	r4, r4r, r3, r4v1 := scratch("record4", record4), abs("testdata/rules/record4-redacted"), scratch("record3", record3), scratch("record4-v1", record4v1)
	inclVerdict := func(p, rec string) verdict {
		c, err := ledger.VerifyInclusionProof(read(p), read(rec), v)
		if err != nil {
			return fail(err)
		}
		pt, _ := ledger.ParseInclusionProof(read(p))
		return okv("index %d size %d", pt.Index, c.Size)
	}
	addInclusion := func(p string, recs ...string) {
		for _, rec := range recs {
			cases = append(cases, kase{Kind: "inclusion", Path: abs(p), Record: rec, VKey: vkeyFile, goes: inclVerdict(p, rec)})
		}
	}
	claim("testdata/golden/index4-size7.tlog-proof")
	claim("testdata/rules/index4-size7-extra.tlog-proof")
	addInclusion("testdata/golden/index4-size7.tlog-proof", r4, r4r, r3, r4v1, changedRec)
	addInclusion("testdata/rules/index4-size7-extra.tlog-proof", r4, r4r, r3, changedRec)
	proof := read("testdata/golden/index4-size7.tlog-proof")
	addInclusion(scratch("proof-index-3", bytes.Replace(proof, []byte("index 4"), []byte("index 3"), 1)), r4)
	addInclusion(scratch("proof-hash-changed", bytes.Replace(proof, []byte("waHf"), []byte("waHg"), 1)), r4)
	addInclusion(scratch("proof-hash-dropped", bytes.Replace(proof, []byte("ewtrm9D4VYRxtMrElQ+C5Hfg5Z3I9fdfsP1bUh/FxYw=\n"), nil, 1)), r4)
	addInclusion(scratch("proof-checkpoint-3", append(bytes.SplitAfter(proof, []byte("\n\n"))[0], read("testdata/golden/00000000000000000003")...)), r4)
	addInclusion(scratch("proof-fork", append(bytes.SplitAfter(proof, []byte("\n\n"))[0], forked.Signed...)), r4)
	// A one-record tree whose leaf is record 3's, signed: the path holds
	// for record 3 at position 0, but the record says it is index 3.
	one, err := ledger.SignCheckpoint(signer, 1, ledger.LeafHash(record3))
	if err != nil {
		t.Fatal(err)
	}
	addInclusion(scratch("proof-index-0-size-1", append([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\n"), one.Signed...)), r3, r4)
	addInclusion(scratch("proof-extra-noncanonical", bytes.Replace(proof, []byte("\nindex"), []byte("\nextra YR==\nindex"), 1)), r4)
	addInclusion(scratch("proof-extra-after-index", bytes.Replace(proof, []byte("index 4\n"), []byte("index 4\nextra YQ==\n"), 1)), r4)
	addInclusion(scratch("proof-two-extras", bytes.Replace(proof, []byte("\nindex"), []byte("\nextra YQ==\nextra YQ==\nindex"), 1)), r4)
	addInclusion(scratch("proof-index-leading-zero", bytes.Replace(proof, []byte("index 4"), []byte("index 04"), 1)), r4)
	addInclusion(scratch("proof-hash-added", bytes.Replace(proof, []byte("\n\n"), []byte("\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n"), 1)), r4)
	addInclusion(scratch("proof-crlf", bytes.Replace(proof, []byte("index 4\n"), []byte("index 4\r\n"), 1)), r4)
	addInclusion(scratch("proof-other-header", bytes.Replace(proof, []byte("@v1"), []byte("@v2"), 1)), r4)
	addInclusion(scratch("proof-no-checkpoint", bytes.SplitAfter(proof, []byte("\n\n"))[0]), r4)

	// Consistency proofs (§6), against the golden checkpoints.
	cp3, cp7p := abs("testdata/golden/00000000000000000003"), abs("testdata/golden/00000000000000000007")
	consVerdict := func(p, oldCP, newCP string) verdict {
		pt, err := ledger.ParseConsistencyProof(read(p))
		if err != nil {
			return fail(err)
		}
		oldRoot, oldSize := ledger.EmptyRoot, uint64(0)
		if oldCP != "" {
			c, err := ledger.OpenCheckpoint(read(oldCP), v)
			if err != nil {
				return fail(err)
			}
			oldRoot, oldSize = c.Root, c.Size
		}
		c, err := ledger.OpenCheckpoint(read(newCP), v)
		if err != nil {
			return fail(err)
		}
		if oldSize != pt.Old || c.Size != pt.New {
			return fail(fmt.Errorf("checkpoints at %d and %d for a proof from %d to %d", oldSize, c.Size, pt.Old, pt.New))
		}
		if err := ledger.VerifyConsistency(pt.Old, pt.New, pt.Hashes, oldRoot, c.Root); err != nil {
			return fail(err)
		}
		return okv("old %d new %d", pt.Old, pt.New)
	}
	addConsistency := func(p, oldCP, newCP string) {
		cases = append(cases, kase{Kind: "consistency", Path: abs(p), Old: oldCP, New: newCP, VKey: vkeyFile, goes: consVerdict(p, oldCP, newCP)})
	}
	for _, p := range []string{"testdata/golden/consistency-3-7.txt", "testdata/rules/consistency-0-7.txt", "testdata/rules/consistency-7-7.txt"} {
		claim(p)
	}
	cons := read("testdata/golden/consistency-3-7.txt")
	addConsistency("testdata/golden/consistency-3-7.txt", cp3, cp7p)
	addConsistency("testdata/golden/consistency-3-7.txt", cp7p, cp7p)
	addConsistency("testdata/rules/consistency-0-7.txt", "", cp7p)
	addConsistency("testdata/rules/consistency-7-7.txt", cp7p, cp7p)
	addConsistency(scratch("consistency-3-3", []byte("auditledger.dev/tlog-consistency@v1\nold 3\nnew 3\n")), cp3, cp3)
	addConsistency(scratch("consistency-7-3", []byte("auditledger.dev/tlog-consistency@v1\nold 7\nnew 3\n")), cp7p, cp3)
	addConsistency(scratch("consistency-0-7-hash", append(read("testdata/rules/consistency-0-7.txt"), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"...)), "", cp7p)
	addConsistency(scratch("consistency-hash-changed", bytes.Replace(cons, []byte("GyTv"), []byte("GyTw"), 1)), cp3, cp7p)
	addConsistency(scratch("consistency-hash-dropped", bytes.Replace(cons, []byte("Bppy99Cxl5YdQ+WcF+96meQbJs9B0woowGuaN4DbSFw=\n"), nil, 1)), cp3, cp7p)
	addConsistency(scratch("consistency-crlf", bytes.ReplaceAll(cons, []byte("\n"), []byte("\r\n"))), cp3, cp7p)
	addConsistency("testdata/rules/consistency-7-7.txt", cp7p, cpFork)
	addConsistency("testdata/golden/consistency-3-7.txt", cp3, cpFork)
	addConsistency("testdata/rules/consistency-0-7.txt", "", cpFork)
	addConsistency(scratch("consistency-hash-added", append(bytes.Clone(cons), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"...)), cp3, cp7p)
	addConsistency(scratch("consistency-leading-zero", bytes.Replace(cons, []byte("old 3"), []byte("old 03"), 1)), cp3, cp7p)
	addConsistency(scratch("consistency-no-final-newline", cons[:len(cons)-1]), cp3, cp7p)
	addConsistency(scratch("consistency-blank-line", append(bytes.Clone(cons), '\n')), cp3, cp7p)
	addConsistency(scratch("consistency-noncanonical", bytes.Replace(cons, []byte("SFw=\n"), []byte("SFx=\n"), 1)), cp3, cp7p)
	addConsistency(scratch("consistency-0-7-with-3", read("testdata/rules/consistency-0-7.txt")), cp3, cp7p)

	// The golden vectors (§10), and copies with one thing wrong.
	claim("testdata/golden/vectors.txt")
	goldenLeaves := func() string {
		var s strings.Builder
		fmt.Fprintf(&s, "verifier key: %s\n", strings.TrimSpace(string(vkeyText)))
		tree, chain := ledger.NewTree(), ledger.Hash{}
		for _, p := range gsegs {
			seg, err := ledger.ParseSegment(read(p))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range seg.Records {
				leaf := ledger.LeafHash(r)
				tree.Append(leaf)
				chain = ledger.ChainHash(chain, leaf)
				i := tree.Size() - 1
				root, _ := tree.Root(i + 1)
				fmt.Fprintf(&s, "index %d leaf %x chain %x root(size %d) %x\n", i, leaf[:], chain[:], i+1, root[:])
			}
		}
		return s.String()
	}()
	addVectors := func(p string) {
		goes := verdict{ok: true, detail: fmt.Sprintf("%d records", strings.Count(goldenLeaves, "\n")-1)}
		if got := string(read(p)); got != goldenLeaves {
			goes = verdict{ok: false, reason: fmt.Sprintf("%s is not the golden log's vectors:\n%s", p, goldenLeaves)}
		}
		cases = append(cases, kase{Kind: "vectors", Path: abs(p), Segments: gsegs, VKey: vkeyFile, goes: goes})
	}
	vec := read("testdata/golden/vectors.txt")
	addVectors("testdata/golden/vectors.txt")
	lines := bytes.SplitAfter(vec, []byte("\n"))
	addVectors(scratch("vectors-line-dropped", bytes.Join(lines[:len(lines)-2], nil)))
	addVectors(scratch("vectors-digit-changed", bytes.Replace(vec, []byte("leaf 8"), []byte("leaf 9"), 1)))
	addVectors(scratch("vectors-other-key", bytes.Replace(vec, []byte("+4f27c29e+"), []byte("+4f27c29f+"), 1)))

	// Segments parsed alone (§4; the fuzz seeds below are more): golden
	// segment 0 with its first record's version, or its count, changed.
	addSegment := func(p string) {
		goes := verdict{}
		if s, err := ledger.ParseSegment(read(p)); err != nil {
			goes = fail(err)
		} else {
			goes = okv("first %d count %d", s.First, len(s.Records))
		}
		cases = append(cases, kase{Kind: "segment", Path: p, goes: goes})
	}
	seg0 := read(gsegs[0])
	for _, at := range []int{19, 56, 57} {
		c := bytes.Clone(seg0)
		c[at] ^= 0x08
		addSegment(scratch("segment", c))
	}

	// Go's fuzz seeds (go test fuzz v1, one []byte literal each): each is
	// given to the parser its directory names.
	fuzz, _ := filepath.Glob("testdata/fuzz/*/*")
	for _, p := range fuzz {
		claim(p)
		claimDir(filepath.Dir(p))
		text := strings.SplitN(string(read(p)), "\n", 2)
		lit, found := strings.CutPrefix(strings.TrimSpace(text[len(text)-1]), "[]byte(")
		lit, found2 := strings.CutSuffix(lit, ")")
		b, err := strconv.Unquote(lit)
		if text[0] != "go test fuzz v1" || !found || !found2 || err != nil {
			t.Fatalf("%s: not a go test fuzz v1 file of one []byte: %v", p, err)
		}
		seed := scratch(filepath.Base(filepath.Dir(p))+"-"+filepath.Base(p), []byte(b))
		switch filepath.Base(filepath.Dir(p)) {
		case "FuzzParseCheckpoint":
			addCheckpoint(seed)
		case "FuzzParseRecord":
			addRecord(seed)
		case "FuzzParseSegment":
			addSegment(seed)
		case "FuzzParseInclusionProof":
			goes := fail(fmt.Errorf("no verdict"))
			if pt, err := ledger.ParseInclusionProof([]byte(b)); err != nil {
				goes = fail(err)
			} else {
				goes = okv("index %d hashes %d", pt.Index, len(pt.Hashes))
			}
			cases = append(cases, kase{Kind: "inclusion-text", Path: seed, goes: goes})
		case "FuzzParseConsistencyProof":
			goes := fail(fmt.Errorf("no verdict"))
			if pt, err := ledger.ParseConsistencyProof([]byte(b)); err != nil {
				goes = fail(err)
			} else {
				goes = okv("old %d new %d hashes %d", pt.Old, pt.New, len(pt.Hashes))
			}
			cases = append(cases, kase{Kind: "consistency-text", Path: seed, goes: goes})
		default:
			t.Fatalf("%s: a fuzz corpus no case kind reads", p)
		}
	}
	claimDir("testdata/fuzz")
	claimDir("testdata/golden")
	claimDir("testdata/rules")

	// sample.jsonl: one event per line, as a writer takes them.
	claim("testdata/sample.jsonl")
	sample := abs("testdata/sample.jsonl")
	for i, line := range strings.Split(strings.TrimSuffix(string(read(sample)), "\n"), "\n") {
		goes := verdict{ok: true}
		if _, err := events.Parse([]byte(line)); err != nil {
			goes = fail(err)
		} else if l := events.Legacy([]byte(line)); l != "" {
			goes = fail(fmt.Errorf("legacy form: %s", l))
		}
		cases = append(cases, kase{Kind: "event", Path: sample, Line: &i, goes: goes})
	}

	// Events (§1).
	evs, _ := filepath.Glob("../events/testdata/*/*.json")
	for _, f := range evs {
		b, _ := os.ReadFile(f)
		b = bytes.TrimSpace(b)
		_, perr := events.Parse(b)
		// In a sealed record (what verify reads) and as the writer
		// takes a new event (which refuses the legacy forms).
		sealed := verdict{ok: perr == nil}
		writer := verdict{ok: perr == nil && events.Legacy(b) == ""}
		if perr != nil {
			sealed.reason, writer.reason = perr.Error(), perr.Error()
		}
		cases = append(cases, kase{Kind: "event", Path: abs(f), Sealed: true, goes: sealed}, kase{Kind: "event", Path: abs(f), goes: writer})
	}

	for _, e := range entries {
		if !claimed[e] {
			t.Errorf("ledger/%s is given to no case of the independent verifier: add a case kind for it", e)
		}
	}

	list, _ := json.Marshal(cases)
	casesFile := filepath.Join(t.TempDir(), "cases.json")
	os.WriteFile(casesFile, list, 0o644)
	schema := abs("../events/schema/event.v1.schema.json")
	cmd := exec.Command(py, "../test/formatverify/verify.py", schema, casesFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("verify.py: %v\n%s", err, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	i, agree, refused := 0, 0, 0
	kinds := map[string][2]int{}
	for sc.Scan() {
		var r struct {
			Path   string `json:"path"`
			OK     bool   `json:"ok"`
			Reason string `json:"reason"`
			Detail string `json:"detail"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || i >= len(cases) || r.Path != cases[i].Path {
			t.Fatalf("verify.py line %d: %s (%v)", i+1, sc.Bytes(), err)
		}
		c := cases[i]
		name := rel(c.Path)
		if c.Record != "" {
			name += " with " + rel(c.Record)
		}
		if c.Line != nil {
			name += fmt.Sprintf(" line %d", *c.Line+1)
		}
		k := kinds[c.Kind]
		k[0]++
		switch {
		case r.OK != c.goes.ok:
			if c.Kind == "event" {
				name += fmt.Sprintf(" (sealed %v)", c.Sealed)
			}
			t.Errorf("%s %s: Python says ok=%v (%s), Go says ok=%v (%s)", c.Kind, name, r.OK, r.Reason, c.goes.ok, c.goes.reason)
		case r.OK && r.Detail != c.goes.detail:
			t.Errorf("%s %s: both accept, but Python reads %q and Go %q", c.Kind, name, r.Detail, c.goes.detail)
		default:
			agree++
		}
		if !r.OK {
			refused++
			k[1]++
		}
		kinds[c.Kind] = k
		i++
	}
	if i != len(cases) {
		t.Fatalf("verify.py answered %d of %d cases\n%s", i, len(cases), stderr.String())
	}
	t.Logf("the independent verifier agrees with Go on %d of %d cases (%d refused by both)", agree, len(cases), refused)
	for _, kind := range slices.Sorted(maps.Keys(kinds)) {
		k := kinds[kind]
		t.Logf("  %-16s %3d cases, %3d refused", kind, k[0], k[1])
		if kind != "inclusion-text" && (k[1] == 0 || k[1] == k[0]) {
			t.Errorf("%s: %d of %d cases refused: the cases test nothing", kind, k[1], k[0])
		}
	}
}

func rel(p string) string {
	if i := strings.Index(p, "testdata"); i >= 0 {
		return p[i:]
	}
	return p
}

// copyTree copies dir src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, r), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, r), b, 0o644)
	})
	if err != nil {
		t.Fatal(fmt.Errorf("copying %s: %w", src, err))
	}
}
