package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestMatchValueFromStdin: --match-value - reads one line of stdin, its
// line feed dropped, and refuses an empty or many-line stdin without
// quoting what it read. (test/keyed_search_test.go searches with it
// against a running API.)
func TestMatchValueFromStdin(t *testing.T) {
	for stdin, want := range map[string]string{
		"":                                      "stdin holds no value",
		"\n":                                    "stdin holds no value",
		"4111 1111 1111 1111\n4012888888881881": "more than one line",
		strings.Repeat("4", 300) + "\n":         "longer than 256 bytes",
	} {
		err := run(context.Background(), []string{"query", "events", "--api", "http://127.0.0.1:1", "--match-value", "-"}, strings.NewReader(stdin), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "4111") {
			t.Errorf("stdin %.20q: %v, want %q", stdin, err, want)
		}
	}
	for _, stdin := range []string{"4111 1111 1111 1111\n", "4111 1111 1111 1111\r\n", "4111 1111 1111 1111"} {
		v, err := readValue(strings.NewReader(stdin))
		if err != nil || v != "4111 1111 1111 1111" {
			t.Errorf("stdin %q: %q, %v", stdin, v, err)
		}
	}
}
