package nkeyauth_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/nkeyauth"
)

// The authorization block written for nats-server's configuration file
// grants exactly what the embedded server's users get, as nats-server's
// own parser reads it.
func TestServerConfigMatchesUsers(t *testing.T) {
	dir := t.TempDir()
	pubs, err := nkeyauth.Generate(dir, "pg-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := nkeyauth.Generate(dir)
	if err != nil || !maps.Equal(pubs, again) {
		t.Fatalf("a second Generate changed the keys: %v", err)
	}
	conf := filepath.Join(dir, "nats.conf")
	os.WriteFile(filepath.Join(dir, "nats-auth.conf"), []byte(nkeyauth.ServerConfig(pubs)), 0o644)
	os.WriteFile(conf, []byte("port: -1\ninclude nats-auth.conf\n"), 0o644)
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server rejects the generated configuration: %v", err)
	}
	want := nkeyauth.Users(pubs)
	if n := len(bus.Principals) + len(bus.Forwarders) + 1; len(opts.Nkeys) != n || len(want) != n {
		t.Fatalf("users: %d in the file, %d embedded, want %d (the fixed roles, a forwarder each, one producer)", len(opts.Nkeys), len(want), n)
	}
	// Each forwarder may use its own consumer; the reader is denied it.
	for _, f := range bus.Forwarders {
		u := want[slices.IndexFunc(want, func(u *server.NkeyUser) bool { return u.Nkey == pubs[bus.Forwarder(f)] })]
		if !slices.Contains(u.Permissions.Publish.Allow, "$JS.API.CONSUMER.MSG.NEXT.AUDIT_LEDGER."+bus.ForwarderDurable(f)) {
			t.Errorf("forwarder %s may not pull from its consumer: %+v", f, u.Permissions.Publish)
		}
		r := want[slices.IndexFunc(want, func(u *server.NkeyUser) bool { return u.Nkey == pubs[bus.Reader] })]
		if !slices.Contains(r.Permissions.Publish.Deny, "$JS.API.CONSUMER.*.AUDIT_LEDGER."+bus.ForwarderDurable(f)) {
			t.Errorf("the reader is not denied forwarder %s's consumer: %+v", f, r.Permissions.Publish.Deny)
		}
	}
	if p := want[len(want)-1]; p.Nkey != pubs[bus.Producer("pg-1")] || !slices.Contains(p.Permissions.Publish.Allow, "audit.events.*.*.*.pg-1") {
		t.Fatalf("producer pg-1: %+v", p.Permissions.Publish)
	}
	for i, u := range opts.Nkeys {
		w := want[i]
		if u.Nkey != w.Nkey ||
			!slices.Equal(u.Permissions.Publish.Allow, w.Permissions.Publish.Allow) ||
			!slices.Equal(u.Permissions.Publish.Deny, w.Permissions.Publish.Deny) ||
			!slices.Equal(u.Permissions.Subscribe.Allow, w.Permissions.Subscribe.Allow) {
			t.Errorf("user %d: file %+v %+v, embedded %+v %+v", i, u.Permissions.Publish, u.Permissions.Subscribe, w.Permissions.Publish, w.Permissions.Subscribe)
		}
	}
	for _, r := range append(slices.Clone(bus.Principals), bus.Forwarder("syslog"), bus.Producer("pg-1")) {
		fi, err := os.Stat(nkeyauth.SeedFile(dir, r))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s seed: %v, mode %v; want 0600", r, err, fi.Mode().Perm())
		}
	}
}
