package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/file"
)

// TestCommandLineMistakes: a misspelt command, subcommand or flag is
// answered with the nearest right one, not with the whole usage; a flag
// value that starts with a dash is still a value.
func TestCommandLineMistakes(t *testing.T) {
	for args, want := range map[string]string{
		"verfy":                             `unknown command "verfy": did you mean "verify"?`,
		"nosuch":                            `unknown command "nosuch"; see`, // no guess four edits away
		"proof inclusoin":                   `unknown command "proof inclusoin": did you mean "proof inclusion"?`,
		"bench":                             `"bench" needs a subcommand: bus, evidence, forward, ingest, kube, ledger, proxy`,
		"verify --stroe x":                  "verify: unknown flag --stroe: did you mean --store?",
		"serve --confg x.yaml":              "serve: unknown flag --confg: did you mean --config?",
		"checkpoint --store /nonexistent x": `checkpoint: unexpected argument "x"`,
		// One-letter flags keep their single dash: -v is verify's, and
		// the missing --store is what is wrong.
		"verify -v":      "verify: --store is required",
		"verify -v=true": "verify: --store is required",
	} {
		err := run(context.Background(), strings.Fields(args), nil, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("auditledger %s: %v, want %q", args, err, want)
		}
	}
	// "--reason" takes "-x" as its value: no unknown flag -x.
	err := run(context.Background(), []string{"approvals", "deny", "--reason", "-x", "--api", "http://127.0.0.1:1", "apr-1"}, nil, io.Discard, io.Discard)
	if err != nil && strings.Contains(err.Error(), "unknown flag") {
		t.Errorf("a value starting with a dash taken for a flag: %v", err)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, nil, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "auditledger ") || !strings.Contains(out.String(), "go1.") {
			t.Errorf("auditledger %v: %v, %q", args, err, out.String())
		}
	}
}

// TestLogReadsAStore: log prints what append sealed, from the store
// alone: every record in the table, a type filter, and JSON lines whose
// leaf hashes are the records' own.
// keysAndSample makes a directory with a key pair in k/ (keys generate)
// and returns it with the sample events of ledger/testdata.
func keysAndSample(t *testing.T) (dir string, sample []byte) {
	t.Helper()
	dir = t.TempDir()
	if err := run(context.Background(), []string{"keys", "generate", "--out", dir + "/k"}, nil, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	sample, err := os.ReadFile("../../ledger/testdata/sample.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return dir, sample
}

func TestLogReadsAStore(t *testing.T) {
	dir, sample := keysAndSample(t)
	ctx := context.Background()
	if err := run(ctx, []string{"append", "--store", dir + "/s", "--key", dir + "/k/ledger.key"}, bytes.NewReader(sample), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := run(ctx, []string{"log", "--store", dir + "/s"}, nil, &table, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != 13 || !strings.HasPrefix(lines[0], "INDEX") || !strings.Contains(table.String(), "SELECT id, email FROM customers WHERE id = $1") {
		t.Fatalf("log table (%d lines):\n%s", len(lines), table.String())
	}
	var js bytes.Buffer
	if err := run(ctx, []string{"log", "--store", dir + "/s", "--json", "--type", "command.executed", "--from", "2"}, nil, &js, io.Discard); err != nil {
		t.Fatal(err)
	}
	st, _ := file.Open(dir + "/s")
	leaves := map[uint64]string{}
	ledger.ReadRecords(ctx, st, 0, func(i uint64, rec []byte) error { leaves[i] = ledger.LeafHash(rec).Base64(); return nil })
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(js.String()), "\n") {
		var r struct {
			Index uint64
			Leaf  string
			Event struct{ Type string }
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Event.Type != "command.executed" || r.Index < 2 || r.Leaf != leaves[r.Index] {
			t.Fatalf("log --json line %q: %v", l, err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("log --json --type command.executed printed nothing")
	}
}
