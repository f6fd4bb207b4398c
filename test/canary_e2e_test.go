package test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/pgtest"
	"github.com/auditledger/auditledger/test/siemtest"
)

// TestCanaryNothingPersonalSealed is the auditor's check that no card
// number or e-mail address a client sends through a gateway is kept
// anywhere the system writes: values unique to this run go through both
// gateways in every place a client can put them, then every copy is
// searched byte for byte, without the detectors that scrub them (a check
// that used them would share their blind spots).
//
// Each case is a subtest, and below it one subtest per store: a failure
// names the case, the store, the file and offset, the canary and the form
// it was found in (digits only, base64, …), with the bytes around it.
// Each case also carries a marker of no value (its name), which must be
// found in every store the case reaches: a store searched in the wrong
// place fails instead of passing empty.
func TestCanaryNothingPersonalSealed(t *testing.T) {
	run := randomLetters(6)
	cases := canaryCases(run)

	// The target database and the HTTP service behind the gateways.
	pg := targetPostgres(t)
	db := pg.NewDatabase(t)
	if out, err := exec.Command("psql", "-X", "-v", "ON_ERROR_STOP=1", pg.DSN(db), "-c",
		`CREATE TABLE canary_cards (id serial PRIMARY KEY, card text, email text, num bigint, email_b bytea, note text);
		 CREATE TABLE canary_hold (card text, email text, note text)`).CombinedOutput(); err != nil {
		t.Fatalf("psql on the target: %v\n%s", err, out)
	}
	var upMu sync.Mutex
	var upGot []byte // what the service received: the canaries did leave the client
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		upMu.Lock()
		upGot = append(append(append(upGot, r.Method+" "+r.RequestURI+"\n"...), b...), '\n')
		upMu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	const secret = "canary-webhook-secret"
	hook := siemtest.NewWebhook([]byte(secret))
	wsrv := httptest.NewServer(hook)
	defer wsrv.Close()

	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	// record: bind parameters are kept (scrubbed), the most a policy can
	// ask for, so the test sees what the scrubbing leaves.
	os.WriteFile(policy, []byte(`version: 2
parameters: record
approve:
  - id: canary-hold
    pattern: canary_hold
    timeout: 2m
    reason: held so that the statement reaches the approvals bucket
`), 0o644)
	httpPolicy := filepath.Join(dir, "http-policy.yaml")
	os.WriteFile(httpPolicy, []byte(`version: 2
approve:
  - id: canary-hold
    methods: [POST]
    paths: ["/api/hold/**"]
    timeout: 2m
    reason: held so that the request reaches the approvals bucket
`), 0o644)
	started := time.Now().UTC()
	d := startDev(t, []string{"AUDITLEDGER_PROXY_UPSTREAM=" + pg.DSN(db), "AUDITLEDGER_WEBHOOK_SECRET=" + secret},
		"--policy", policy, "--http-upstream", up.URL, "--http-policy", httpPolicy, "--forward-webhook", wsrv.URL)
	if d.proxy == "" || d.http == "" {
		t.Fatalf("dev started without a gateway: postgres proxy %q, http proxy %q", d.proxy, d.http)
	}
	g := &gateways{t: t, d: d, db: db, alice: d.token(t, "alice"), bobEnv: []string{"AUDITLEDGER_TOKEN=" + d.token(t, "bob")}}
	for _, c := range cases {
		c.send(g, c)
	}
	upMu.Lock()
	for _, c := range cases {
		if !strings.HasPrefix(c.name, "http-") {
			continue
		}
		// The e-mail's domain may come percent-encoded, and one case
		// writes its values as JSON escapes: the marker says it arrived.
		local, _, _ := strings.Cut(c.email, "@")
		if !bytes.Contains(upGot, []byte(c.marker)) || c.name != "http-json-unicode-escapes" && (!bytes.Contains(upGot, []byte(c.card)) || !bytes.Contains(upGot, []byte(local))) {
			t.Errorf("case %s: the HTTP service did not receive its card %s and e-mail %s:\n%s", c.name, c.card, c.email, upGot)
		}
	}
	upMu.Unlock()

	// Everything sealed, forwarded and projected.
	nc, err := nats.Connect(d.nats, natstest.RoleOptions(t, filepath.Join(d.data, "nats-keys"), bus.Admin)...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	waitDrained(t, js, 60*time.Second)
	want := map[string][]string{} // store → the markers it must hold
	for _, c := range cases {
		for _, s := range c.reaches() {
			want[s] = append(want[s], c.marker)
		}
	}
	missing := func(blobs []blob, markers []string) []string {
		var out []string
		for _, m := range markers {
			if !anyContains(blobs, []byte(m)) {
				out = append(out, m)
			}
		}
		return out
	}
	var siem []blob
	natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		siem = siem[:0]
		for i, b := range hook.Bodies() {
			siem = append(siem, blob{store: storeSIEM, name: fmt.Sprintf("webhook request %d", i+1), data: b})
		}
		if m := missing(siem, want[storeSIEM]); len(m) > 0 {
			return fmt.Errorf("the webhook has not received %v yet", m)
		}
		return nil
	})
	urlb, err := os.ReadFile(filepath.Join(d.data, "projection.url"))
	if err != nil {
		t.Fatalf("dev's projection database: %v", err)
	}
	projectionURL := strings.TrimSpace(string(urlb))
	var dump []blob
	natstest.CheckFor(t, 60*time.Second, 300*time.Millisecond, func() error {
		dump = []blob{{store: storeProjection, name: "pg_dump", data: pgDump(t, projectionURL)}}
		if m := missing(dump, want[storeProjection]); len(m) > 0 {
			return fmt.Errorf("the projection does not hold %v yet", m)
		}
		return nil
	})
	// From the inside, each value is found by its keyed search digest —
	// typed as a person would, with other spacing and letter case.
	carol := []string{"AUDITLEDGER_TOKEN=" + d.token(t, "carol"), "AUDITLEDGER_API=" + d.api}
	for _, c := range cases {
		for _, v := range []string{group4(c.card, " "), strings.ToUpper(c.email)} {
			if err := canaryMatchValue(t, carol, v); err != nil {
				t.Errorf("case %s: query events --match-value %q: %v; the case's records in the projection:\n%s",
					c.name, v, err, linesWith(dump[0].data, c.marker, 8<<10))
			}
		}
	}
	approvalsKV := approvalsValues(t, js)
	evidence := buildEvidence(t, d, projectionURL, tenantsOf(t, siem), started)
	nc.Close()
	d.stop(t) // NATS and the store are read at rest, as a copy would be
	storeBlobs := storeFiles(t, d.store())
	natsBlobs := natsFiles(t, filepath.Join(d.data, "nats"))

	all := append(append(append(append(append(storeBlobs, natsBlobs...), approvalsKV...), dump...), siem...), evidence...)
	byStore := map[string][]blob{}
	for _, b := range all {
		byStore[b.store] = append(byStore[b.store], b)
	}
	for _, s := range allStores {
		n := 0
		for _, b := range byStore[s] {
			n += len(b.data)
		}
		t.Logf("%-24s %4d objects, %8d bytes searched", s, len(byStore[s]), n)
	}
	// The people who acted: their e-mails are sealed under their keys in
	// every record, and in the approvals bucket's requests.
	t.Run("actor-emails", func(t *testing.T) {
		for _, who := range []string{"alice", "bob", "carol"} {
			email := []byte(who + "@dev.auditledger.local")
			for _, b := range all {
				if bytes.Contains(b.data, email) || bytes.Contains(bytes.ToLower(b.data), email) {
					t.Errorf("%s's e-mail in clear in %s %s", who, b.store, b.name)
				}
			}
		}
	})
	var summary []string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, s := range allStores {
				t.Run(s, func(t *testing.T) {
					blobs := byStore[s]
					if len(blobs) == 0 {
						t.Fatalf("nothing was read from %s: the test searched the wrong place", s)
					}
					if slicesContains(c.reaches(), s) && !anyContains(blobs, []byte(c.marker)) {
						t.Errorf("case marker %q is in none of the %d objects of %s: the case never reached it, or the test searched the wrong place", c.marker, len(blobs), s)
					}
					for _, f := range findCanaries(blobs, c) {
						t.Errorf("%s", f)
						summary = append(summary, fmt.Sprintf("%-24s %-26s %s / %s", s, c.name, f.canary, f.form))
					}
				})
			}
		})
	}
	if len(summary) > 0 {
		sort.Strings(summary)
		summary = dedupe(summary)
		t.Errorf("canaries found in %d (store, case, form):\n%s", len(summary), strings.Join(summary, "\n"))
	}
}

