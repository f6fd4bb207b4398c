package pgproxy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/auditledger/auditledger/events"
)

const attackPolicy = `version: 1
mask:
  - id: emails
    columns: [email]
    method: redact
deny:
  - id: no-drop
    kinds: [DROP, TRUNCATE]
    reason: dropping data needs a change ticket
  - id: delete-needs-where
    kinds: [DELETE, UPDATE]
    require_where: true
    reason: every DELETE and UPDATE names its rows
  - id: no-code
    kinds: [DO, CREATE FUNCTION, CREATE PROCEDURE, CREATE RULE, CREATE TRIGGER, CALL]
    reason: code runs only through reviewed migrations
`

// TestSQLAttacks: tricks that defeat keyword matching, each against a
// real PostgreSQL. For every one, the forbidden effect does not happen,
// the refusal is recorded, and nothing is recorded as executed that did
// not run. Decisions come from PostgreSQL's own parse tree.
func TestSQLAttacks(t *testing.T) {
	f := startWithPolicyText(t, attackPolicy)
	direct := f.direct(t)
	if _, err := direct.Exec(t.Context(), `CREATE TABLE victim (id int); INSERT INTO victim SELECT generate_series(1, 10); CREATE TABLE other (id int)`); err != nil {
		t.Fatal(err)
	}
	intact := func() error {
		var n int
		if err := direct.QueryRow(t.Context(), "SELECT count(*) FROM victim").Scan(&n); err != nil {
			return fmt.Errorf("victim: %v", err)
		}
		if n != 10 {
			return fmt.Errorf("victim has %d rows, want 10", n)
		}
		var rules, funcs int
		direct.QueryRow(t.Context(), "SELECT count(*) FROM pg_rules WHERE tablename = 'other'").Scan(&rules)
		direct.QueryRow(t.Context(), "SELECT count(*) FROM pg_proc WHERE proname = 'wipe'").Scan(&funcs)
		if rules+funcs > 0 {
			return fmt.Errorf("%d rules, %d functions were created", rules, funcs)
		}
		return nil
	}
	attacks := []string{
		"DROP TABLE victim",
		"drop table victim",
		"/**/DROP TABLE victim",
		"DROP/**/TABLE victim",
		"-- a comment\nDROP TABLE victim",
		"/* nested /* comment */ */ DrOp TaBlE victim",
		"SELECT 1; DROP TABLE victim",
		"BEGIN; DROP TABLE victim; COMMIT",
		"TRUNCATE victim",
		"DELETE FROM victim",
		"DELETE FROM victim WHERE true",
		"DELETE FROM victim WHERE 1 = 1",
		"DELETE FROM victim WHERE now() > '2000-01-01'",
		"DELETE FROM victim -- WHERE id = 1",
		"DELETE FROM victim /* WHERE id = 1 */",
		"UPDATE victim SET id = 0",
		"WITH d AS (DELETE FROM victim RETURNING *) SELECT count(*) FROM d",
		"EXPLAIN ANALYZE DELETE FROM victim",
		"PREPARE wipe_all AS DELETE FROM victim",
		"SELECT 1; DELETE FROM victim",
		"DO $$ BEGIN EXECUTE 'DROP TABLE victim'; END $$",
		"CREATE FUNCTION wipe() RETURNS void LANGUAGE sql AS 'DELETE FROM victim'",
		"CREATE OR REPLACE PROCEDURE wipe() LANGUAGE sql AS 'DELETE FROM victim'",
		"CREATE RULE wipe AS ON INSERT TO other DO ALSO DELETE FROM victim",
		"CREATE TABLE copy AS WITH d AS (DELETE FROM victim RETURNING *) SELECT * FROM d",
		"COPY victim TO/**/STDOUT",
		"SELEC id FROM victim; DROP TABLE victim", // unparsable: refused, not guessed at
	}
	for _, sql := range attacks {
		out, err := psql(t, f.url("alice", "alice-secret"), sql)
		if err == nil && !strings.Contains(out, "blocked by policy rule") {
			t.Errorf("%q: not refused:\n%s", sql, out)
		}
		if err := intact(); err != nil {
			t.Fatalf("after %q: %v", sql, err)
		}
	}
	// Through the extended protocol too (pgx sends a parameterised
	// statement with Parse/Bind/Execute).
	if _, err := pgxExec(t, f, "DELETE FROM victim WHERE $1::bool", true); err == nil || intact() != nil {
		t.Errorf("extended DELETE with a constant WHERE: %v, %v", err, intact())
	}
	// What the policy allows still runs.
	for _, sql := range []string{"DELETE FROM victim WHERE id = -1", "UPDATE victim SET id = id WHERE id > 100", "SELECT count(*) FROM victim", "EXPLAIN SELECT * FROM victim"} {
		if out, err := psql(t, f.url("alice", "alice-secret"), sql); err != nil {
			t.Errorf("%q: %v\n%s", sql, err, out)
		}
	}

	blocked := 0
	for _, r := range f.eventsOf(t) {
		switch r.ev.Type {
		case events.CommandBlocked:
			blocked++
		case events.CommandExecuted:
			stmt, _ := r.payload["statement"].(string)
			for _, a := range attacks {
				if stmt == a {
					t.Errorf("a refused statement is recorded as executed: %q", stmt)
				}
			}
		}
	}
	if blocked < len(attacks)+1 {
		t.Errorf("%d refusals recorded, want at least %d", blocked, len(attacks)+1)
	}
}

