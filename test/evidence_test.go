package test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/projections/evidence"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/test/natstest"
)

// The acceptance run of evidence bundles: dev in front of a real
// PostgreSQL (pgbench and psql through the proxy: a masked read, a
// refused statement, a schema change approved by a second person) and an
// HTTP service (a masked response), projected by dev into its own
// PostgreSQL; an auditor asks the API for the ISO/IEC 27001:2022 bundle of
// the tenant, downloads it, and it verifies with `auditledger evidence
// verify` and, unzipped, with ssh-keygen -Y verify and sha256sum -c alone.
func TestDevEvidenceEndToEnd(t *testing.T) {
	pg := targetPostgres(t)
	db := pg.NewDatabase(t)
	pg.InitPgbench(t, db)
	if out, err := exec.Command("psql", "-X", "-v", "ON_ERROR_STOP=1", pg.DSN(db), "-c",
		"CREATE TABLE customers (id int PRIMARY KEY, email text); INSERT INTO customers VALUES (1, 'alice@example.com'), (2, 'bob@example.org')").CombinedOutput(); err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	os.WriteFile(policy, []byte(`version: 1
mask:
  - id: pii-email
    columns: [email]
    method: partial
    info_type: EMAIL_ADDRESS
deny:
  - id: no-drop
    kinds: [DROP]
    reason: tables are not dropped through the gateway
approve:
  - id: ddl
    kinds: [ALTER, CREATE, DROP]
    groups: [dba]
    timeout: 2m
`), 0o644)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"customers":[{"id":1,"email":"alice@example.com"}]}`)
	}))
	defer up.Close()
	httpPolicy := filepath.Join(dir, "http-policy.yaml")
	os.WriteFile(httpPolicy, []byte("version: 1\nmask:\n  - id: pii\n    fields: [\"customers.*.email\"]\n    method: redact\n    info_type: EMAIL_ADDRESS\n"), 0o644)
	started := time.Now().UTC()
	d := startDev(t, []string{"AUDITLEDGER_PROXY_UPSTREAM=" + pg.DSN(db)}, "--policy", policy, "--http-upstream", up.URL, "--http-policy", httpPolicy,
		"--verify-every", "2s")
	host, port, _ := strings.Cut(d.proxy, ":")
	conninfo := func(user string) string {
		return "host=" + host + " port=" + port + " user=" + user + " dbname=" + db + " sslmode=disable"
	}
	agent, alice, bob, carol := d.token(t, "agent"), d.token(t, "alice"), d.token(t, "bob"), d.token(t, "carol")
	psql := func(token, user, sql string) (string, error) {
		cmd := exec.Command("psql", "-X", "-A", "-t", "-c", sql, conninfo(user))
		cmd.Env = append(os.Environ(), "PGPASSWORD="+token)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	cmd := exec.Command("pgbench", "-n", "-c", "2", "-t", "20", "-S", conninfo("agent"))
	cmd.Env = append(os.Environ(), "PGPASSWORD="+agent)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgbench: %v\n%s", err, out)
	}
	if out, err := psql(alice, "alice", "SELECT email FROM customers ORDER BY id"); err != nil || strings.Contains(out, "alice@example.com") {
		t.Fatalf("a masked read: %v\n%s", err, out)
	}
	if out, err := psql(alice, "alice", "DROP TABLE customers"); err == nil || !strings.Contains(out, "no-drop") {
		t.Fatalf("DROP through the proxy: %v\n%s", err, out)
	}
	alter := exec.Command("psql", "-X", "-c", "ALTER TABLE customers ADD COLUMN note text", conninfo("alice"))
	alter.Env = append(os.Environ(), "PGPASSWORD="+alice)
	alterDone := make(chan error, 1)
	var alterOut bytes.Buffer
	alter.Stdout, alter.Stderr = &alterOut, &alterOut
	if err := alter.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { alterDone <- alter.Wait() }()
	bobEnv := []string{"AUDITLEDGER_TOKEN=" + bob}
	pending := onePending(t, d, bobEnv)
	// alice, its requester (and no approver), cannot approve it: the API
	// refuses and records the refusal (command.blocked, no rule), which
	// is not a statement a gateway refused, so not an 8.3 exception.
	if r := run(t, nil, []string{"AUDITLEDGER_TOKEN=" + alice}, "approvals", "approve", pending.ID, "--api", d.api, "--reason", "mine"); r.code == 0 {
		t.Fatalf("alice approved her own request:\n%s%s", r.stdout, r.stderr)
	}
	mustRun(t, nil, bobEnv, "approvals", "approve", pending.ID, "--api", d.api, "--reason", "CHG-7")
	if err := <-alterDone; err != nil {
		t.Fatalf("the approved ALTER: %v\n%s", err, alterOut.String())
	}
	// The README's version-1 rule holds DDL for dba only: bob (not dba)
	// creates a table unheld, which the policy allowed and the control's
	// expectation does not.
	if out, err := psql(bob, "bob", "CREATE TABLE bob_notes (id int)"); err != nil {
		t.Fatalf("bob's CREATE: %v\n%s", err, out)
	}
	req, _ := http.NewRequest("GET", d.http+"/customers", nil)
	req.Header.Set("Authorization", "Bearer "+alice)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(body), "alice@example.com") {
		t.Fatalf("HTTP through the proxy: %d %s", resp.StatusCode, body)
	}

	// Wait until the approval's execution is projected, then ask for the
	// tenant's bundle.
	var tenant string
	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		code, b := apiGet(t, d.api, carol, "/v1/events?type=approval.granted")
		var page struct {
			Events []struct {
				Event struct {
					Tenant string `json:"tenant"`
				} `json:"event"`
			} `json:"events"`
		}
		json.Unmarshal(b, &page)
		if code != 200 || len(page.Events) != 1 {
			return fmt.Errorf("approval.granted not projected yet: %d %s", code, b)
		}
		tenant = page.Events[0].Event.Tenant
		return nil
	})
	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		code, b := apiGet(t, d.api, carol, "/v1/events?type=mask.applied")
		if code != 200 || strings.Count(string(b), `"leaf"`) < 2 {
			return fmt.Errorf("both masks not projected yet: %d %s", code, b)
		}
		code, b = apiGet(t, d.api, carol, "/v1/events?type=command.executed&limit=1000")
		if code != 200 || !strings.Contains(string(b), "CREATE TABLE bob_notes") {
			return fmt.Errorf("bob's CREATE not projected yet: %d", code)
		}
		return nil
	})
	// askBundle asks the API for the tenant's bundle of [from, to) as
	// carol, waits for it and downloads it.
	askBundle := func(from, to time.Time) []byte {
		t.Helper()
		return requestBundle(t, d.api, carol, tenant, from, to)
	}
	bundle := askBundle(started.Add(-time.Minute), time.Now().UTC().Add(time.Hour))
	file := filepath.Join(dir, "evidence.zip")
	os.WriteFile(file, bundle, 0o644)

	// The operator's published keys: the log's verifier key and the
	// allowed_signers file dev wrote beside the evidence key.
	signers := filepath.Join(d.data, "keys", "allowed_signers")
	principal := "evidence@dev.auditledger.local/log"
	if b, err := os.ReadFile(signers); err != nil || !strings.HasPrefix(string(b), principal+" ") {
		t.Fatalf("dev's allowed_signers: %v %q", err, b)
	}
	r := mustRun(t, nil, nil, "evidence", "verify", file, "--vkey", d.vkey(), "--allowed-signers", signers, "--allow-unlocked")
	for _, want := range []string{"OK ", "8.11   Data masking                                  effective (1 tested, 0 exceptions)",
		"5.3    Segregation of duties                         effective (1 tested, 0 exceptions)",
		"8.2    Privileged access rights                      exceptions found (2 tested, 1 exceptions)",
		"8.32   Change management                             exceptions found (2 tested, 1 exceptions)",
		// The period runs past the build: no full verification the writer
		// sealed can have covered it yet (5.33's row of no record), and
		// 8.15 has none to test.
		"5.33   Protection of records                         exceptions found (1 tested, 1 exceptions)",
		"8.15   Logging                                       not observed",
		"derived    11 assertion(s), every summary, the OSCAL results and index.html re-derived from the events: the same",
		"tables     29 control table(s) re-derived from the records: the same",
		"verified   ",
		"WARNING: " + evidence.WarnNotVerified,
		"8.16   Monitoring activities                         effective (",
		"WARNING: " + evidence.WarnDevIdentities, "WARNING: " + evidence.WarnNotWriteOnce} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("evidence verify: no %q in\n%s", want, r.stdout)
		}
	}
	// 8.3: alice's DROP, refused by rule no-drop; the API's refusal of
	// her approving her own request is in the bundle, outside 8.3.
	if !slices.ContainsFunc(strings.Split(r.stdout, "\n"), func(l string) bool {
		f := strings.Fields(l)
		return len(f) > 1 && f[0] == "8.3" && strings.HasSuffix(l, "Information access restriction                effective (1 tested, 0 exceptions)")
	}) {
		t.Errorf("evidence verify: 8.3 is not effective over the one DROP:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "  vouched    ") {
		t.Errorf("evidence verify: a table still vouched for by the evidence key alone:\n%s", r.stdout)
	}
	// A period that has ended: a full verification the writer ran after
	// it (every 2 s here) and sealed covers its records, so 5.33 and 8.15
	// are effective, derived from that record as the bundle proves it.
	cut := time.Now().UTC().Truncate(time.Second).Add(time.Second)
	closedFile := filepath.Join(dir, "closed.zip")
	natstest.CheckFor(t, 2*time.Minute, time.Second, func() error {
		b := askBundle(started.Add(-time.Minute), cut)
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		var m evidence.Manifest
		for _, f := range zr.File {
			if f.Name == evidence.ManifestFile {
				rc, _ := f.Open()
				json.NewDecoder(rc).Decode(&m)
				rc.Close()
			}
		}
		for _, c := range m.Controls {
			if c.ID == "5.33" && (c.Assertion == nil || c.Assertion.Result != "effective") {
				return fmt.Errorf("5.33 of the period to %s: %+v (verifications %+v)", cut, c.Assertion, m.Verifications)
			}
		}
		os.WriteFile(closedFile, b, 0o644)
		return nil
	})
	closed := mustRun(t, nil, nil, "evidence", "verify", closedFile, "--vkey", d.vkey(), "--allowed-signers", signers, "--allow-unlocked")
	for _, want := range []string{"OK ", "5.33   Protection of records                         effective (", "8.15   Logging                                       effective ("} {
		if !strings.Contains(closed.stdout, want) {
			t.Errorf("evidence verify of the ended period: no %q in\n%s", want, closed.stdout)
		}
	}
	if strings.Contains(closed.stdout, evidence.WarnNotVerified) || strings.Contains(closed.stdout, "verified   0 ") {
		t.Errorf("evidence verify of the ended period:\n%s", closed.stdout)
	}
	// Without --allow-unlocked, dev's local store is not WORM: refused.
	if r := run(t, nil, nil, "evidence", "verify", file, "--vkey", d.vkey(), "--allowed-signers", signers); r.code != 1 || !strings.Contains(r.stdout, "not locked write-once") {
		t.Errorf("verify without --allow-unlocked: exit %d\n%s", r.code, r.stdout)
	}

	// With stock tools only.
	unzipped := filepath.Join(dir, "bundle")
	zr, err := zip.OpenReader(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		p := filepath.Join(unzipped, filepath.FromSlash(f.Name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		os.WriteFile(p, b, 0o644)
	}
	zr.Close()
	manifest, _ := os.ReadFile(filepath.Join(unzipped, evidence.ManifestFile))
	evs, _ := os.ReadFile(filepath.Join(unzipped, evidence.EventsFile))
	if !slices.ContainsFunc(strings.Split(string(evs), "\n"), func(l string) bool {
		return strings.Contains(l, `"type":"command.blocked"`) && strings.Contains(l, `"source":{"kind":"api"`)
	}) {
		t.Errorf("the bundle holds no refusal the API recorded (alice approving her own request)")
	}
	keygen := exec.Command("ssh-keygen", "-Y", "verify", "-f", signers, "-I", principal, "-n", "auditledger-evidence", "-s", filepath.Join(unzipped, "manifest.json.sig"))
	keygen.Stdin = bytes.NewReader(manifest)
	if out, err := keygen.CombinedOutput(); err != nil || !strings.Contains(string(out), "Good") {
		t.Fatalf("ssh-keygen -Y verify: %v\n%s", err, out)
	}
	sums := exec.Command("sha256sum", "--strict", "-c", "SHA256SUMS")
	sums.Dir = unzipped
	if out, err := sums.CombinedOutput(); err != nil || strings.Contains(string(out), "FAILED") {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	// The context (docs/FORMAT.md §12): the policy file the proxy loaded
	// (version 1, its digest) and the events naming it; the development
	// provider's directory, read over SCIM; the writer's clock.
	readJSON := func(name string, v any) {
		b, err := os.ReadFile(filepath.Join(unzipped, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	policyBytes, _ := os.ReadFile(policy)
	policySum := fmt.Sprintf("%x", sha256.Sum256(policyBytes))
	var pol evidence.Policies
	readJSON(evidence.PoliciesFile, &pol)
	loaded := slices.ContainsFunc(pol.Loaded, func(p evidence.PolicyLoad) bool { return p.Version == 1 && p.SHA256 == policySum })
	named := slices.ContainsFunc(pol.Named, func(n evidence.PolicyNamed) bool {
		return n.Version == 1 && n.SHA256 == policySum && n.Events > 0 && n.LoadedInRange
	})
	if !loaded || !named || pol.Naming == 0 {
		t.Errorf("context/policies.json: %+v, want the policy loaded as version 1 (sha256 %s) and named by the proxy's events", pol, policySum)
	}
	var ids evidence.Identities
	readJSON(evidence.IdentitiesFile, &ids)
	if !slices.ContainsFunc(ids.Snapshots, func(s evidence.IdentitySnapshot) bool { return s.Source == "scim" && s.Users == 4 && s.Parts == 1 }) {
		t.Errorf("context/identities.json: %+v, want the development provider's 4 users read over SCIM", ids)
	}
	var clock evidence.Clock
	readJSON(evidence.ClockFile, &clock)
	if len(clock.Readings) == 0 || clock.Synchronised+clock.Unsynchronised != len(clock.Readings) || clock.Readings[0].Host == "" {
		t.Errorf("context/clock.json: %+v, want the writer's clock status from its start", clock)
	} else {
		t.Logf("the writer's clock: %d readings, %d synchronised, max error %d µs", len(clock.Readings), clock.Synchronised, clock.MaxErrorMicros)
	}
	// bob's CREATE is the exception under 8.32, named by its event,
	// session and actor as recorded; alice's approved ALTER is not.
	changesB, _ := os.ReadFile(filepath.Join(unzipped, "controls", "8.32", "assertion.csv"))
	changes := string(changesB)
	var bobRow string
	for _, l := range strings.Split(changes, "\n") {
		if strings.Contains(l, "CREATE TABLE bob_notes") {
			bobRow = l
		} else if strings.Contains(l, "ALTER TABLE customers") && !strings.HasSuffix(l, ",") {
			t.Errorf("alice's approved ALTER is an exception: %s", l)
		}
	}
	if !strings.HasSuffix(bobRow, ",ran without a second person's approval") || !strings.Contains(bobRow, ",command.executed,") {
		t.Errorf("8.32 does not flag bob's unheld CREATE:\n%s", changes)
	}
	// 8.17 rests on the clock readings: each is a row, an unsynchronised
	// one (this machine's kernel may not be disciplined) an exception.
	clockB, _ := os.ReadFile(filepath.Join(unzipped, "controls", "8.17", "assertion.csv"))
	clockRows := strings.Split(strings.TrimSuffix(string(clockB), "\n"), "\n")[1:]
	want817 := "effective"
	if clock.Unsynchronised > 0 || clock.MaxErrorMicros > 250000 {
		want817 = "exceptions found"
	}
	if len(clockRows) != len(clock.Readings) || !strings.Contains(r.stdout, fmt.Sprintf("8.17   Clock synchronization                         %s (%d tested", want817, len(clock.Readings))) {
		t.Errorf("8.17 does not rest on the %d clock readings (want %s):\n%s\n%s", len(clock.Readings), want817, clockB, r.stdout)
	}
	for i, row := range clockRows {
		if unsynced := !clock.Readings[i].Synchronised; unsynced != strings.HasSuffix(row, ",the clock was not synchronised") {
			t.Errorf("8.17 row %q for reading %+v", row, clock.Readings[i])
		}
	}
	// 5.15 and 5.18 rest on the SCIM listing: every session that started
	// after it is of a listed, active user holding the groups the
	// provider gave them.
	var listedAt uint64
	for _, sn := range ids.Snapshots {
		if sn.Source == "scim" && (listedAt == 0 || sn.Index < listedAt) {
			listedAt = sn.Index
		}
	}
	for _, c := range []string{"5.15", "5.18"} {
		b, _ := os.ReadFile(filepath.Join(unzipped, "controls", c, "assertion.csv"))
		rows := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")[1:]
		if len(rows) == 0 {
			t.Errorf("%s tested no session:\n%s", c, b)
		}
		for _, row := range rows {
			idx, _ := strconv.ParseUint(row[:strings.Index(row, ",")], 10, 64)
			if idx > listedAt && !strings.HasSuffix(row, ",") {
				t.Errorf("%s: a session after the SCIM listing (index %d) is an exception: %s", c, listedAt, row)
			}
		}
	}
	htmlB, _ := os.ReadFile(filepath.Join(unzipped, "index.html"))
	html := string(htmlB)
	if i, j := strings.Index(html, "<h2>Exceptions"), strings.Index(html, "<h2>Controls</h2>"); i < 0 || j < i || !strings.Contains(html[i:j], "CREATE TABLE bob_notes") {
		t.Errorf("index.html does not open with bob's CREATE as an exception")
	}

	// A sample of 8.32's population: the same seed, the same items, each
	// with its inclusion proof.
	s1 := mustRun(t, nil, nil, "evidence", "sample", file, "--control", "8.32", "--seed", "42", "--size", "25", "--vkey", d.vkey(), "--allowed-signers", signers, "--allow-unlocked")
	s2 := mustRun(t, nil, nil, "evidence", "sample", file, "--control", "8.32", "--seed", "42", "--size", "25", "--vkey", d.vkey(), "--allowed-signers", signers, "--allow-unlocked")
	var sample evidence.Sample
	if err := json.Unmarshal([]byte(s1.stdout), &sample); err != nil || s1.stdout != s2.stdout || len(sample.Items) != 2 || len(sample.Items[0].Proof) == 0 {
		t.Errorf("evidence sample: %v, %d items, same twice %v\n%s", err, len(sample.Items), s1.stdout == s2.stdout, s1.stdout)
	}

	// The email never reached the bundle (masked before the ledger).
	filepath.Walk(unzipped, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("alice@example.com")) {
				t.Errorf("%s holds the unmasked e-mail", p)
			}
		}
		return nil
	})
}

// requestBundle asks the API at base for tenant's evidence bundle of
// [from, to) with token, waits for it to be built and downloads it.
func requestBundle(t *testing.T, base, token, tenant string, from, to time.Time) []byte {
	t.Helper()
	ask := fmt.Sprintf(`{"tenant":%q,"from":%q,"to":%q}`, tenant, from.Format(time.RFC3339), to.Format(time.RFC3339))
	hreq, _ := http.NewRequest("POST", base+"/v1/evidence", strings.NewReader(ask))
	hreq.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	var st api.EvidenceStatus
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("POST /v1/evidence: %d %+v", resp.StatusCode, st)
	}
	natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		_, b := apiGet(t, base, token, "/v1/evidence/"+st.ID)
		json.Unmarshal(b, &st)
		if st.Status == "failed" {
			t.Fatalf("the build failed: %s", st.Error)
		}
		if st.Status != "ready" {
			return fmt.Errorf("evidence %s", b)
		}
		return nil
	})
	code, bundle := apiGet(t, base, token, st.Download)
	if code != 200 {
		t.Fatalf("download: %d", code)
	}
	return bundle
}