// Stores, as the failures name them.
const (
	storeSegments   = "store"               // the sealed segments, and every other file of the store
	storeEvents     = "nats:AUDIT_EVENTS"   // the JetStream file store of each stream
	storeLedger     = "nats:AUDIT_LEDGER"   //
	storeRejected   = "nats:AUDIT_REJECTED" //
	storeApprovalsF = "nats:KV_AUDIT_APPROVALS"
	storeNATSOther  = "nats:other" // the rest of the JetStream directory (meta, other streams)
	storeApprovalsK = "approvals-kv"
	storeProjection = "projection"
	storeSIEM       = "siem-webhook"
	storeEvidence   = "evidence"
)

var allStores = []string{storeSegments, storeEvents, storeLedger, storeRejected, storeApprovalsF, storeNATSOther,
	storeApprovalsK, storeProjection, storeSIEM, storeEvidence}

// canaryCase is one way a client sends personal values through a
// gateway.
type canaryCase struct {
	name   string
	marker string // a value-free word in what the case sends, found in every store it reaches
	held   bool   // held for approval: it reaches the approvals bucket too
	card   string // digits
	typed  string // the card as the case types it
	email  string
	cards  []canary
	emails []canary
	send   func(g *gateways, c *canaryCase)
}

func (c *canaryCase) reaches() []string {
	s := []string{storeSegments, storeEvents, storeLedger, storeProjection, storeSIEM, storeEvidence}
	if c.held {
		s = append(s, storeApprovalsF, storeApprovalsK)
	}
	return s
}

