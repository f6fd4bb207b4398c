// Package nkeyauth gives each bus role its own NATS credential: an nkey
// (an Ed25519 key pair, NATS's own challenge-response authentication; the
// server holds only public keys). It writes one seed file per role, and
// turns the public keys and the roles' permissions into users for an
// embedded server or an authorization block for nats-server's
// configuration file.
package nkeyauth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/auditledger/auditledger/ledger/bus"
)

// SeedFile is the file in a keys directory holding role's seed.
func SeedFile(dir string, role bus.Principal) string {
	return filepath.Join(dir, string(role)+".nk")
}

// Generate writes a new seed file (mode 0600) for every role that has none
// in dir — the fixed roles, a Forwarder role for each of bus.Forwarders
// and one Producer role per name in producers — and returns the public
// key of every role with a seed there.
func Generate(dir string, producers ...string) (map[bus.Principal]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	roles := slices.Clone(bus.Principals)
	for _, f := range bus.Forwarders {
		roles = append(roles, bus.Forwarder(f))
	}
	for _, p := range producers {
		roles = append(roles, bus.Producer(p))
	}
	for _, r := range roles {
		p := SeedFile(dir, r)
		if _, err := os.Stat(p); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, err
		}
		seed, err := kp.Seed()
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		_, err = f.Write(append(seed, '\n'))
		if serr := f.Sync(); err == nil {
			err = serr
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("nkeyauth: write %s: %w", p, err)
		}
	}
	return Load(dir)
}

// Load reads the public key of every fixed role's seed in dir, and of
// every producer and forwarder seed there.
func Load(dir string) (map[bus.Principal]string, error) {
	pubs := map[bus.Principal]string{}
	for _, r := range bus.Principals {
		pub, err := PublicKey(SeedFile(dir, r))
		if err != nil {
			return nil, err
		}
		pubs[r] = pub
	}
	var files []string
	for _, pattern := range []string{"forwarder-*.nk", "producer-*.nk"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	for _, f := range files {
		r := bus.Principal(strings.TrimSuffix(filepath.Base(f), ".nk"))
		pub, err := PublicKey(f)
		if err != nil {
			return nil, err
		}
		pubs[r] = pub
	}
	return pubs, nil
}

// ordered lists the roles of pubs: the fixed ones, then forwarders and
// then producers by name.
func ordered(pubs map[bus.Principal]string) []bus.Principal {
	var out, forwarders, producers []bus.Principal
	for _, r := range bus.Principals {
		if _, ok := pubs[r]; ok {
			out = append(out, r)
		}
	}
	for r := range pubs {
		if _, ok := r.IsProducer(); ok {
			producers = append(producers, r)
		} else if _, ok := r.IsForwarder(); ok {
			forwarders = append(forwarders, r)
		}
	}
	slices.Sort(forwarders)
	slices.Sort(producers)
	return slices.Concat(out, forwarders, producers)
}

// PublicKey reads a seed file and returns its public key.
func PublicKey(seedFile string) (string, error) {
	b, err := os.ReadFile(seedFile)
	if err != nil {
		return "", fmt.Errorf("nkeyauth: %w", err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		return "", fmt.Errorf("nkeyauth: %s holds no user seed: %w", seedFile, err)
	}
	defer kp.Wipe()
	return kp.PublicKey()
}

// Options are the client options for connecting as the role whose seed
// is in seedFile: the nkey and the role's inbox prefix.
func Options(role bus.Principal, seedFile string) ([]nats.Option, error) {
	o, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		return nil, fmt.Errorf("nkeyauth: %s: %w", seedFile, err)
	}
	return []nats.Option{o, nats.CustomInboxPrefix(role.InboxPrefix())}, nil
}

// Users are the embedded server's users for the roles' public keys.
func Users(pubs map[bus.Principal]string) []*server.NkeyUser {
	var users []*server.NkeyUser
	roles := ordered(pubs)
	for _, r := range roles {
		pub := pubs[r]
		p := r.Permissions(roles...)
		users = append(users, &server.NkeyUser{Nkey: pub, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: p.PublishAllow, Deny: p.PublishDeny},
			Subscribe: &server.SubjectPermission{Allow: p.SubscribeAllow, Deny: p.SubscribeDeny},
		}})
	}
	return users
}

// ServerConfig is an authorization block for nats-server's configuration
// file (include it from nats.conf) with one user per role.
func ServerConfig(pubs map[bus.Principal]string) string {
	var b strings.Builder
	b.WriteString("# auditledger bus roles: one nkey user each (auditledger keys nats).\n")
	b.WriteString("# Generated; the seeds stay with the roles, only public keys are here.\n")
	b.WriteString("authorization {\n  users = [\n")
	list := func(name string, subjects []string) {
		if len(subjects) == 0 {
			return
		}
		q := make([]string, len(subjects))
		for i, s := range subjects {
			q[i] = strconv.Quote(s)
		}
		fmt.Fprintf(&b, "          %s: [%s]\n", name, strings.Join(q, ", "))
	}
	roles := ordered(pubs)
	for _, r := range roles {
		pub := pubs[r]
		p := r.Permissions(roles...)
		fmt.Fprintf(&b, "    # %s\n    { nkey: %s\n      permissions: {\n        publish: {\n", r, pub)
		list("allow", p.PublishAllow)
		list("deny", p.PublishDeny)
		b.WriteString("        }\n        subscribe: {\n")
		list("allow", p.SubscribeAllow)
		list("deny", p.SubscribeDeny)
		b.WriteString("        }\n      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}
