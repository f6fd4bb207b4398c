package main

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/nkeyauth"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/test/natstest"
)

// keys pii makes the bucket and the tenants' keys as the admin principal,
// lists the tenants with their keys' creation times, keeps a key once
// made, and never prints one.
func TestKeysPII(t *testing.T) {
	srv := natstest.StartSecure(t)
	admin := nkeyauth.SeedFile(srv.KeysDir, bus.Admin)
	out, errs, code := runCLI(t, "keys", "pii", "--nats", srv.ClientURL(), "--nkey", admin)
	if code != 0 || !strings.Contains(out, "(no tenant has a search key yet)") {
		t.Fatalf("keys pii on a new bus: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = runCLI(t, "keys", "pii", "--nats", srv.ClientURL(), "--nkey", admin, "--tenant", "acme", "--tenant", "globex")
	if code != 0 || !strings.Contains(out, "\nacme ") || !strings.Contains(out, "\nglobex ") {
		t.Fatalf("keys pii --tenant acme --tenant globex: exit %d\n%s%s", code, out, errs)
	}
	_, js := srv.Connect(t)
	st, err := piikeys.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	key, err := st.TenantKey(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	again, _, _ := runCLI(t, "keys", "pii", "--nats", srv.ClientURL(), "--nkey", admin, "--tenant", "acme")
	if again != out {
		t.Errorf("a second run changed the list:\n%s\nthen\n%s", out, again)
	}
	for _, enc := range []string{base64.StdEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key), hex.EncodeToString(key)} {
		if strings.Contains(out, enc) {
			t.Fatalf("keys pii printed acme's key: %s", out)
		}
	}
	if k2, _ := st.TenantKey(t.Context(), "acme"); string(k2) != string(key) {
		t.Error("acme's key changed")
	}
	// A name that cannot be a tenant is refused before anything is made.
	if _, _, code := runCLI(t, "keys", "pii", "--nats", srv.ClientURL(), "--nkey", admin, "--tenant", "Bad Name"); code == 0 {
		t.Error("a tenant name that is not one was accepted")
	}
}
