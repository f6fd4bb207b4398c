package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
)

// scanEvent is one sealed event of command.executed with the statement and
// bind parameter values given.
func scanEvent(id, statement string, values ...string) string {
	params := ""
	if values != nil {
		b, _ := json.Marshal(values)
		params = fmt.Sprintf(`,"parameters":{"count":%d,"recorded":"record","values":%s}`, len(values), b)
	}
	st, _ := json.Marshal(statement)
	return fmt.Sprintf(`{"version":1,"id":%q,"type":"command.executed","time":"2026-12-06T12:00:00Z","tenant":"acme","source":{"kind":"postgres-proxy","instance":"p1"},"actor":{"issuer":"https://idp.example","subject":"alice","kind":"human"},"session_id":"s1","session_seq":1,"payload":{"statement":%s%s}}`, id, st, params)
}

// TestScan: scan finds a card number in a sealed statement and an e-mail in
// a bind parameter, names each by index, path and detector, and prints
// neither value in any form; gap and rejection records are skipped and
// counted; a clean store exits 0; --detect narrows, and a wrong one is a
// usage error.
func TestScan(t *testing.T) {
	const (
		card  = "4539 1488 0343 6467" // Luhn-valid, unique to this test
		email = "scan.canary.7f3a@example.org"
	)
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	mustRun(t, nil, nil, "keys", "generate", "--out", keys, "--name", "test.auditledger.dev/log")
	key, vkey := filepath.Join(keys, "ledger.key"), filepath.Join(keys, "ledger.vkey")

	clean := filepath.Join(dir, "clean")
	mustRun(t, eventLines(0, 20), nil, "append", "--store", clean, "--key", key, "--segment-size", "8")
	r := mustRun(t, nil, nil, "scan", "--store", clean, "--vkey", vkey)
	if !strings.Contains(r.stdout, "scanned     20 records") || !strings.Contains(r.stdout, ": 20 events\n") || !strings.Contains(r.stdout, "found       nothing") {
		t.Errorf("clean store:\n%s", r.stdout)
	}

	dirty := filepath.Join(dir, "dirty")
	in := strings.Join([]string{
		scanEvent("ev-0", "SELECT 1"),
		scanEvent("ev-1", "SELECT * FROM cards WHERE number = '"+card+"'"),
		scanEvent("ev-2", "SELECT * FROM users WHERE email = $1", email),
		scanEvent("ev-3", "SELECT 2"),
	}, "\n") + "\n"
	// append refuses such events (docs/FORMAT.md §1.4) without printing
	// their values; a log sealed before that rule is built here directly.
	if r := run(t, []byte(in), nil, "append", "--store", filepath.Join(dir, "refused"), "--key", key); r.code != 1 ||
		!strings.Contains(r.stderr, `line 2: rejected: event "ev-1" holds a value the credit_card detector finds at payload.statement`) ||
		!strings.Contains(r.stderr, `line 3: rejected: event "ev-2" holds a value the email detector finds at payload.parameters.values[0]`) {
		t.Errorf("append of events holding values: exit %d\n%s", r.code, r.stderr)
	} else {
		noValue(t, r.stdout+r.stderr, card, email)
	}
	appendDirect(t, key, dirty, 2, strings.Split(strings.TrimSpace(in), "\n")...)
	r = run(t, nil, nil, "scan", "--store", dirty)
	if r.code != 1 {
		t.Fatalf("scan of a store holding a card number and an e-mail: exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"1  command.executed  acme  ev-1  payload.statement  credit_card\n",
		"2  command.executed  acme  ev-2  payload.parameters.values[0]  email\n",
		"found       2 finding(s) in 2 event(s): email 1, credit_card 1,",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("scan output lacks %q:\n%s", want, r.stdout)
		}
	}
	noValue(t, r.stdout+r.stderr, card, email)

	js := run(t, nil, nil, "scan", "--store", dirty, "--json", "--detect", "credit_card", "--from", "1", "--to", "3")
	lines := strings.Split(strings.TrimSpace(js.stdout), "\n")
	var f struct {
		Index            uint64
		ID, Type, Tenant string
		Path, Detector   string
		Count            int
	}
	if js.code != 1 || len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &f) != nil ||
		f.Index != 1 || f.ID != "ev-1" || f.Path != "payload.statement" || f.Detector != "credit_card" || f.Count != 1 {
		t.Errorf("scan --json --detect credit_card: exit %d\n%s\n%s", js.code, js.stdout, js.stderr)
	}
	if !strings.Contains(js.stderr, "scanned     2 records") {
		t.Errorf("scan --json: no summary on stderr:\n%s", js.stderr)
	}
	noValue(t, js.stdout+js.stderr, card, email)

	if r := run(t, nil, nil, "scan", "--store", dirty, "--detect", "postcode"); r.code != 2 || !strings.Contains(r.stderr, `"postcode"`) {
		t.Errorf("unknown detector: exit %d, want 2\n%s", r.code, r.stderr)
	}
}

