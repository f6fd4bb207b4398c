package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bulk/bulktest"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/file"
	"github.com/auditledger/auditledger/ledger/ledgertest"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/pgtest"
)

// replay and export cast read a session whose output turned bulk from a
// store, and with --open have the API (its key store on the bus) open
// the pieces for an auditor's token: the cast plays the bytes as they
// were, the card number split between two pieces that two requests
// open replaced, and asciinema plays the file. Without --open, or for
// a caller without the role, the pieces stay sealed or fail the command.
func TestCastCommandsOpenBulkPieces(t *testing.T) {
	users := []oidcdev.User{
		{Name: "carol", Secret: "c", Groups: []string{"auditor", "tenant:acme"}},
		{Name: "rita", Secret: "r", Groups: []string{"approver", "tenant:acme"}},
	}
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger", Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	auth, err := identity.NewOIDC(t.Context(), identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenFile := map[string]string{}
	for _, u := range users {
		tok, err := identity.ClientCredentialsToken(t.Context(), idp.Issuer, u.Name, u.Secret)
		if err != nil {
			t.Fatal(err)
		}
		tokenFile[u.Name] = filepath.Join(dir, u.Name+".token")
		os.WriteFile(tokenFile[u.Name], []byte(tok), 0o600)
	}
	_, js := natstest.Start(t).Connect(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	bulktest.EnsureStream(t, js)
	em, err := emitter.New(emitter.Config{JetStream: js, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	broker, err := approvals.New(t.Context(), approvals.Config{JetStream: js, Create: true, Signer: ledgertest.Signer(t, "cli.test/approvals"), Emitter: em, Source: events.Source{Kind: "api", Instance: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := piikeys.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The session, sealed in a store and projected: 20 pieces (more than
	// one request opens), the card number split between the 16th and
	// the 17th, which two requests ask for: the API reads the piece
	// beside each from the store, as the session's events say.
	storeDir := filepath.Join(dir, "store")
	store, err := file.New(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	logSigner := ledgertest.Signer(t, "cli.test/log")
	lg, err := ledger.Open(t.Context(), ledger.Config{Store: store, Signer: logSigner})
	if err != nil {
		t.Fatal(err)
	}
	pg := pgtest.StartT(t)
	db, err := pgxpool.New(t.Context(), pg.DSN(pg.NewDatabase(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := projections.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Auth: auth, Approvals: broker, Emitter: em, DB: db, Tenant: "ops", Keys: keys, Bus: js, BulkStore: store})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s := bulktest.New(t, keys, js, store, "acme", "ssh-7", 100, 30)
	s.Text("stdout", []byte("$ cat build.log\n"))
	var want strings.Builder
	want.WriteString("$ cat build.log\n")
	for i := range 20 {
		piece := fmt.Sprintf("\x1b[32mstep %d\x1b[0m %s\n", i, strings.Repeat("ok ", 1000))
		played := piece
		switch i {
		case 15:
			piece += "card 4111 1111 "
			played += "card [REDACTED:credit_card]"
		case 16:
			piece = "1111 1111 paid\n" + piece
			played = "[REDACTED:credit_card] paid\n" + played
		}
		s.Piece("stdout", []byte(piece), bulktest.InStore)
		want.WriteString(played)
	}
	s.Text("stdout", []byte("$ exit\n"))
	want.WriteString("$ exit\n")
	s.End()
	var entries []ledger.Entry
	for _, e := range s.Events {
		b, _ := json.Marshal(e)
		entries = append(entries, ledger.Entry{Event: b})
	}
	if _, err := lg.Append(t.Context(), entries); err != nil {
		t.Fatal(err)
	}
	for {
		applied, err := projections.Step(t.Context(), projections.Config{DB: db, Store: store, Verifier: logSigner.Verifier()})
		if err != nil {
			t.Fatal(err)
		}
		if !applied {
			break
		}
	}

	cli := func(user string, args ...string) (string, error) {
		var out strings.Builder
		if user != "" {
			args = append(args, "--open", "--api", srv.URL, "--token-file", tokenFile[user])
		}
		err := run(t.Context(), args, nil, &out, io.Discard)
		return out.String(), err
	}
	cast := filepath.Join(dir, "ssh-7.cast")
	if _, err := cli("carol", "export", "cast", "--store", storeDir, "--session", s.ID, "--out", cast); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cast)
	if got := castText(t, string(b)); got != want.String() {
		t.Fatalf("export cast --open plays %d bytes, want %d:\n%q", len(got), want.Len(), got[:min(len(got), 300)])
	}
	played, err := exec.Command("script", "-q", "-e", "-c", "stty raw -echo; asciinema cat "+cast, "/dev/null").Output()
	if err != nil || string(played) != want.String() {
		t.Errorf("asciinema cat: %v; plays %d bytes, want %d", err, len(played), want.Len())
	}
	if out, err := cli("carol", "replay", "--store", storeDir, "--session", s.ID, "--speed", "0"); err != nil || out != want.String() {
		t.Errorf("replay --open: %v; %d bytes, want %d", err, len(out), want.Len())
	}
	if out, err := cli("", "replay", "--store", storeDir, "--session", s.ID, "--speed", "0"); err != nil ||
		out != "$ cat build.log\n"+strings.Repeat("[SEALED]", 20)+"$ exit\n" {
		t.Errorf("replay without --open: %v\n%q", err, out)
	}
	if _, err := cli("rita", "replay", "--store", storeDir, "--session", s.ID, "--speed", "0"); err == nil || !strings.Contains(err.Error(), "403") && !strings.Contains(err.Error(), "role") {
		t.Errorf("replay --open as an approver: %v, want refused", err)
	}
}

// castText is the output of an asciicast v2 file, joined.
func castText(t *testing.T, cast string) string {
	t.Helper()
	var b strings.Builder
	lines := strings.Split(strings.TrimSpace(cast), "\n")
	for _, l := range lines[1:] {
		var f []any
		if err := json.Unmarshal([]byte(l), &f); err != nil || len(f) != 3 {
			t.Fatalf("cast line %q: %v", l, err)
		}
		if f[1] == "o" {
			b.WriteString(f[2].(string))
		}
	}
	return b.String()
}
