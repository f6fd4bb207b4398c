package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/test/natstest"
)

// runCLI runs a command line as main does and returns its exit code.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), cli.Code(err)
}

// TestHelp: help is on stdout and exits 0, for the whole tree and for one
// command, asked either way; the usage line shows the required flags.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{nil, {"--help"}, {"-h"}, {"help"}} {
		out, errs, code := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, "Available Commands:") || !strings.Contains(out, "verify") || errs != "" {
			t.Errorf("auditledger %v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	for _, args := range [][]string{{"help", "verify"}, {"verify", "--help"}, {"help", "proof", "verify"}} {
		out, _, code := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, "--store URL --vkey KEY") && !strings.Contains(out, "--vkey KEY --record FILE") {
			t.Errorf("auditledger %v: exit %d, stdout %q", args, code, out)
		}
		if !strings.Contains(out, "--log-format") {
			t.Errorf("auditledger %v: no --log-format among the flags:\n%s", args, out)
		}
	}
}

// TestUsageErrors: a wrong command line exits 2 and names what is wrong,
// followed by the command's usage line, on stderr alone.
func TestUsageErrors(t *testing.T) {
	for args, want := range map[string]string{
		"verify --stroe x":          "Usage: auditledger verify --store URL --vkey KEY",
		"verify -store x":           "a long flag takes two dashes: --store",
		"verify":                    "verify: --store is required",
		"verify --log-format yaml":  `--log-format "yaml": want json or text`,
		"proof verify --record":     "flag needs an argument",
		"approvals approve a b":     `approvals approve: unexpected argument "b"`,
		"evidence verify a.zip b.z": `evidence verify: unexpected argument "b.z"`,
		// The operator's keys, both, or the explicit unverified mode.
		"evidence verify a.zip":                             "give both of the operator's keys",
		"evidence verify a.zip --vkey k":                    "give both of the operator's keys",
		"evidence verify a.zip --allowed-signers f":         "give both of the operator's keys",
		"evidence verify a.zip --allowed-signers f --vkey=": "give both of the operator's keys",
	} {
		out, errs, code := runCLI(t, strings.Fields(args)...)
		if code != 2 || out != "" || !strings.Contains(errs, want) || !strings.Contains(errs, "Usage: auditledger ") {
			t.Errorf("auditledger %s: exit %d, stdout %q, stderr %q; want exit 2 and %q with the usage line", args, code, out, errs, want)
		}
	}
}

// TestLogFormatFlag: --log-format wins over serve's log.format, for every
// line serve logs.
func TestLogFormatFlag(t *testing.T) {
	dir := t.TempDir()
	if _, errs, code := runCLI(t, "keys", "generate", "--out", dir); code != 0 {
		t.Fatal(errs)
	}
	// The ledger role connects to the bus, logs, and then fails: its
	// store is a file.
	srv := natstest.Start(t)
	notADir := filepath.Join(dir, "file")
	os.WriteFile(notADir, nil, 0o600)
	config := filepath.Join(dir, "serve.yaml")
	os.WriteFile(config, []byte("roles: [ledger]\nlog: {format: text}\nhttp: {listen: 127.0.0.1:0}\nnats: {url: "+srv.ClientURL()+"}\n"+
		"ledger: {store: "+filepath.Join(notADir, "store")+", key: "+filepath.Join(dir, "ledger.key")+"}\n"), 0o600)
	_, errs, code := runCLI(t, "serve", "--config", config, "--log-format", "json")
	if code == 0 {
		t.Fatal("serve with a store under a file exited 0")
	}
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	var logged int
	for _, l := range lines {
		if strings.HasPrefix(l, "auditledger: ") || strings.HasPrefix(l, "Usage: ") {
			continue // the error main prints
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["msg"] == nil {
			t.Errorf("not a JSON log line: %q", l)
		}
		logged++
	}
	if logged == 0 {
		t.Fatalf("serve logged nothing:\n%s", errs)
	}
}

// TestCompletion: the shells' completion scripts are generated.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_auditledger", "zsh": "#compdef auditledger", "fish": "complete -c auditledger"} {
		out, errs, code := runCLI(t, "completion", shell)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion %s: exit %d, %q not in the script (stderr %q)", shell, code, want, errs)
		}
	}
}

// TestManPages: man writes a page per command, in roff.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if _, errs, code := runCLI(t, "man", "--dir", dir); code != 0 {
		t.Fatal(errs)
	}
	b, err := os.ReadFile(filepath.Join(dir, "auditledger-proof-verify.1"))
	if err != nil || !bytes.HasPrefix(b, []byte(".TH ")) || !bytes.Contains(b, []byte(`\-\-vkey`)) {
		t.Fatalf("auditledger-proof-verify.1: %v\n%s", err, b)
	}
}

// TestReferenceUpToDate: docs/cli is what the command tree generates.
func TestReferenceUpToDate(t *testing.T) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "AUDITLEDGER_") {
			t.Setenv(name, "") // flags default to some; the pages show the defaults in the code
		}
	}
	pages, err := markdownPages(newRoot())
	if err != nil {
		t.Fatal(err)
	}
	const fix = "run `go generate ./cmd/auditledger` and commit docs/cli"
	committed, _ := filepath.Glob("../../docs/cli/*.md")
	if len(committed) != len(pages) {
		t.Errorf("docs/cli holds %d pages, the command tree makes %d: %s", len(committed), len(pages), fix)
	}
	for name, want := range pages {
		got, err := os.ReadFile(filepath.Join("../../docs/cli", name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("docs/cli/%s differs from the command tree: %s", name, fix)
		}
	}
}