func pgxExec(t *testing.T, f *fixture, sql string, args ...any) (string, error) {
	t.Helper()
	c, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	tag, err := c.Exec(t.Context(), sql, args...)
	return tag.String(), err
}

const maskAttackPolicy = `version: 1
mask:
  - id: pii
    columns: [email]
    detect: [email, credit_card]
    method: redact
`

// TestMaskingFailsClosed: wrappers and types that carried masked values
// out in clear. A detector now finds a value inside longer text, and
// values of types it cannot look into (bytea, json, xml, arrays, whole
// rows) are withheld as NULL while the policy has detectors — over psql's
// text format and pgx's binary one alike — and no event holds a value.
// What computes with the column the rule names (email) is refused
// outright (builtin-masked-columns-bare); the rest reaches the detectors.
func TestMaskingFailsClosed(t *testing.T) {
	f := startWithPolicyText(t, maskAttackPolicy)
	direct := f.direct(t)
	if _, err := direct.Exec(t.Context(), `CREATE TABLE people (email text, card bigint); INSERT INTO people VALUES ('carol@example.com', 4111111111111111)`); err != nil {
		t.Fatal(err)
	}
	secrets := []string{"carol@example.com", "4111111111111111", "carol"}
	queries := []string{
		"SELECT card FROM people",
		"SELECT email::bytea FROM people",
		"SELECT row_to_json(p) FROM people p",
		"SELECT p FROM people p",
		"SELECT ARRAY[email] FROM people",
		"SELECT to_jsonb(email) FROM people",
		"SELECT query_to_xml('SELECT email FROM people', true, true, '')",
		"SELECT email || ' ' FROM people",
		"SELECT 'mail: ' || email || ', thanks' FROM people",
		"SELECT string_agg(email, ',') FROM people",
		"SELECT card::text FROM people",
	}
	for _, q := range queries {
		out, err := psql(t, f.url("alice", "alice-secret"), q)
		if err != nil && strings.Contains(out, "builtin-masked-columns-bare") && !strings.Contains(out, secrets[0]) {
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v\n%s", q, err, out)
		}
		for _, s := range secrets[:2] {
			if strings.Contains(out, s) || strings.Contains(out, `\x6361726f6c`) { // bytea hex of "carol"
				t.Errorf("%q (text format) returned %q", q, out)
			}
		}
		// pgx asks for binary results where it can.
		c, err := pgx.Connect(t.Context(), f.url("alice", "alice-secret"))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := c.Query(t.Context(), q)
		if err != nil {
			t.Fatalf("%q via pgx: %v", q, err)
		}
		for rows.Next() {
			vals := rows.RawValues()
			if q == "SELECT card FROM people" && vals[0] != nil {
				t.Errorf("the card number as a binary bigint came through: %x", vals[0])
			}
			for _, v := range vals {
				if strings.Contains(string(v), "carol") || strings.Contains(fmt.Sprint(v), "4111111111111111") {
					t.Errorf("%q (pgx) returned %q", q, v)
				}
			}
		}
		rows.Close()
		c.Close(t.Context())
	}
	for _, r := range f.eventsOf(t) {
		raw := fmt.Sprint(r.payload)
		if r.ev.Type != events.CommandExecuted && strings.Contains(raw, "carol@example.com") {
			t.Errorf("%s event holds the address: %s", r.ev.Type, raw)
		}
	}
}