// canary is one value and the forms it is searched in.
type canary struct {
	label string // what it is, for the report: "card 4111…", "e-mail …"
	forms []form
}

type form struct {
	name string
	b    []byte
}

// newCard is a card number unique to the run: the prefix, 11 random
// digits and the Luhn check digit.
func newCard(prefix string) string {
	d := prefix
	for len(d) < 15 {
		n, _ := rand.Int(rand.Reader, big.NewInt(10))
		d += n.String()
	}
	return d + luhnDigit(d)
}

// luhnDigit is the check digit that makes digits+check pass Luhn.
func luhnDigit(digits string) string {
	sum := 0
	for i := len(digits) - 1; i >= 0; i-- {
		v := int(digits[i] - '0')
		if (len(digits)-1-i)%2 == 0 { // doubled: the check digit will sit to its right
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return fmt.Sprint((10 - sum%10) % 10)
}

func group4(digits, sep string) string {
	var parts []string
	for i := 0; i < len(digits); i += 4 {
		parts = append(parts, digits[i:min(i+4, len(digits))])
	}
	return strings.Join(parts, sep)
}

// newEmail is an address unique to the run, in mixed case as a person
// might type it.
func newEmail() string {
	return "Cn" + randomLetters(10) + "@Canary-" + randomLetters(5) + ".Example.org"
}

func randomLetters(n int) string {
	b := make([]byte, n)
	for i := range b {
		v, _ := rand.Int(rand.Reader, big.NewInt(26))
		b[i] = byte('a' + v.Int64())
	}
	return string(b)
}

// cardCanary lists the forms of a card number: as typed, its digits, with
// spaces or dashes, base64 of each at every byte alignment, JSON-escaped,
// the big-endian int8 a binary bind parameter carries, and unkeyed SHA-256
// digests (hex), which a guess of ~10⁹ values reverses.
func cardCanary(digits, typed string) canary {
	var be [8]byte
	n, _ := new(big.Int).SetString(digits, 10)
	n.FillBytes(be[:]) // big-endian, as PostgreSQL's int8 send
	fs := []form{{"as typed", []byte(typed)}, {"digits only", []byte(digits)},
		{"with spaces", []byte(group4(digits, " "))}, {"with dashes", []byte(group4(digits, "-"))},
		{"JSON-escaped", jsonEscaped(typed)}, {"int8, binary", be[:]}}
	fs = append(fs, base64Forms("as typed", []byte(typed))...)
	fs = append(fs, base64Forms("digits only", []byte(digits))...)
	fs = append(fs, digestForms("digits only", []byte(digits))...)
	fs = append(fs, digestForms("as typed", []byte(typed))...)
	fs = append(fs, digestForms("int8, binary", be[:])...)
	return canary{label: "card " + digits, forms: dedupeForms(fs)}
}

// emailCanary lists the forms of an e-mail address: as typed, lower and
// upper case, JSON-escaped (and with @ as \u0040), percent-encoded,
// base64, and unkeyed SHA-256 digests.
func emailCanary(typed string) canary {
	lower, upper := strings.ToLower(typed), strings.ToUpper(typed)
	fs := []form{{"as typed", []byte(typed)}, {"lowercase", []byte(lower)}, {"uppercase", []byte(upper)},
		{"JSON-escaped", jsonEscaped(typed)}, {`JSON-escaped, @ as \u0040`, []byte(strings.ReplaceAll(typed, "@", `\u0040`))},
		{"percent-encoded", []byte(url.QueryEscape(typed))}, {"percent-encoded, lowercase", []byte(url.QueryEscape(lower))}}
	fs = append(fs, base64Forms("as typed", []byte(typed))...)
	fs = append(fs, base64Forms("lowercase", []byte(lower))...)
	fs = append(fs, digestForms("as typed", []byte(typed))...)
	fs = append(fs, digestForms("lowercase", []byte(lower))...)
	return canary{label: "e-mail " + typed, forms: dedupeForms(fs)}
}

func jsonEscaped(s string) []byte {
	b, _ := json.Marshal(s)
	return b[1 : len(b)-1]
}

// base64Forms: the value encoded inside a longer base64 text starts at
// any of three byte offsets; each gives the characters that depend on the
// value's bytes alone. Standard and URL alphabets.
func base64Forms(of string, v []byte) []form {
	var out []form
	for k := 0; k < 3; k++ {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, k), v...))
		start, end := (8*k+5)/6, (8*k+8*len(v))/6
		s := enc[start:end]
		out = append(out, form{fmt.Sprintf("base64 of %s (offset %d)", of, k), []byte(s)},
			form{fmt.Sprintf("base64url of %s (offset %d)", of, k), []byte(strings.NewReplacer("+", "-", "/", "_").Replace(s))})
	}
	return out
}

