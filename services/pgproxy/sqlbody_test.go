package pgproxy

import (
	"fmt"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Literals inside code — DO and function bodies, EXECUTE strings, a
// query given to query_to_xml — are judged as the code reads them: a
// constant written against a masked column is replaced as at top level,
// and where the code cannot be judged every literal is.
func TestRedactSQLBodies(t *testing.T) {
	pol, err := ParsePolicy("p", []byte("version: 1\nmask:\n  - id: m\n    columns: [email, name]\n    method: redact\n"))
	if err != nil {
		t.Fatal(err)
	}
	const m, u = "[REDACTED:masked_column]", "[REDACTED:unjudged_literal]"
	for _, c := range []struct{ in, want string }{
		{"DO $$ BEGIN PERFORM 1 FROM users WHERE email = 'jane@x.org'; END $$",
			"DO $$ BEGIN PERFORM 1 FROM users WHERE email = '" + m + "'; END $$"},
		{"DO $$ BEGIN PERFORM 1 FROM users WHERE name = 'Zelda' AND note = 'kept'; END $$",
			"DO $$ BEGIN PERFORM 1 FROM users WHERE name = '" + m + "' AND note = 'kept'; END $$"},
		// Through a variable: assigned, declared with a default, SELECT INTO.
		{"DO $$ DECLARE v text := 'Zelda'; w text; BEGIN w := 'Yorick'; SELECT 'Quinn' INTO w; PERFORM 1 FROM users WHERE name IN (v, w); RAISE NOTICE 'kept'; END $$",
			"DO $$ DECLARE v text := '" + m + "'; w text; BEGIN w := '" + m + "'; SELECT '" + m + "' INTO w; PERFORM 1 FROM users WHERE name IN (v, w); RAISE NOTICE 'kept'; END $$"},
		{"DO $$ BEGIN IF (SELECT name FROM users LIMIT 1) = 'Zelda' THEN NULL; END IF; END $$",
			"DO $$ BEGIN IF (SELECT name FROM users LIMIT 1) = '" + m + "' THEN NULL; END IF; END $$"},
		{"DO $$ DECLARE v text; BEGIN SELECT name INTO v FROM users LIMIT 1; CASE v WHEN 'Zelda' THEN NULL; END CASE; END $$",
			"DO $$ DECLARE v text; BEGIN SELECT name INTO v FROM users LIMIT 1; CASE v WHEN '" + m + "' THEN NULL; END CASE; END $$"},
		{"CREATE FUNCTION f(p text DEFAULT 'Zelda') RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM users WHERE name = p'",
			"CREATE FUNCTION f(p text DEFAULT '" + m + "') RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM users WHERE name = p'"},
		{"CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.name = 'Zelda' THEN RETURN NULL; END IF; RETURN NEW; END $$",
			"CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.name = '" + m + "' THEN RETURN NULL; END IF; RETURN NEW; END $$"},
		{"CREATE FUNCTION tb() RETURNS TABLE(n text) LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY EXECUTE 'SELECT name FROM users WHERE email = ''jane@x.org'''; END $$",
			"CREATE FUNCTION tb() RETURNS TABLE(n text) LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY EXECUTE 'SELECT name FROM users WHERE email = ''" + m + "'''; END $$"},
		{"CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.name := 'Zelda'; NEW.note := 'kept'; RETURN NEW; END $$",
			"CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.name := '" + m + "'; NEW.note := 'kept'; RETURN NEW; END $$"},
		{"DO $$ DECLARE c CURSOR (p text) FOR SELECT 1 FROM users WHERE name = p; BEGIN OPEN c('Zelda'); END $$",
			"DO $$ DECLARE c CURSOR (p text) FOR SELECT 1 FROM users WHERE name = p; BEGIN OPEN c('" + m + "'); END $$"},
		// Nested dollar quotes and a quoted EXECUTE string.
		{"DO $a$ BEGIN EXECUTE $b$SELECT 1 FROM users WHERE name = 'Zelda'$b$; EXECUTE 'SELECT 1 FROM users WHERE email = ''jane@x.org'' AND note = ''kept'''; END $a$",
			"DO $a$ BEGIN EXECUTE $b$SELECT 1 FROM users WHERE name = '" + m + "'$b$; EXECUTE 'SELECT 1 FROM users WHERE email = ''" + m + "'' AND note = ''kept'''; END $a$"},
		// EXECUTE … USING binds the value to the masked column.
		{"DO $$ BEGIN EXECUTE 'SELECT 1 FROM users WHERE name = $1' USING 'Zelda'; END $$",
			"DO $$ BEGIN EXECUTE 'SELECT 1 FROM users WHERE name = $1' USING '" + m + "'; END $$"},
		// Built at run time: every literal.
		{"DO $$ BEGIN EXECUTE 'SELECT 1 FROM users WHERE name = ' || quote_literal('Zelda'); END $$",
			"DO $$ BEGIN EXECUTE '" + u + "' || quote_literal('" + u + "'); END $$"},
		// Does not parse: every literal.
		{"DO $$ BEGIN PERFORM 1 FROM users WHERE name = 'Zelda' garbage; END $$",
			"DO $$ BEGIN PERFORM '" + u + "' FROM users WHERE name = '" + u + "' garbage; END $$"},
		// SQL and PL/pgSQL function bodies, quoted or dollar-quoted.
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT count(*)::int FROM users WHERE name = ''Zelda'''",
			"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT count(*)::int FROM users WHERE name = ''" + m + "'''"},
		{"CREATE FUNCTION f(p int) RETURNS int LANGUAGE plpgsql AS $f$ BEGIN RETURN (SELECT count(*) FROM users WHERE email = 'jane@x.org' AND p > 1); END $f$",
			"CREATE FUNCTION f(p int) RETURNS int LANGUAGE plpgsql AS $f$ BEGIN RETURN (SELECT count(*) FROM users WHERE email = '" + m + "' AND p > 1); END $f$"},
		{"CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN UPDATE users SET name = 'Zelda' WHERE id = 1; END $$",
			"CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN UPDATE users SET name = '" + m + "' WHERE id = 1; END $$"},
		// A body in a language the gateway does not read is withheld.
		{"DO LANGUAGE plpython3u $$ plpy.execute(\"SELECT 1 FROM users WHERE name = 'Zelda'\") $$",
			"DO LANGUAGE plpython3u $$" + u + "$$"},
		// SQL given as text.
		{"SELECT query_to_xml('SELECT 1 FROM users WHERE name = ''Zelda''', true, true, '')",
			"SELECT query_to_xml('SELECT 1 FROM users WHERE name = ''" + m + "''', true, true, '')"},
		{"SELECT query_to_xml(format('SELECT 1 FROM users WHERE name = %L', 'Zelda'), true, true, '')",
			"SELECT query_to_xml(format('" + m + "', '" + m + "'), true, true, '')"},
		// E'…' strings are written back escaped as they were read.
		{`DO $$ BEGIN EXECUTE E'SELECT 1 FROM users WHERE name = \'Zelda\' AND note = \'a\\b\''; END $$`,
			`DO $$ BEGIN EXECUTE E'SELECT 1 FROM users WHERE name = ''` + m + `'' AND note = ''a\\b'''; END $$`},
		// Through a row source at top level.
		{"SELECT 1 FROM users u JOIN (VALUES ('Zelda'), ('Yorick')) v(x) ON u.name = v.x WHERE u.id = 3",
			"SELECT 1 FROM users u JOIN (VALUES ('" + m + "'), ('" + m + "')) v(x) ON u.name = v.x WHERE u.id = 3"},
		{"WITH c AS (SELECT 'Zelda' AS n) SELECT 1 FROM users, c WHERE name = c.n",
			"WITH c AS (SELECT '" + m + "' AS n) SELECT 1 FROM users, c WHERE name = c.n"},
		// Not unparsable at top level: every literal.
		{"SELECT 1 FROM users WHERE name = 'Zelda' garbage", "SELECT '" + u + "' FROM users WHERE name = '" + u + "' garbage"},
	} {
		got, red := redactSQL(c.in, pol)
		if got != c.want {
			t.Errorf("redactSQL(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
		for _, v := range []string{"Zelda", "jane@x.org", "Yorick", "Quinn"} {
			if strings.Contains(got, v) {
				t.Errorf("redactSQL(%q) kept %q", c.in, v)
			}
		}
		if got != c.in && len(red) == 0 {
			t.Errorf("redactSQL(%q): no redactions", c.in)
		}
		// The recorded text keeps its SQL shape: what parsed still does.
		if _, err := pg_query.Parse(c.in); err == nil {
			if _, err := pg_query.Parse(got); err != nil {
				t.Errorf("redactSQL(%q) = %q, which does not parse: %v", c.in, got, err)
			}
		}
	}
	// Without column rules, bodies keep their literals, and what the
	// detectors find in them is replaced.
	for _, c := range []struct{ in, want string }{
		{"DO $$ BEGIN EXECUTE 'DROP ' || 'TABLE victim'; END $$", "DO $$ BEGIN EXECUTE 'DROP ' || 'TABLE victim'; END $$"},
		{"DO $$ BEGIN PERFORM concat('4111 1111', ' 1111 1111'); END $$", "DO $$ BEGIN PERFORM concat('[REDACTED:credit_card]', '[REDACTED:credit_card]'); END $$"},
		{"DO $$ BEGIN EXECUTE 'SELECT format(''%s@%s'', ''jane'', ''example.com'')'; END $$",
			"DO $$ BEGIN EXECUTE 'SELECT format(''[REDACTED:email]'', ''[REDACTED:email]'', ''[REDACTED:email]'')'; END $$"},
	} {
		if got, _ := redactSQL(c.in, nil); got != c.want {
			t.Errorf("redactSQL(%q, no policy)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
}

// A bind parameter compared with a masked column is known as such
// whatever the proxy saw before: the analysis of the same statement with
// a constant in its place, which shares its fingerprint, is not taken
// for its own.
func TestMaskedParamsAfterConstant(t *testing.T) {
	pol, err := ParsePolicy("p", []byte("version: 1\nparameters: record\nmask:\n  - id: m\n    columns: [name]\n    method: redact\n"))
	if err != nil {
		t.Fatal(err)
	}
	analyze("SELECT 1 FROM people_fp WHERE name = 'Zelda'")
	if got := maskedParams("SELECT 1 FROM people_fp WHERE name = $1", pol); !got[1] {
		t.Errorf("maskedParams = %v, want $1", got)
	}
	// Linked through a row source.
	if got := maskedParams("SELECT 1 FROM people_fp p, (VALUES ($1::text)) v(x) WHERE p.name = v.x", pol); !got[1] {
		t.Errorf("maskedParams through VALUES = %v, want $1", got)
	}
	out, _ := pol.recordParams("SELECT 1 FROM people_fp WHERE name = $1", [][]byte{[]byte("Zelda")}, nil, nil)
	if out[0] != "[REDACTED:masked_column]" {
		t.Errorf("recorded %v", out)
	}
}

// Whole-row reads and relation renames are refused by what the relation
// holds: a masked column, or columns the catalog cannot tell (a name not
// found, a function's rows); names resolve through aliases, subqueries
// and CTEs. The cache of analyses keeps names apart that a parse tree's
// fingerprint would not (aliases, SELECT-list names).
func TestWholeRowsJudgedByRelation(t *testing.T) {
	base, err := ParsePolicy("p", []byte("version: 1\nmask:\n  - id: m\n    columns: [email]\n    method: redact\n"))
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string][]string{"cards": {"id", "email"}, "plain": {"id", "note"}, "other.plain": {"id", "note"}, "public.cards": {"id", "email"}}
	pol := base.withRelations(func(r relRef) ([]string, error) {
		if cols, ok := tables[r.String()]; ok {
			return cols, nil
		}
		return nil, fmt.Errorf("no relation %s", r)
	})
	for sql, refused := range map[string]bool{
		"SELECT row_to_json(p) FROM plain p":                                                  false,
		"SELECT to_jsonb(plain) FROM plain":                                                   false,
		"SELECT p FROM plain p":                                                               false,
		"SELECT row_to_json(p) FROM other.plain p JOIN cards c ON c.id = p.id":                false,
		"SELECT * FROM plain UNION SELECT * FROM other.plain":                                 false,
		"WITH w AS (SELECT * FROM plain) SELECT row_to_json(w) FROM w":                        false,
		"ALTER TABLE plain RENAME TO plain2":                                                  false,
		"SELECT row_to_json(c) FROM cards c":                                                  true,
		"SELECT row_to_json(c) FROM public.cards c":                                           true,
		"SELECT c FROM cards c":                                                               true,
		"SELECT row_to_json(x) FROM (SELECT * FROM cards) x":                                  true,
		"WITH w AS (SELECT * FROM cards) SELECT to_jsonb(w) FROM w":                           true,
		"SELECT row_to_json(j) FROM (plain p JOIN cards c ON true) j":                         true,
		"SELECT * FROM plain UNION SELECT * FROM cards":                                       true,
		"SELECT row_to_json(f) FROM generate_series(1, 2) f":                                  true,
		"SELECT row_to_json(n) FROM nowhere n":                                                true,
		"ALTER TABLE cards RENAME TO c2":                                                      true,
		"ALTER TABLE nowhere RENAME TO c2":                                                    true,
		"SELECT set_config('x', row_to_json(p)::text, false) FROM plain p":                    false,
		"SELECT 1 FROM cards c WHERE set_config('x', row_to_json(c)::text, true) IS NOT NULL": true,
	} {
		if got := pol.Denied(sql) != nil; got != refused {
			t.Errorf("Denied(%q) = %v, want %v", sql, pol.Denied(sql), refused)
		}
	}
	// Without the catalog, every whole row and relation rename is refused.
	for _, sql := range []string{"SELECT row_to_json(p) FROM plain p", "ALTER TABLE plain RENAME TO plain2"} {
		if base.Denied(sql) == nil {
			t.Errorf("without a catalog, %q is not refused", sql)
		}
	}
	// Same shape to a fingerprint, other names: each judged by its own.
	for _, c := range []struct{ first, second string }{
		{"SELECT x FROM plain y", "SELECT x FROM cards x"},
		{"SELECT lower(e) FROM (SELECT note AS e, email AS x FROM cards) s", "SELECT lower(e) FROM (SELECT note AS x, email AS e FROM cards) s"},
	} {
		if r := pol.Denied(c.first); r != nil {
			t.Errorf("Denied(%q) = %s", c.first, r.Reason)
		}
		if pol.Denied(c.second) == nil {
			t.Errorf("%q is not refused after %q", c.second, c.first)
		}
	}
}

// Constants that reach a masked column other than by a comparison with
// its name are recorded by the placeholder too: through a field of a
// whole row or the row itself, an INSERT or MERGE without a column list,
// MERGE's UPDATE SET and INSERT (cols), a column default, the arguments
// of EXECUTE of a prepared statement.
func TestRedactSQLOtherWaysToAMaskedColumn(t *testing.T) {
	pol, err := ParsePolicy("p", []byte("version: 1\nmask:\n  - id: m\n    columns: [name]\n    method: redact\n"))
	if err != nil {
		t.Fatal(err)
	}
	const m = "[REDACTED:masked_column]"
	for _, c := range []struct{ in, want string }{
		{"SELECT 1 FROM people c WHERE (c).name = 'Zelda'", "SELECT 1 FROM people c WHERE (c).name = '" + m + "'"},
		{"SELECT 1 FROM people c WHERE to_jsonb(c)->>'name' = 'Zelda'", "SELECT 1 FROM people c WHERE to_jsonb(c)->>'" + m + "' = '" + m + "'"},
		{"SELECT 1 FROM people c WHERE c::text LIKE '%Zelda%'", "SELECT 1 FROM people c WHERE c::text LIKE '" + m + "'"},
		{"INSERT INTO people VALUES (1, 'Zelda')", "INSERT INTO people VALUES ('" + m + "', '" + m + "')"},
		{"INSERT INTO people (id, note) VALUES (1, 'kept')", "INSERT INTO people (id, note) VALUES (1, 'kept')"},
		{"MERGE INTO people p USING (SELECT 1 AS id) s ON p.id = s.id WHEN MATCHED THEN UPDATE SET name = 'Zelda' WHEN NOT MATCHED THEN INSERT (id, name) VALUES (2, 'Yorick')",
			"MERGE INTO people p USING (SELECT 1 AS id) s ON p.id = s.id WHEN MATCHED THEN UPDATE SET name = '" + m + "' WHEN NOT MATCHED THEN INSERT (id, name) VALUES (2, '" + m + "')"},
		{"MERGE INTO people p USING (SELECT 1 AS id) s ON p.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (2, 'Yorick')",
			"MERGE INTO people p USING (SELECT 1 AS id) s ON p.id = s.id WHEN NOT MATCHED THEN INSERT VALUES ('" + m + "', '" + m + "')"},
		{"ALTER TABLE people ALTER COLUMN name SET DEFAULT 'Zelda'", "ALTER TABLE people ALTER COLUMN name SET DEFAULT '" + m + "'"},
		{"CREATE TABLE p2 (id int DEFAULT 7, name text DEFAULT 'Zelda')", "CREATE TABLE p2 (id int DEFAULT 7, name text DEFAULT '" + m + "')"},
		{`SELECT 1 FROM people WHERE name = "Zelda" OR name = other_name`, `SELECT 1 FROM people WHERE name = "` + m + `" OR name = other_name`},
		{`DO $$ BEGIN PERFORM 1 FROM people WHERE name IN ("Zelda", note); END $$`, `DO $$ BEGIN PERFORM 1 FROM people WHERE name IN ("` + m + `", note); END $$`},
		{"SELECT 1 FROM people p JOIN (SELECT 'Zelda' UNION SELECT 'Yorick') v(x) ON p.name = v.x",
			"SELECT 1 FROM people p JOIN (SELECT '" + m + "' UNION SELECT '" + m + "') v(x) ON p.name = v.x"},
		{"INSERT INTO people (id, name) SELECT 1, 'Zelda' UNION ALL VALUES (2, 'Yorick')",
			"INSERT INTO people (id, name) SELECT 1, '" + m + "' UNION ALL VALUES (2, '" + m + "')"},
		{"SELECT 1 FROM people p, unnest(ARRAY['Zelda', 'Yorick']) u(n) WHERE p.name = u.n",
			"SELECT 1 FROM people p, unnest(ARRAY['" + m + "', '" + m + "']) u(n) WHERE p.name = u.n"},
		{"SELECT 1 FROM people p, unnest(ARRAY['Zelda']) WHERE p.name = unnest",
			"SELECT 1 FROM people p, unnest(ARRAY['" + m + "']) WHERE p.name = unnest"},
		{`SELECT 1 FROM people p, json_to_recordset('[{"n": "Zelda"}]') AS x(n text) WHERE p.name = x.n`,
			`SELECT 1 FROM people p, json_to_recordset('` + m + `') AS x(n text) WHERE p.name = x.n`},
		{"EXECUTE q('Zelda', 3)", "EXECUTE q('" + m + "', '" + m + "')"},
		{"UPDATE people SET note = 'kept' FROM (VALUES ('Zelda')) v(x) WHERE people.name = v.x",
			"UPDATE people SET note = 'kept' FROM (VALUES ('" + m + "')) v(x) WHERE people.name = v.x"},
	} {
		got, _ := redactSQL(c.in, pol)
		if got != c.want {
			t.Errorf("redactSQL(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
}
