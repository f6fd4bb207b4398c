package test

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/projections/evidence"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/test/natstest"
)

// The acceptance run of erasure by key destruction, on dev: a request
// through the HTTP gateway with alice's token is sealed with her e-mail
// encrypted (no byte of it in the store), and the API shows it; `erase`
// destroys her key (gone from the bus's store directory; nothing sealed
// under it opens), the API shows (erased), verify passes and names the
// erased fields, and an evidence bundle built afterwards verifies and
// shows them erased. Erasing bob under legal hold is refused and recorded.
func TestErasureEndToEnd(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") }))
	defer up.Close()
	started := time.Now().UTC()
	d := startDev(t, nil, "--http-upstream", up.URL)
	keysDir := filepath.Join(d.data, "nats-keys")
	admin := []string{"--nats", d.nats, "--nkey", filepath.Join(keysDir, "admin.nk"), "--operator", "ops@test"}
	alice, bob, carol := d.token(t, "alice"), d.token(t, "bob"), d.token(t, "carol")
	const aliceMail = "alice@dev.auditledger.local"
	for _, tok := range []string{alice, bob} {
		req, _ := http.NewRequest("GET", d.http+"/hello", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET through the HTTP gateway: %d", resp.StatusCode)
		}
	}

	// The API opens the sealed e-mail; the event keeps the token.
	type result struct {
		api.EventResult
		Ev struct {
			Tenant string `json:"tenant"`
			Actor  struct {
				Email string `json:"email"`
			} `json:"actor"`
		} `json:"-"`
	}
	aliceEvents := func() []result {
		code, b := apiGet(t, d.api, carol, "/v1/events?actor=alice&type=command.executed")
		if code != 200 {
			t.Fatalf("/v1/events: %d %s", code, b)
		}
		var page struct{ Events []result }
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		for i := range page.Events {
			json.Unmarshal(page.Events[i].Event, &page.Events[i].Ev)
		}
		return page.Events
	}
	var got []result
	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		if got = aliceEvents(); len(got) == 0 {
			return errors.New("alice's request not projected yet")
		}
		return nil
	})
	tenant, token := got[0].Ev.Tenant, got[0].Ev.Actor.Email
	pseudonym, _, ok := piikeys.ParseToken(token)
	if !ok || got[0].ActorEmail != aliceMail {
		t.Fatalf("alice's command.executed: actor.email %q (want a sealed field), the API shows %q (want %s)", token, got[0].ActorEmail, aliceMail)
	}
	// The API's own events carry the caller's e-mail sealed too.
	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		code, b := apiGet(t, d.api, carol, "/v1/events?actor=carol&type=audit.accessed&limit=1")
		var page struct{ Events []api.EventResult }
		json.Unmarshal(b, &page)
		if code != 200 || len(page.Events) == 0 {
			return fmt.Errorf("carol's reads not projected yet: %d %s", code, b)
		}
		var ev struct{ Actor struct{ Email string } }
		json.Unmarshal(page.Events[0].Event, &ev)
		if _, _, ok := piikeys.ParseToken(ev.Actor.Email); !ok || page.Events[0].ActorEmail != "carol@dev.auditledger.local" {
			t.Fatalf("the API's audit.accessed: actor.email %q, shown as %q", ev.Actor.Email, page.Events[0].ActorEmail)
		}
		return nil
	})
	if holds := storeHolds(t, d.store(), []byte("@dev.auditledger.local")); holds != "" {
		t.Fatalf("the sealed segments hold an e-mail in clear: %s", holds)
	}
	r := mustRun(t, nil, []string{"AUDITLEDGER_TOKEN=" + carol, "AUDITLEDGER_API=" + d.api}, "query", "events", "--actor", "alice", "--type", "command.executed")
	if !strings.Contains(r.stdout, "alice <"+aliceMail+">") {
		t.Errorf("query events does not show the e-mail:\n%s", r.stdout)
	}
	// The address finds her sealed events (in any case), and log opens
	// the e-mails it reads from the store through the API, for carol.
	carolEnv := []string{"AUDITLEDGER_TOKEN=" + carol, "AUDITLEDGER_API=" + d.api}
	byEmail := func() string {
		t.Helper()
		return mustRun(t, nil, carolEnv, "query", "events", "--email", strings.ToUpper(aliceMail), "--type", "command.executed").stdout
	}
	if out := byEmail(); strings.Count(out, "alice <"+aliceMail+">") != len(got) {
		t.Errorf("query events --email finds:\n%s\nwant alice's %d commands", out, len(got))
	}
	logged := func(open bool) string {
		t.Helper()
		args := []string{"log", "--store", d.store(), "--type", "command.executed"}
		if open {
			args = append(args, "--open")
		}
		var out string
		natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
			if out = mustRun(t, nil, carolEnv, args...).stdout; !strings.Contains(out, "alice") {
				return fmt.Errorf("alice's command not in a sealed segment yet:\n%s", out)
			}
			return nil
		})
		return out
	}
	if out := logged(false); strings.Contains(out, "@") {
		t.Errorf("log without --open shows an e-mail:\n%s", out)
	}
	if out := logged(true); !strings.Contains(out, "alice <"+aliceMail+">") || !strings.Contains(out, "bob <bob@dev.auditledger.local>") {
		t.Errorf("log --open does not show the e-mails:\n%s", out)
	}
	// tail --open, on the live records, likewise.
	tail := exec.Command(binary, "tail", "--nats", d.nats, "--nkey", filepath.Join(keysDir, "reader.nk"), "--from-index", "0", "--type", "command.executed", "--open")
	tail.Env = append(os.Environ(), carolEnv...)
	var tailOut, tailErr lockedBuffer
	tail.Stdout, tail.Stderr = &tailOut, &tailErr
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if !strings.Contains(tailOut.String(), "alice <"+aliceMail+">") {
			return fmt.Errorf("tail --open shows:\n%s\nstderr:\n%s", tailOut.String(), tailErr.String())
		}
		return nil
	})
	tail.Process.Kill()
	tail.Wait()

	// The key's bytes are in the bus's store before the erasure.
	nc, err := nats.Connect(d.nats, natstest.RoleOptions(t, keysDir, bus.Admin)...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(t.Context(), piikeys.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(t.Context(), "key."+pseudonym)
	if err != nil {
		t.Fatal(err)
	}
	var k struct{ Key []byte }
	if err := json.Unmarshal(entry.Value(), &k); err != nil || len(k.Key) != 32 {
		t.Fatalf("key entry: %v", err)
	}
	natsDir := filepath.Join(d.data, "nats")
	keyText := []byte(base64.StdEncoding.EncodeToString(k.Key)) // the entry is JSON
	if storeHolds(t, natsDir, keyText) == "" {
		t.Fatal("the subject's key is not in the bus's store before erasure (the check would prove nothing)")
	}

	// Erasure.
	r = mustRun(t, nil, nil, append([]string{"erase", "--subject", "alice", "--issuer", d.issuer, "--tenant", tenant, "--reason", "request 42"}, admin...)...)
	if !strings.Contains(r.stdout, "pseudonym  "+pseudonym) {
		t.Errorf("erase:\n%s", r.stdout)
	}
	if where := storeHolds(t, natsDir, keyText) + storeHolds(t, natsDir, k.Key); where != "" {
		t.Fatalf("the erased key's bytes are still in the bus's store: %s", where)
	}
	keys, err := piikeys.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if _, err := keys.Unseal(t.Context(), tenant, "actor.email", e.Ev.Actor.Email); !errors.Is(err, piikeys.ErrErased) {
			t.Errorf("event %d: Unseal after erasure = %v, want ErrErased", e.Index, err)
		}
	}
	if got := aliceEvents(); got[0].ActorEmail != api.ErasedEmail {
		t.Errorf("after erasure the API shows %q, want %s", got[0].ActorEmail, api.ErasedEmail)
	}
	if out := byEmail(); !strings.Contains(out, "(no events match)") {
		t.Errorf("after erasure query events --email still finds:\n%s", out)
	}
	if out := logged(true); !strings.Contains(out, "alice <"+api.ErasedEmail+">") || strings.Contains(out, aliceMail) {
		t.Errorf("after erasure log --open shows:\n%s", out)
	}

	// Legal hold: bob's erasure is refused, and the refusal recorded.
	mustRun(t, nil, nil, append([]string{"subject", "hold", "--subject", "bob", "--issuer", d.issuer, "--tenant", tenant, "--reason", "case 7"}, admin...)...)
	if r := mustRun(t, nil, nil, append([]string{"subject", "status", "--subject", "bob", "--issuer", d.issuer, "--tenant", tenant}, admin...)...); !strings.Contains(r.stdout, "legal hold yes (case 7)") {
		t.Errorf("subject status:\n%s", r.stdout)
	}
	refused := run(t, nil, nil, append([]string{"erase", "--subject", "bob", "--issuer", d.issuer, "--tenant", tenant, "--reason", "request 43"}, admin...)...)
	if refused.code == 0 || !strings.Contains(refused.stderr, "legal hold") || !strings.Contains(refused.stdout, "erasure.refused") {
		t.Fatalf("erase under legal hold: exit %d\n%s\n%s", refused.code, refused.stdout, refused.stderr)
	}

	// Every step is in the log, by pseudonym only.
	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		code, b := apiGet(t, d.api, carol, "/v1/events?type=erasure.requested,erasure.performed,erasure.refused,subject_hold.set&tenant="+tenant)
		if code != 200 || strings.Count(string(b), `"leaf"`) != 4 {
			return fmt.Errorf("erasure events not all projected: %d %s", code, b)
		}
		if strings.Count(string(b), `"`+pseudonym+`"`) < 2 { // requested and performed

			return fmt.Errorf("no event names pseudonym %s: %s", pseudonym, b)
		}
		if strings.Contains(string(b), `"alice"`) || strings.Contains(string(b), `"bob"`) || strings.Contains(string(b), "@dev.auditledger.local") {
			t.Fatalf("an erasure event names the subject: %s", b)
		}
		return nil
	})

	// verify passes and names the erased fields.
	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		v := run(t, nil, nil, "verify", "--store", d.store(), "--vkey", d.vkey())
		if v.code != 0 || !strings.Contains(v.stdout, "erased       pseudonym "+pseudonym) {
			return fmt.Errorf("verify: exit %d\n%s", v.code, v.stdout)
		}
		return nil
	})

	// An evidence bundle built after the erasure verifies and shows them
	// erased, holding no e-mail.
	bundle := requestBundle(t, d.api, carol, tenant, started.Add(-time.Minute), time.Now().UTC().Add(time.Hour))
	file := filepath.Join(t.TempDir(), "evidence.zip")
	os.WriteFile(file, bundle, 0o644)
	r = mustRun(t, nil, nil, "evidence", "verify", file, "--vkey", d.vkey(), "--allowed-signers", filepath.Join(d.data, "keys", "allowed_signers"), "--allow-unlocked")
	if !strings.Contains(r.stdout, "OK ") || !strings.Contains(r.stdout, "erased: no key opens them") {
		t.Errorf("evidence verify:\n%s", r.stdout)
	}
	zr, err := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		t.Fatal(err)
	}
	var m evidence.Manifest
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		for _, user := range []string{"alice", "bob", "carol"} { // dev's users' e-mails
			if bytes.Contains(b, []byte(user+"@dev.auditledger.local")) {
				t.Errorf("bundle file %s holds %s's e-mail", f.Name, user)
			}
		}
		if f.Name == evidence.ManifestFile {
			json.Unmarshal(b, &m)
		}
	}
	erased := 0
	if m.SealedFields != nil {
		for _, e := range m.SealedFields.Erased {
			if e.Pseudonym == pseudonym && e.Field == "actor.email" {
				erased++
			}
		}
	}
	if erased < len(got) {
		t.Errorf("the bundle names %d of alice's %d sealed fields erased: %+v", erased, len(got), m.SealedFields)
	}
}

// storeHolds names the first file under dir that holds b, or "".
func storeHolds(t *testing.T, dir string, b []byte) string {
	t.Helper()
	found := ""
	filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || found != "" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err == nil && bytes.Contains(data, b) {
			found = p
		}
		return nil
	})
	return found
}
