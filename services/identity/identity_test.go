package identity_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/services/identity"
)

var users = []oidcdev.User{
	{Name: "alice", Secret: "alice-secret", Email: "alice@example.com", Groups: []string{"dba", "approver"}},
	{Name: "ci-bot", Secret: "bot-secret", Groups: []string{"agents"}, Machine: true},
}

func provider(t *testing.T, audience string, lifetime time.Duration) *oidcdev.Server {
	t.Helper()
	s, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: audience, Users: users, TokenLifetime: lifetime})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func token(t *testing.T, issuer, user, secret string) string {
	t.Helper()
	tok, err := identity.ClientCredentialsToken(context.Background(), issuer, user, secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestOIDCTokens(t *testing.T) {
	ctx := context.Background()
	p := provider(t, "auditledger", 0)
	v, err := identity.NewOIDC(ctx, identity.OIDCConfig{Issuer: p.Issuer, Audience: "auditledger", Dev: true})
	if err != nil {
		t.Fatal(err)
	}

	a, err := v.Authenticate(ctx, "", token(t, p.Issuer, "alice", "alice-secret"))
	if err != nil {
		t.Fatal(err)
	}
	want := events.Actor{Issuer: p.Issuer, Subject: "alice", Email: "alice@example.com", Groups: []string{"dba", "approver"}, Kind: events.Human, DevIdentity: true}
	if a.Issuer != want.Issuer || a.Subject != want.Subject || a.Email != want.Email || !slices.Equal(a.Groups, want.Groups) || a.Kind != want.Kind || !a.DevIdentity {
		t.Errorf("alice: got %+v, want %+v", a, want)
	}
	bot, err := v.Authenticate(ctx, "", token(t, p.Issuer, "ci-bot", "bot-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if bot.Kind != events.Machine || bot.Subject != "ci-bot" {
		t.Errorf("ci-bot: got %+v, want a machine with subject ci-bot", bot)
	}
	if identity.Same(a, bot) {
		t.Error("alice and ci-bot are the same actor")
	}

	if _, err := identity.ClientCredentialsToken(ctx, p.Issuer, "alice", "wrong"); err == nil {
		t.Error("a wrong client secret got a token")
	}

	good := token(t, p.Issuer, "alice", "alice-secret")
	other := provider(t, "auditledger", 0) // same audience, different keys and issuer
	otherAud := provider(t, "another-app", 0)
	short := provider(t, "auditledger", time.Second)
	shortTok := token(t, short.Issuer, "alice", "alice-secret")
	vShort, err := identity.NewOIDC(ctx, identity.OIDCConfig{Issuer: short.Issuer, Audience: "auditledger"})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	for _, c := range []struct {
		name, token, want string
		v                 *identity.OIDC
	}{
		{"empty", "", "no credential", v},
		{"garbage", "not-a-jwt", "malformed", v},
		{"forged signature", forged, "verify signature", v},
		{"other issuer", token(t, other.Issuer, "alice", "alice-secret"), "signature", v},
		{"other audience", token(t, otherAud.Issuer, "alice", "alice-secret"), "audience", vFor(t, otherAud.Issuer, "auditledger")},
	} {
		_, err := c.v.Authenticate(ctx, "", c.token)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not say %q", c.name, err, c.want)
		}
		if c.token != "" && strings.Contains(err.Error(), c.token) {
			t.Errorf("%s: the error repeats the token", c.name)
		}
	}
	// Expiry: poll until the one-second token has expired, then expect
	// the verifier to say so.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := vShort.Authenticate(ctx, "", shortTok)
		if err != nil {
			if !strings.Contains(err.Error(), "expired") {
				t.Errorf("expired token: error %q does not say expired", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a one-second token was still accepted after 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func vFor(t *testing.T, issuer, audience string) *identity.OIDC {
	t.Helper()
	v, err := identity.NewOIDC(context.Background(), identity.OIDCConfig{Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestNewOIDCUnreachableIssuer(t *testing.T) {
	_, err := identity.NewOIDC(context.Background(), identity.OIDCConfig{Issuer: "http://127.0.0.1:1", Audience: "x"})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("unreachable issuer: error %v does not name it", err)
	}
}

func TestStaticUsers(t *testing.T) {
	u := identity.StaticUsers{"bob": "pw"}
	a, err := u.Authenticate(context.Background(), "bob", "pw")
	if err != nil || !a.DevIdentity || a.Subject != "bob" {
		t.Errorf("bob: %+v, %v", a, err)
	}
	if _, err := u.Authenticate(context.Background(), "bob", "nope"); err == nil {
		t.Error("wrong password accepted")
	}
}
