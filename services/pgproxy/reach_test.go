package pgproxy_test

import (
	"strings"
	"testing"

	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
)

// TestOtherWaysToAMaskedColumn, against a real PostgreSQL through psql:
// values written into or compared with a masked column other than by
// its name — through a VALUES list or a function's rows joined to it, a
// field of a whole row, an INSERT or MERGE without a
// column list, MERGE UPDATE SET, a column default, EXECUTE of a
// prepared statement, a value in double quotes — are recorded as the
// placeholder; a masked column
// given to an advisory lock or lowrite, which other sessions can read
// back, is refused.
func TestOtherWaysToAMaskedColumn(t *testing.T) {
	f := startCards(t)
	url := f.url("alice", "alice-secret")
	const (
		n1, n2, n3 = "Perpetua Hollingsworth", "Evander Castellanos", "Rosalind Achterberg"
		n4, n5, n6 = "Cornelius Vandermeer", "Leocadia Brightwater", "Octavian Pemberton"
		n7, n8, n9 = "Wilhelmina Strathearn", "Barnaby Ottoline", "Gwendolyn Pryce-Harrow"
	)
	for _, q := range []string{
		"SELECT count(*) FROM cards c WHERE (c).name = '" + n1 + "'",
		"INSERT INTO cards VALUES (5, '4000', 'x', '" + n2 + "', 'n')",
		"MERGE INTO cards c USING (SELECT 5 AS id) s ON c.id = s.id WHEN MATCHED THEN UPDATE SET name = '" + n3 + "'",
		"MERGE INTO cards c USING (SELECT 6 AS id) s ON c.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (6, '4000', 'y', '" + n4 + "', 'n')",
		"ALTER TABLE cards ALTER COLUMN name SET DEFAULT '" + n5 + "'",
		"SELECT count(*) FROM cards c, unnest(ARRAY['" + n8 + "']) u(n) WHERE c.name = u.n",
		"SELECT count(*) FROM cards c JOIN (VALUES ('" + n9 + "')) v(x) ON c.name = v.x",
	} {
		if out, err := psql(t, url, q); err != nil {
			t.Errorf("%q: %v\n%s", q, err, out)
		}
	}
	if out, err := psql(t, url, "PREPARE byname(text) AS SELECT count(*) FROM cards WHERE name = $1", "EXECUTE byname('"+n6+"')"); err != nil {
		t.Errorf("EXECUTE: %v\n%s", err, out)
	}
	for _, q := range []string{
		"SELECT count(*) FROM cards WHERE pg_advisory_lock(length(name)) IS NOT NULL",
		"SELECT count(*) FROM cards WHERE pg_try_advisory_xact_lock(card::bigint)",
		"SELECT lowrite(lo_open(lo_create(0), 131072), convert_to(email, 'UTF8')) FROM cards",
	} {
		out, err := psql(t, url, q)
		if err == nil || !strings.Contains(out, "builtin-masked-columns-bare") {
			t.Errorf("%q: not refused (%v):\n%s", q, err, out)
		}
	}
	// A value in double quotes is a name to PostgreSQL, which fails; the
	// recording replaces it as the value it was meant to be.
	if out, err := psql(t, url, `SELECT count(*) FROM cards WHERE name = "`+n7+`"`); err == nil || strings.Contains(out, n7) {
		t.Errorf("a quoted name compared with a masked column: %v\n%s", err, out)
	}
	// A number computed from a masked column reaches an error message
	// unquoted.
	for _, q := range []string{
		"SELECT 1 FROM cards WHERE make_date(ascii(name), 13, 1) IS NULL",
		"SELECT 1 FROM cards WHERE make_time(ascii(substr(name, 2, 1)), 0, 0) IS NULL",
		"SELECT 1 FROM cards WHERE setseed(ascii(name)) IS NULL",
		"SELECT 1 FROM cards WHERE convert_from(set_byte(convert_to(name, 'UTF8'), 0, 255), 'UTF8') IS NULL",
	} {
		out, err := psql(t, url, q)
		// Withheld word by word, or whole (the statement refers to a
		// masked column), or refused before it runs (setseed is volatile).
		if err == nil || !strings.Contains(out, "[REDACTED:masked_column]") && !strings.Contains(out, "is withheld") && !strings.Contains(out, "builtin-masked-side-effect") {
			t.Errorf("%q: want an error with the numbers withheld (%v):\n%s", q, err, out)
		}
		for _, code := range []string{"90", "122", "0x5a", "0x65"} { // Z, z, e of Zelda
			if strings.Contains(out, code) {
				t.Errorf("%q: the error holds %s:\n%s", q, code, out)
			}
		}
	}
	var held int
	if err := f.direct(t).QueryRow(t.Context(), "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").Scan(&held); err != nil || held != 0 {
		t.Errorf("advisory locks held: %d (%v)", held, err)
	}
	f.checkPairs(t)
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, f.js), n1, n2, n3, n4, n5, n6, n7, n8, n9)
}