// appendDirect seals lines into the store at dir with the signing key at
// keyPath, segSize events a segment, without the checks append makes.
func appendDirect(t *testing.T, keyPath, dir string, segSize int, lines ...string) {
	t.Helper()
	skey, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ledger.NewNoteSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), ledger.Config{Store: st, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	for len(lines) > 0 {
		n := min(segSize, len(lines))
		var entries []ledger.Entry
		for _, line := range lines[:n] {
			entries = append(entries, ledger.Entry{Event: []byte(line)})
		}
		if _, err := l.Append(context.Background(), entries); err != nil {
			t.Fatal(err)
		}
		lines = lines[n:]
	}
}

// noValue fails when out holds a value as typed, an e-mail's local part,
// or a number's digits (all, or the first or last eight).
func noValue(t *testing.T, out string, values ...string) {
	t.Helper()
	for _, v := range values {
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, v)
		forms := []string{v}
		if at := strings.IndexByte(v, '@'); at > 0 {
			forms = append(forms, v[:at])
		}
		if len(digits) >= 8 {
			forms = append(forms, digits, digits[:8], digits[len(digits)-8:])
		}
		for _, form := range forms {
			if strings.Contains(out, form) {
				t.Errorf("output holds %q (of a detected value):\n%s", form, out)
			}
		}
	}
}

// TestScanWriterRecords: the writer's gap and rejection records are
// counted apart from events, and scanned too: a rejection's reason that
// quotes a producer's text holding an e-mail is a finding.
func TestScanWriterRecords(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	mustRun(t, nil, nil, "keys", "generate", "--out", keys, "--name", "test.auditledger.dev/log")
	skey, err := os.ReadFile(filepath.Join(keys, "ledger.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ledger.NewNoteSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Join(dir, "store")
	st, err := file.New(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := ledger.Open(ctx, ledger.Config{Store: st, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	gap, err := ledger.GapEntry(signer.Name(), ledger.Gap{FirstSeq: 2, LastSeq: 3, NoticedAt: now, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	rejected, err := ledger.RejectedEntry(signer.Name(), ledger.Rejection{Seq: 4, Subject: "audit.events.acme", Reason: `type: "ops.rejected.canary@example.org" is not in the version-1 catalog`, SHA256: strings.Repeat("0", 64), Bytes: 10}, now)
	if err != nil {
		t.Fatal(err)
	}
	entries := []ledger.Entry{{Event: []byte(scanEvent("ev-a", "SELECT 1")), Source: 1}, gap, rejected, {Event: []byte(scanEvent("ev-b", "SELECT 2")), Source: 5}}
	if _, err := l.Append(ctx, entries); err != nil {
		t.Fatal(err)
	}
	r := run(t, nil, nil, "scan", "--store", storeDir, "--vkey", filepath.Join(keys, "ledger.vkey"))
	if r.code != 1 || !strings.Contains(r.stdout, "2  ledger.rejected  _ledger  ledger/rejected/4  payload.reason  email\n") || !strings.Contains(r.stdout, "scanned     4 records") || !strings.Contains(r.stdout, ": 2 events, 1 gap (the writer's), 1 rejected (the writer's)\n") {
		t.Errorf("scan of a store with a gap and a rejection: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	noValue(t, r.stdout+r.stderr, "ops.rejected.canary@example.org")
}

// scan draws its progress on stderr when stderr is a terminal (here a
// pseudo-terminal made by script(1)), and nothing of the kind on a pipe.
func TestScanProgressOnATerminal(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	store := filepath.Join(dir, "store")
	mustRun(t, eventLines(0, 20000), nil, "append", "--store", store, "--key", filepath.Join(keys, "ledger.key"))
	typescript := filepath.Join(dir, "typescript")
	cmd := exec.Command("script", "-q", "-e", "-c", fmt.Sprintf("%s scan --store %s > /dev/null", binary, store), typescript)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("script(1) running scan: %v\n%s", err, out)
	}
	screen, _ := os.ReadFile(typescript)
	if !strings.Contains(string(screen), "scanning") || !strings.Contains(string(screen), "/20000") {
		t.Errorf("no progress bar on the terminal:\n%q", screen)
	}
	if r := mustRun(t, nil, nil, "scan", "--store", store); strings.Contains(r.stderr, "scanning") || !strings.Contains(r.stdout, "scanned     20000 records") {
		t.Errorf("scan to a pipe drew a progress bar, or no summary:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
}
