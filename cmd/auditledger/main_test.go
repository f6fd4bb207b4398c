package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// TestCommandLineMistakes: a misspelt command, subcommand or flag is
// answered with the nearest right one, not with the whole usage; a flag
// value that starts with a dash is still a value.
func TestCommandLineMistakes(t *testing.T) {
	for args, want := range map[string]string{
		"verfy":                             `unknown command "verfy": did you mean "verify"?`,
		"proof inclusoin":                   `unknown command "proof inclusoin": did you mean "proof inclusion"?`,
		"bench":                             `"bench" needs a subcommand: bus, ingest, ledger, proxy`,
		"verify --stroe x":                  "verify: unknown flag --stroe: did you mean --store?",
		"serve --confg x.yaml":              "serve: unknown flag --confg: did you mean --config?",
		"checkpoint --store /nonexistent x": `checkpoint: unexpected argument "x"`,
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