func digestForms(of string, v []byte) []form {
	h := sha256.Sum256(v)
	return []form{{"unkeyed SHA-256 hex of " + of, []byte(hex.EncodeToString(h[:]))},
		{"unkeyed SHA-256 base64 of " + of, []byte(base64.StdEncoding.EncodeToString(h[:]))}}
}

// escapedVariants: a form with a backslash or a double quote is written
// differently inside a JSON string (every event, the webhook's bodies),
// and again in pg_dump's COPY text, which doubles backslashes.
func escapedVariants(fs []form) []form {
	var out []form
	for _, f := range fs {
		if !bytes.ContainsAny(f.b, `\"`) {
			continue
		}
		j := jsonEscaped(string(f.b))
		out = append(out, form{f.name + ", JSON-escaped", j},
			form{f.name + ", JSON-escaped, in COPY text", bytes.ReplaceAll(j, []byte(`\`), []byte(`\\`))})
	}
	return out
}

func dedupeForms(fs []form) []form {
	seen := map[string]bool{}
	var out []form
	for _, f := range fs {
		if !seen[string(f.b)] {
			seen[string(f.b)] = true
			out = append(out, f)
		}
	}
	return out
}

// canaryCases are the ways a client sends a value, each with canaries of
// its own so that a find names the case.
func canaryCases(run string) []*canaryCase {
	var cases []*canaryCase
	// add makes a case with a fresh card (typed as typed makes it from the
	// digits) and e-mail address.
	add := func(name, prefix string, held bool, typed func(digits string) string, send func(g *gateways, c *canaryCase)) *canaryCase {
		c := &canaryCase{name: name, marker: "cnry" + run + strings.ReplaceAll(name, "-", ""), held: held, send: send,
			card: newCard(prefix), email: newEmail()}
		c.typed = typed(c.card)
		c.cards = []canary{cardCanary(c.card, c.typed)}
		c.emails = []canary{emailCanary(c.email)}
		cases = append(cases, c)
		return c
	}
	same := func(d string) string { return d }
	spaced := func(d string) string { return group4(d, " ") }
	dashed := func(d string) string { return group4(d, "-") }
	psql := func(sql func(c *canaryCase) string) func(g *gateways, c *canaryCase) {
		return func(g *gateways, c *canaryCase) { g.psql(c, sql(c)) }
	}

	add("pg-where-spaces", "4111", false, spaced, psql(func(c *canaryCase) string {
		return fmt.Sprintf("SELECT count(*) AS %s FROM canary_cards WHERE card = '%s' OR email = '%s'", c.marker, c.typed, c.email)
	}))
	add("pg-where-dashes", "5500", false, dashed, psql(func(c *canaryCase) string {
		return fmt.Sprintf("SELECT count(*) AS %s FROM canary_cards WHERE card = '%s' OR lower(email) = lower('%s')", c.marker, c.typed, strings.ToUpper(c.email))
	}))
	add("pg-numeric-constant", "4111", false, same, psql(func(c *canaryCase) string {
		return fmt.Sprintf("SELECT count(*) AS %s FROM canary_cards WHERE num = %s OR email = '%s'", c.marker, c.card, c.email)
	}))
	add("pg-in-list", "5500", false, same, psql(func(c *canaryCase) string {
		return fmt.Sprintf("SELECT count(*) AS %s FROM canary_cards WHERE card IN ('none', '%s') OR num IN (1, %s) OR email IN ('nobody', '%s')", c.marker, c.card, c.card, c.email)
	}))
	add("pg-dollar-quoted", "4111", false, same, psql(func(c *canaryCase) string {
		return fmt.Sprintf("SELECT $$%s$$ AS %s, $q$%s$q$ AS e", c.card, c.marker, c.email)
	}))
	add("pg-line-comment", "5500", false, same, psql(func(c *canaryCase) string {
		return fmt.Sprintf("SELECT 1 AS a -- %s card %s mail %s\n", c.marker, c.card, c.email)
	}))
	add("pg-block-comment", "4111", false, same, psql(func(c *canaryCase) string {
		return fmt.Sprintf("SELECT 1 /* %s card %s mail %s */ AS a", c.marker, c.card, c.email)
	}))
	c := add("pg-split-concat", "5500", false, same, psql(func(c *canaryCase) string {
		local, domain, _ := strings.Cut(c.email, "@")
		return fmt.Sprintf("SELECT '%s' || '%s' AS %s, '%s' || '@%s' AS e", c.card[:8], c.card[8:], c.marker, local, domain)
	}))
	local, _, _ := strings.Cut(c.email, "@")
	c.cards[0].forms = append(c.cards[0].forms, form{"first half of the || split", []byte(c.card[:8])}, form{"second half of the || split", []byte(c.card[8:])})
	c.emails[0].forms = append(c.emails[0].forms, form{"local part of the || split", []byte(local)})
	add("pg-error-message", "4111", false, same, psql(func(c *canaryCase) string {
		return fmt.Sprintf("SELECT '%s'::int AS %s; SELECT '%s'::int AS %s", c.card, c.marker, c.email, c.marker)
	}))
	add("pg-bind-text", "5500", false, same, func(g *gateways, c *canaryCase) {
		g.pgx(c, "SELECT count(*) AS "+c.marker+" FROM canary_cards WHERE card = $1 OR email = $2", c.card, c.email)
	})
	add("pg-bind-binary", "4111", false, same, func(g *gateways, c *canaryCase) {
		n, _ := new(big.Int).SetString(c.card, 10)
		g.pgx(c, "SELECT count(*) AS "+c.marker+" FROM canary_cards WHERE num = $1 OR email_b = $2", n.Int64(), []byte(c.email))
	})
	add("pg-held", "5500", true, same, psql(func(c *canaryCase) string {
		return fmt.Sprintf("UPDATE canary_hold SET note = '%s' WHERE card = '%s' OR email = '%s'", c.marker, c.card, c.email)
	}))
	add("pg-held-bind", "4111", true, same, func(g *gateways, c *canaryCase) {
		g.pgx(c, "UPDATE canary_hold SET note = '"+c.marker+"' WHERE card = $1 OR email = $2", c.card, c.email)
	})
	add("http-query", "5500", false, same, func(g *gateways, c *canaryCase) {
		q := url.Values{"card": {c.card}, "email": {c.email}}
		g.http(c, "GET", "/api/"+c.marker+"?"+q.Encode(), "", nil)
	})
	add("http-path", "4111", false, same, func(g *gateways, c *canaryCase) {
		g.http(c, "GET", "/api/"+c.marker+"/"+c.card+"/"+url.PathEscape(c.email), "", nil)
	})
	add("http-json-body", "5500", false, same, func(g *gateways, c *canaryCase) {
		body, _ := json.Marshal(map[string]string{"card": c.card, "email": c.email})
		c.bodyDigest(body)
		g.http(c, "POST", "/api/"+c.marker, "application/json", body)
	})
	add("http-held", "4111", true, same, func(g *gateways, c *canaryCase) {
		body, _ := json.Marshal(map[string]string{"email": c.email})
		c.bodyDigest(body)
		g.http(c, "POST", "/api/hold/"+c.marker+"?card="+c.card, "application/json", body)
	})
	add("http-form-body", "5500", false, same, func(g *gateways, c *canaryCase) {
		body := []byte(url.Values{"card": {c.card}, "email": {c.email}}.Encode())
		c.bodyDigest(body)
		g.http(c, "POST", "/api/"+c.marker, "application/x-www-form-urlencoded", body)
	})
	add("http-json-unicode-escapes", "4111", false, same, func(g *gateways, c *canaryCase) {
		// The same JSON value, every character written as \uXXXX.
		esc := func(s string) string {
			var b strings.Builder
			for _, r := range s {
				fmt.Fprintf(&b, "\\u%04x", r)
			}
			return b.String()
		}
		body := []byte(`{"card":"` + esc(c.card) + `","email":"` + esc(c.email) + `"}`)
		c.bodyDigest(body)
		g.http(c, "POST", "/api/"+c.marker, "application/json", body)
	})
	// Values inside longer strings, and joined by a function.
	add("pg-inside-longer-string", "5500", false, same, psql(func(c *canaryCase) string {
		return fmt.Sprintf("SELECT 'order:%s;mail:%s;end' AS %s", c.card, c.email, c.marker)
	}))
	c = add("pg-concat-function", "4111", false, same, psql(func(c *canaryCase) string {
		local, domain, _ := strings.Cut(c.email, "@")
		return fmt.Sprintf("SELECT concat('%s', '%s') AS %s, concat('%s', '@%s') AS e", c.card[:8], c.card[8:], c.marker, local, domain)
	}))
	local, _, _ = strings.Cut(c.email, "@")
	c.cards[0].forms = append(c.cards[0].forms, form{"first half of the concat() split", []byte(c.card[:8])}, form{"second half of the concat() split", []byte(c.card[8:])})
	c.emails[0].forms = append(c.emails[0].forms, form{"local part of the concat() split", []byte(local)})
	// Values PostgreSQL reads out of escapes: E'\x34…' and U&'\0034…',
	// searched for as typed too.
	escaped := func(format, s string) string {
		var b strings.Builder
		for _, r := range s {
			fmt.Fprintf(&b, format, r)
		}
		return b.String()
	}
	c = add("pg-escaped-literals", "4111", false, same, psql(func(c *canaryCase) string {
		return fmt.Sprintf("SELECT E'%s' AS %s, U&'%s' AS e", escaped(`\x%02x`, c.card), c.marker, escaped(`\%04x`, c.email))
	}))
	c.cards[0].forms = append(c.cards[0].forms, form{"as typed, in E'' escapes", []byte(escaped(`\x%02x`, c.card))})
	c.emails[0].forms = append(c.emails[0].forms, form{"as typed, in U&'' escapes", []byte(escaped(`\%04x`, c.email))})
	add("pg-application-name", "5500", false, same, func(g *gateways, c *canaryCase) {
		// The marker only in the name: its finding shows the name recorded.
		g.psqlEnv(c, "SELECT 1", "PGAPPNAME="+c.marker+" "+c.card+" "+c.email)
	})
	for _, c := range cases {
		for _, cns := range [][]canary{c.cards, c.emails} {
			for i := range cns {
				cns[i].forms = dedupeForms(append(cns[i].forms, escapedVariants(cns[i].forms)...))
			}
		}
	}
	return cases
}

// bodyDigest adds the unkeyed SHA-256 of the request body as the client
// sent it to the forms searched: a body digest over the unscrubbed body
// is reversed by guessing the card number in it.
func (c *canaryCase) bodyDigest(body []byte) {
	c.cards[0].forms = append(c.cards[0].forms, digestForms("the request body as sent", body)...)
}

// gateways drives dev's two gateways as alice, approving what is held as
// bob.
type gateways struct {
	t      *testing.T
	d      *devRun
	db     string
	alice  string
	bobEnv []string
}

func (g *gateways) conninfo() string {
	host, port, _ := strings.Cut(g.d.proxy, ":")
	return "host=" + host + " port=" + port + " user=alice dbname=" + g.db + " sslmode=disable"
}

// whileHeld runs do; for a held case it waits for the one pending
// request, checks it is this case's, approves it with the CLI and waits
// for do to finish.
func (g *gateways) whileHeld(c *canaryCase, do func() error) {
	t := g.t
	t.Helper()
	if !c.held {
		if err := do(); err != nil {
			t.Fatalf("case %s: %v", c.name, err)
		}
		return
	}
	done := make(chan error, 1)
	go func() { done <- do() }()
	p := onePending(t, g.d, g.bobEnv)
	if !strings.Contains(p.Statement, c.marker) {
		t.Fatalf("case %s: the pending request is not this case's: %q", c.name, p.Statement)
	}
	mustRun(t, nil, g.bobEnv, "approvals", "approve", p.ID, "--api", g.d.api)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("case %s, after approval: %v", c.name, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("case %s: still held 60s after approval", c.name)
	}
}

func (g *gateways) psql(c *canaryCase, sql string) { g.psqlEnv(c, sql) }

// psqlEnv runs psql with env added to its environment.
func (g *gateways) psqlEnv(c *canaryCase, sql string, env ...string) {
	g.whileHeld(c, func() error {
		cmd := exec.Command("psql", "-X", "-A", "-t", "-c", sql, g.conninfo())
		cmd.Env = append(append(os.Environ(), "PGPASSWORD="+g.alice), env...)
		out, err := cmd.CombinedOutput()
		if c.name == "pg-error-message" { // the error is the point
			if !strings.Contains(string(out), "ERROR") {
				return fmt.Errorf("psql: no error from the server: %v\n%s", err, out)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("psql %q: %v\n%s", sql, err, out)
		}
		return nil
	})
}

// pgx runs sql with bind parameters through the extended protocol: a
// string is sent in text format, an int64 for a bigint and a []byte for
// a bytea in binary format.
func (g *gateways) pgx(c *canaryCase, sql string, args ...any) {
	g.whileHeld(c, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, g.conninfo()+" password="+g.alice)
		if err != nil {
			return fmt.Errorf("pgx connect: %w", err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			return fmt.Errorf("pgx %q: %w", sql, err)
		}
		return nil
	})
}

func (g *gateways) http(c *canaryCase, method, target, contentType string, body []byte) {
	g.whileHeld(c, func() error {
		req, err := http.NewRequest(method, g.d.http+target, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+g.alice)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s %s: %d %s", method, target, resp.StatusCode, b)
		}
		return nil
	})
}

// blob is one object read from a store.
type blob struct {
	store, name string
	data        []byte
}

func anyContains(blobs []blob, s []byte) bool {
	for _, b := range blobs {
		if bytes.Contains(b.data, s) {
			return true
		}
	}
	return false
}

// find is one canary found in one object.
type find struct {
	store, object, canary, form string
	offset                      int
	context                     []byte
}

func (f find) String() string {
	return fmt.Sprintf("%s: %s found in %s at byte %d, form %q, in: …%q…", f.store, f.canary, f.object, f.offset, f.form, f.context)
}

// findCanaries searches every object for every form of the case's
// canaries; each (object, form) is reported once, at its first offset.
func findCanaries(blobs []blob, c *canaryCase) []find {
	var out []find
	for _, cn := range append(append([]canary{}, c.cards...), c.emails...) {
		for _, f := range cn.forms {
			for _, b := range blobs {
				i := bytes.Index(b.data, f.b)
				if i < 0 {
					continue
				}
				lo, hi := max(0, i-60), min(len(b.data), i+len(f.b)+60)
				out = append(out, find{store: b.store, object: b.name, canary: cn.label, form: f.name, offset: i, context: b.data[lo:hi]})
			}
		}
	}
	return out
}

// storeFiles reads every file of the local store; segments are decoded
// as docs/FORMAT.md §4 lays them out, decompressed first when they are
// compressed. A segment in a form this reader does not know fails the
// test: it could not be searched.
func storeFiles(t *testing.T, dir string) []blob {
	t.Helper()
	var out []blob
	segments := 0
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasSuffix(p, ".seg") {
			segments++
			seg, err := decodeSegment(b)
			if err != nil {
				t.Errorf("store: segment %s: %v", rel, err)
			}
			b = seg
		}
		out = append(out, blob{store: storeSegments, name: rel, data: b})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if segments == 0 {
		t.Fatalf("no segment under %s", dir)
	}
	return out
}

// decodeSegment returns a segment's bytes as §4 lays them out: as stored,
// or decompressed (gzip), checked for the header and end markers.
func decodeSegment(b []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return b, fmt.Errorf("gzip: %w", err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			return b, fmt.Errorf("gzip: %w", err)
		}
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return b, errors.New("zstd-compressed: this test has no zstd reader yet, so the segment was not searched")
	}
	if !bytes.HasPrefix(b, []byte("AUDLSEG1")) || !bytes.HasSuffix(b, []byte("AUDLEND1")) {
		return b, fmt.Errorf("not a segment as docs/FORMAT.md §4 describes it (starts %x, ends %x): not searched as one", b[:min(8, len(b))], b[max(0, len(b)-8):])
	}
	return b, nil
}

// natsFiles reads every file of the JetStream store directory, each
// stream's under its own name, and fails the test unless the files of
// every stream the system keeps were among them.
func natsFiles(t *testing.T, dir string) []blob {
	t.Helper()
	out, found := readJetStreamDir(t, dir)
	for _, s := range []string{bus.EventsStream, bus.LedgerStream, bus.RejectStream, "KV_" + bus.ApprovalsBucket} {
		if !found[s] {
			t.Fatalf("no file of stream %s under %s", s, dir)
		}
	}
	return out
}

// readJetStreamDir reads every file under dir. Message blocks that the
// file store compressed (S2, behind a "cmp" header) are decompressed with
// the server's own code: a value S2 wrote partly as a back reference is
// not in the bytes as stored. Both are searched.
func readJetStreamDir(t *testing.T, dir string) ([]blob, map[string]bool) {
	t.Helper()
	var out []blob
	found := map[string]bool{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		store := storeNATSOther
		parts := strings.Split(filepath.ToSlash(rel), "/")
		for i, part := range parts {
			if part == "streams" && i+1 < len(parts) {
				switch s := parts[i+1]; s {
				case bus.EventsStream, bus.LedgerStream, bus.RejectStream, "KV_" + bus.ApprovalsBucket:
					store, found[s] = "nats:"+s, true
				}
				break
			}
		}
		out = append(out, blob{store: store, name: rel, data: b})
		if strings.HasSuffix(p, ".key") {
			t.Errorf("%s: the JetStream store is encrypted; this test cannot search it", rel)
		}
		if !strings.HasSuffix(p, ".blk") {
			return nil
		}
		var ci server.CompressionInfo
		if n, err := ci.UnmarshalMetadata(b); err != nil {
			t.Errorf("%s: compression header: %v", rel, err)
		} else if n > 0 {
			plain, err := ci.Algorithm.Decompress(b[n:])
			if err != nil {
				t.Errorf("%s: decompressing: %v", rel, err)
			}
			out = append(out, blob{store: store, name: rel + " (decompressed)", data: plain})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, found
}

// approvalsValues reads every revision of every key of the approvals
// bucket, deleted ones included, as a client of the bucket sees them.
func approvalsValues(t *testing.T, js jetstream.JetStream) []blob {
	t.Helper()
	kv, err := js.KeyValue(t.Context(), bus.ApprovalsBucket)
	if err != nil {
		t.Fatalf("approvals bucket: %v", err)
	}
	w, err := kv.WatchAll(t.Context(), jetstream.IncludeHistory())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var out []blob
	for e := range w.Updates() {
		if e == nil { // everything there is has been delivered
			break
		}
		out = append(out, blob{store: storeApprovalsK, name: fmt.Sprintf("key %s revision %d (%s)", e.Key(), e.Revision(), e.Operation()),
			data: append([]byte(e.Key()+"\n"), e.Value()...)})
	}
	if len(out) == 0 {
		t.Fatal("the approvals bucket is empty: the held cases did not reach it")
	}
	return out
}

// pgDump dumps the projection database as SQL text, with the server's own
// pg_dump.
func pgDump(t *testing.T, dsn string) []byte {
	t.Helper()
	bin, err := pgtest.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(bin, "pg_dump"), "--no-owner", "--format=plain", "--dbname", dsn)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump of the projection: %v\n%s", err, stderr.String())
	}
	return out
}

// tenantsOf names the tenants of the events the webhook received, other
// than the ledger's and producers' own.
func tenantsOf(t *testing.T, siem []blob) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, b := range siem {
		var batch []struct {
			Event struct {
				Tenant string `json:"tenant"`
			} `json:"event"`
		}
		if err := json.Unmarshal(b.data, &batch); err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		for _, e := range batch {
			if e.Event.Tenant != "" && !strings.HasPrefix(e.Event.Tenant, "_") {
				seen[e.Event.Tenant] = true
			}
		}
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatal("no tenant in what the webhook received")
	}
	return out
}

// buildEvidence builds one bundle per tenant with the CLI, over the whole
// run, and returns every file in them, unpacked.
func buildEvidence(t *testing.T, d *devRun, projectionURL string, tenants []string, started time.Time) []blob {
	t.Helper()
	var out []blob
	for _, tenant := range tenants {
		file := filepath.Join(t.TempDir(), tenant+".zip")
		mustRun(t, nil, []string{"AUDITLEDGER_DATABASE_URL=" + projectionURL}, "evidence", "build", "--tenant", tenant,
			"--from", started.Add(-time.Hour).Format(time.RFC3339), "--to", time.Now().UTC().Add(time.Hour).Format(time.RFC3339),
			"--out", file, "--key", filepath.Join(d.data, "keys", "evidence"), "--vkey", d.vkey(),
			"--nats", d.nats, "--nkey", filepath.Join(d.data, "nats-keys", "admin.nk"))
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, unpack(t, storeEvidence, filepath.Base(file), b)...)
	}
	return out
}

// unpack returns b itself and, for a zip, tar or gzip file, everything in
// it, unpacked in turn; segments inside are decoded as in the store.
func unpack(t *testing.T, store, name string, b []byte) []blob {
	t.Helper()
	out := []blob{{store: store, name: name, data: b}}
	switch {
	case bytes.HasPrefix(b, []byte("PK\x03\x04")):
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatalf("%s/%s: %v", name, f.Name, err)
			}
			fb, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("%s/%s: %v", name, f.Name, err)
			}
			out = append(out, unpack(t, store, name+"/"+f.Name, fb)...)
		}
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, unpack(t, store, name+" (gunzipped)", plain)...)
	case len(b) > 262 && string(b[257:262]) == "ustar":
		tr := tar.NewReader(bytes.NewReader(b))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			fb, _ := io.ReadAll(tr)
			out = append(out, unpack(t, store, name+"/"+h.Name, fb)...)
		}
	case strings.HasSuffix(name, ".seg"):
		if _, err := decodeSegment(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	return out
}

// canaryMatchValue asks `auditledger query events --match-value VALUE`
// (the keyed digests of the values the gateways replaced) as an auditor,
// until the projection answers, and returns the ids of the events that
// recorded the value. env carries the auditor's token and the API.
func canaryMatchValue(t *testing.T, env []string, value string) error {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := run(t, nil, env, "query", "events", "--match-value", value, "--json")
		if r.code != 0 {
			return fmt.Errorf("exit %d %s", r.code, r.stderr)
		}
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var m struct {
				Event struct {
					ID string `json:"id"`
				} `json:"event"`
			}
			if line != "" && json.Unmarshal([]byte(line), &m) == nil && m.Event.ID != "" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("no event found in 60 s")
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// linesWith is the lines of b that contain s, at most max bytes of them.
func linesWith(b []byte, s string, max int) string {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.Contains(l, []byte(s)) && len(out) < max {
			out = append(append(out, l...), '\n')
		}
	}
	return string(out)
}

// TestCanaryReaderDecompressesJetStream: the reader of the JetStream
// store finds a card number in a block the file store compressed, where
// S2 wrote it as two back references to earlier halves, so that it is not
// in the bytes as stored.
func TestCanaryReaderDecompressesJetStream(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	// MaxBytes this small makes 32 kB blocks: the first ones are full,
	// and compressed, when the server stops.
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: bus.EventsStream, Subjects: []string{"canary.>"},
		Storage: jetstream.FileStorage, Compression: jetstream.S2Compression, MaxBytes: 120_000}); err != nil {
		t.Fatal(err)
	}
	card := newCard("4111")
	filler := strings.Repeat("SELECT count(*) FROM canary_cards WHERE card = 'x' ", 20)
	for i := 0; i < 80; i++ {
		msg := fmt.Sprintf("%d %s", i, filler)
		switch i {
		case 1:
			msg += " (" + card[:8] + ") [" + card[8:] + "]"
		case 3:
			msg += " '" + card + "'"
		}
		if _, err := js.Publish(t.Context(), "canary.x", []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	blobs, found := readJetStreamDir(t, srv.StoreDir)
	if !found[bus.EventsStream] {
		t.Fatalf("no file of %s under %s", bus.EventsStream, srv.StoreDir)
	}
	var raw, plain []string
	for _, b := range blobs {
		if !bytes.Contains(b.data, []byte(card)) {
			continue
		}
		if strings.HasSuffix(b.name, " (decompressed)") {
			plain = append(plain, b.name)
		} else {
			raw = append(raw, b.name)
		}
	}
	if len(plain) == 0 || len(raw) > 0 {
		t.Fatalf("the card is in the decompressed blocks %v and, as stored, in %v: want one decompressed block and none as stored", plain, raw)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func dedupe(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
