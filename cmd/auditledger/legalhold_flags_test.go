package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestLegalHoldNamesItsRange: set and release take no default for
// --from (a forgotten flag must not hold from record 0), refuse a --to
// before --from, and say in their help that --to is included.
func TestLegalHoldNamesItsRange(t *testing.T) {
	for _, verb := range []string{"set", "release"} {
		for args, want := range map[string]string{
			"--store file:///nonexistent --to 41 --reason r --operator a":           "--from is required",
			"--store file:///nonexistent --from x --to 41 --reason r --operator a":  `--from "x": want a record index`,
			"--store file:///nonexistent --from 42 --to 41 --reason r --operator a": "--to 41 is before --from 42",
		} {
			err := run(context.Background(), append([]string{"legal-hold", verb}, strings.Fields(args)...), nil, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("legal-hold %s %s: %v, want %q", verb, args, err, want)
			}
		}
		var help strings.Builder
		run(context.Background(), []string{"legal-hold", verb, "-h"}, nil, &help, &help)
		if !strings.Contains(help.String(), "both included") || !strings.Contains(help.String(), "LAST(included)") {
			t.Errorf("legal-hold %s -h does not say --to is included:\n%s", verb, help.String())
		}
	}
}