// TestPipelineMasksEachResultByItsOwnShape: in a pipeline (as libpq and
// pgx send it: every statement before the first answer) each result is
// masked by the columns its own Describe reported, not by the previous
// statement's.
func TestPipelineMasksEachResultByItsOwnShape(t *testing.T) {
	f := startWithPolicy(t)
	pc, err := pgconn.Connect(t.Context(), f.url("alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(t.Context())
	pl := pc.StartPipeline(t.Context())
	pl.SendQueryParams("SELECT 1::int AS n", nil, nil, nil, nil)
	pl.SendQueryParams("SELECT email FROM customers ORDER BY id", nil, nil, nil, nil)
	pl.SendQueryParams("SELECT note, email FROM customers ORDER BY id", nil, nil, nil, nil)
	if err := pl.Sync(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		r, err := pl.GetResults()
		if err != nil {
			t.Fatal(err)
		}
		if r == nil {
			break
		}
		if rr, ok := r.(*pgconn.ResultReader); ok {
			res := rr.Read()
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			for _, row := range res.Rows {
				for _, v := range row {
					got = append(got, string(v))
				}
			}
		}
		if _, ok := r.(*pgconn.PipelineSync); ok {
			break
		}
	}
	pl.Close()
	for _, v := range got {
		for _, s := range secrets {
			if strings.Contains(v, s) {
				t.Errorf("pipelined result holds %q: %q", s, got)
			}
		}
	}
	if len(got) != 1+2+4 {
		t.Errorf("pipelined results: %q", got)
	}
}

// TestPgxQueryModes: every pgx query mode works through the proxy with a
// masking policy, and each gets masked values.
func TestPgxQueryModes(t *testing.T) {
	f := startWithPolicy(t)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg, err := pgx.ParseConfig(f.url("alice", "alice-secret"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = mode
			c, err := pgx.ConnectConfig(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(t.Context())
			for range 2 { // twice: the second run uses what the first cached
				var email string
				var age int
				if err := c.QueryRow(t.Context(), "SELECT email, age FROM customers WHERE id = $1", 1).Scan(&email, &age); err != nil {
					t.Fatal(err)
				}
				if email == "alice@example.com" || age != 31 {
					t.Fatalf("email %q, age %d: want the email masked and the age intact", email, age)
				}
			}
		})
	}
}

// TestMaskedColumnsBare: with masked_columns_bare, a result may hold a
// masked column only as it is — not computed into something no detector
// recognises — as far as the parser can see.
func TestMaskedColumnsBare(t *testing.T) {
	f := startWithPolicyText(t, "version: 1\nmasked_columns_bare: true\nmask:\n  - id: pii\n    columns: [email]\n    method: redact\n")
	for _, q := range []string{
		"SELECT reverse(email) FROM customers",
		"SELECT encode(email::bytea, 'base64') FROM customers",
		"SELECT substring(c.email, 1, 5) FROM customers c",
		"SELECT upper(email) || '' FROM customers",
		"SELECT 1; SELECT md5(email) FROM customers",
		"WITH x AS (SELECT email FROM customers) SELECT reverse(email) FROM x",
	} {
		out, err := psql(t, f.url("alice", "alice-secret"), q)
		if err == nil || !strings.Contains(out, "builtin-masked-columns-bare") || strings.Contains(out, "moc.elpmaxe") {
			t.Errorf("%q: %v\n%s", q, err, out)
		}
	}
	for _, q := range []string{"SELECT email FROM customers", "SELECT id, note FROM customers", "SELECT * FROM customers", "SELECT count(*) FROM customers"} {
		if out, err := psql(t, f.url("alice", "alice-secret"), q); err != nil || strings.Contains(out, "alice@example.com") {
			t.Errorf("%q: %v\n%s", q, err, out)
		}
	}
}

// TestMaskedColumnRenamed: a column masked by name stays masked when the
// query renames it, directly or through a subquery: the rule follows the
// table column PostgreSQL reports behind each result column.
func TestMaskedColumnRenamed(t *testing.T) {
	f := startWithPolicyText(t, "version: 1\nmask:\n  - id: pii\n    columns: [email]\n    method: redact\n")
	for _, q := range []string{
		"SELECT email AS e FROM customers",
		`SELECT email AS "Contact" FROM customers`,
		"SELECT x FROM (SELECT email AS x FROM customers) s",
		"SELECT c.email AS note FROM customers c",
	} {
		out, err := psql(t, f.url("alice", "alice-secret"), q)
		if err != nil || strings.Contains(out, "alice@example.com") || !strings.Contains(out, "[REDACTED]") {
			t.Errorf("%q: %v\n%s", q, err, out)
		}
	}
}
