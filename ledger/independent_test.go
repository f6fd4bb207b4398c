package ledger_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
)

// TestIndependentVerifierAgrees runs a second verifier, written in Python
// from docs/FORMAT.md alone (test/formatverify/verify.py: events with the JSON
// Schema and the rules §1 states beyond it, records, segments, the tree,
// the chain and checkpoints, §7's order of checks), over every vector —
// the stores of ledger/testdata/rules, the golden store with bytes of its
// segments changed, the events of events/testdata — and requires it to
// reach the verdict `verify` (ledger.Verify, events.Parse) reaches on
// each: the document is precise enough to implement, and the code does
// what it says.
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
	}
	type kase struct {
		Kind   string `json:"kind"`
		Path   string `json:"path"`
		VKey   string `json:"vkey,omitempty"`
		Sealed bool   `json:"sealed,omitempty"`
		goes   verdict
	}
	var cases []kase
	storeVerdict := func(dir string) verdict {
		st, err := file.Open(dir)
		if err != nil {
			return verdict{false, err.Error()}
		}
		if _, err := ledger.Verify(t.Context(), st, ledger.VerifyOptions{Verifier: v}); err != nil {
			return verdict{false, err.Error()}
		}
		return verdict{ok: true}
	}
	stores, _ := filepath.Glob("testdata/rules/store-*")
	for _, dir := range stores {
		abs, _ := filepath.Abs(dir)
		cases = append(cases, kase{Kind: "store", Path: abs, VKey: vkeyFile, goes: storeVerdict(abs)})
	}
	// The golden store with one byte changed, at spread positions of each
	// segment: framing, records, events, trailers.
	golden, _ := filepath.Abs("testdata/rules/store-golden")
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
	evs, _ := filepath.Glob("../events/testdata/*/*.json")
	for _, f := range evs {
		abs, _ := filepath.Abs(f)
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
		cases = append(cases, kase{Kind: "event", Path: abs, Sealed: true, goes: sealed}, kase{Kind: "event", Path: abs, goes: writer})
	}
	list, _ := json.Marshal(cases)
	casesFile := filepath.Join(t.TempDir(), "cases.json")
	os.WriteFile(casesFile, list, 0o644)
	schema, _ := filepath.Abs("../events/schema/event.v1.schema.json")
	cmd := exec.Command(py, "../test/formatverify/verify.py", schema, casesFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("verify.py: %v\n%s", err, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	i, agree, refused := 0, 0, 0
	for sc.Scan() {
		var r struct {
			Path   string `json:"path"`
			OK     bool   `json:"ok"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || i >= len(cases) || r.Path != cases[i].Path {
			t.Fatalf("verify.py line %d: %s (%v)", i+1, sc.Bytes(), err)
		}
		c := cases[i]
		if r.OK != c.goes.ok {
			t.Errorf("%s %s (sealed %v): Python says ok=%v (%s), Go says ok=%v (%s)", c.Kind, rel(c.Path), c.Sealed, r.OK, r.Reason, c.goes.ok, c.goes.reason)
		} else {
			agree++
		}
		if !r.OK {
			refused++
		}
		i++
	}
	if i != len(cases) {
		t.Fatalf("verify.py answered %d of %d cases\n%s", i, len(cases), stderr.String())
	}
	t.Logf("the independent verifier agrees with verify on %d of %d cases (%d refused by both)", agree, len(cases), refused)
	if refused == 0 || refused == len(cases) {
		t.Errorf("%d of %d cases refused: the vectors test nothing", refused, len(cases))
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
