package pgproxy_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// detectOnlyPolicy masks by detector alone: no column is named, so the
// detectors are all that stands between a result and a card number.
const detectOnlyPolicy = `version: 1
mask:
  - id: cards
    detect: [credit_card]
    method: redact
`

// TestDetectorsJudgeWhatFloatsAndUUIDsDenote: a card number cast to a
// float, a numeric with its digits shifted, or a UUID (its digits as hex
// groups, its bytes as text, its number in hex) is judged by what it
// denotes and withheld as NULL, over psql's text format and pgx's binary
// one, against a real PostgreSQL; a float too precise for its type to
// keep is withheld; ordinary floats and UUIDs pass.
func TestDetectorsJudgeWhatFloatsAndUUIDsDenote(t *testing.T) {
	f := startWithPolicyText(t, detectOnlyPolicy)
	if _, err := f.direct(t).Exec(t.Context(), `CREATE TABLE pans (digits text); INSERT INTO pans VALUES ('4111111111111111')`); err != nil {
		t.Fatal(err)
	}
	withheld := []string{
		"SELECT digits::float8 FROM pans",
		"SELECT digits::float8 / 1000 FROM pans",
		"SELECT digits::float8 / 1e20 FROM pans",
		"SELECT digits::float8 * 10 FROM pans",
		"SELECT digits::float4 FROM pans",
		"SELECT digits::numeric FROM pans",
		"SELECT digits::numeric / 1000 FROM pans",
		"SELECT -digits::numeric / 100000000 FROM pans",
		"SELECT digits::numeric::money FROM pans",
		"SELECT lpad(digits, 32, '0')::uuid FROM pans",
		"SELECT rpad(digits, 32, '0')::uuid FROM pans",
		"SELECT encode(convert_to(digits, 'UTF8'), 'hex')::uuid FROM pans",
		"SELECT lpad(to_hex(digits::bigint), 32, '0')::uuid FROM pans",
		"SELECT ARRAY[digits::float8] FROM pans",
		"SELECT ARRAY[lpad(digits, 32, '0')::uuid] FROM pans",
	}
	for _, q := range withheld {
		out, err := psql(t, f.url("alice", "alice-secret"), q)
		if err != nil {
			t.Fatalf("%q: %v\n%s", q, err, out)
		}
		if strings.TrimSpace(out) != "" {
			t.Errorf("%q (text format) returned %q, want NULL", q, out)
		}
		for _, v := range pgxRaw(t, f, q) {
			if v != nil {
				t.Errorf("%q (pgx) returned %x, want NULL", q, v)
			}
		}
	}
	// A client that lowers extra_float_digits gets the card rounded: 12
	// digits of a 13-digit card, the 13th restored by its check digit.
	for _, q := range [][]string{
		{"SET extra_float_digits = 0", "SELECT digits::float8 FROM pans"},
		{"SET extra_float_digits = -3", "SELECT '4222222222222'::float8"},
		{"SET extra_float_digits = 0", "SELECT '4222222222222'::float8 / 1000"},
	} {
		out, err := psql(t, f.url("alice", "alice-secret"), q...)
		if err != nil {
			t.Fatalf("%q: %v\n%s", q, err, out)
		}
		if strings.TrimSpace(out) != "SET" {
			t.Errorf("%q returned %q, want NULL", q, out)
		}
	}
	passed := map[string]string{
		"SELECT 12345678.5::float8":                           "12345678.5",
		"SELECT 0.25::float8, 1e300::float8, 'NaN'::float8":   "0.25|1e+300|NaN",
		"SELECT 3.5::float4":                                  "3.5",
		"SELECT '7d444840-9dc0-11d1-b245-5ffdce74fad2'::uuid": "7d444840-9dc0-11d1-b245-5ffdce74fad2",
		"SELECT '00000000-0000-0000-0000-000000000042'::uuid": "00000000-0000-0000-0000-000000000042",
		"SELECT 1234.5::numeric":                              "1234.5",
	}
	for q, want := range passed {
		out, err := psql(t, f.url("alice", "alice-secret"), q)
		if err != nil || strings.TrimSpace(out) != want {
			t.Errorf("%q returned %q (%v), want %q", q, out, err, want)
		}
		for _, v := range pgxRaw(t, f, q) {
			if v == nil {
				t.Errorf("%q (pgx) withheld a value no detector names", q)
			}
		}
	}
}

// pgxRaw runs q through the proxy with pgx, which asks for binary results
// where it can, and returns the first row's raw values.
func pgxRaw(t *testing.T, f *fixture, q string) [][]byte {
	t.Helper()
	c, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	rows, err := c.Query(t.Context(), q)
	if err != nil {
		t.Fatalf("%q via pgx: %v", q, err)
	}
	defer rows.Close()
	var out [][]byte
	if rows.Next() {
		for _, v := range rows.RawValues() {
			out = append(out, append([]byte(nil), v...))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%q via pgx: %v", q, err)
	}
	return out
}
