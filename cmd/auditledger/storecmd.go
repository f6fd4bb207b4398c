package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/auditledger/auditledger/ledger/storeurl"
	"github.com/auditledger/auditledger/services/oidcdev"
)

// storeInit prepares a store for the first writer: the one-time set-up an
// operator (or a compose job) runs before `serve`.
func storeInit(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("store init --store URL [--wait DURATION]",
		"Prepares a segment store for its first writer. An s3:// store's bucket is\ncreated with Object Lock (which turns versioning on), or an existing bucket\nis checked to have it: the writer refuses a bucket without. A local\ndirectory is created. Running it again changes nothing.\n\nS3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; the\nURL forms are those of every --store flag (README, \"Store URLs\").", stderr)
	store := fs.String("store", "", "store URL")
	wait := fs.Duration("wait", 0, "keep trying this long while the S3 endpoint does not answer (a server still starting)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "store"); err != nil {
		return err
	}
	deadline := time.Now().Add(*wait)
	for attempt := 0; ; attempt++ {
		did, err := storeurl.Init(ctx, *store)
		if err == nil {
			fmt.Fprintln(stdout, did)
			return nil
		}
		// Only a server that does not answer is waited for; a refusal
		// (credentials, a bucket without Object Lock) is final.
		var unreachable net.Error
		if !errors.As(err, &unreachable) || time.Now().After(deadline) {
			return fmt.Errorf("store init: %w", err)
		}
		if attempt == 0 {
			fmt.Fprintf(stderr, "store init: waiting up to %v for the store to answer: %v\n", *wait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// oidcDev serves `dev`'s development OpenID provider on its own, for a
// gateway run by `serve` (the compose stack's gateway profile) to be tried
// without a real identity provider.
func oidcDev(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("oidc-dev [--listen ADDR] [--issuer URL] [--key FILE]",
		"Serves the development OpenID provider of `auditledger dev` on its own: the\nusers alice (group dba), bob (approver), carol (auditor) and agent (a\nmachine), each getting a token with `auditledger token --client-id NAME` and\nthe secret NAME-dev-secret. Their secrets are public: for trying a gateway,\nnever for production. Set serve's oidc.dev_identities (or\nAUDITLEDGER_OIDC_DEV_IDENTITIES=true) so that their events say so.", stderr)
	listen := fs.String("listen", "127.0.0.1:5556", "address to serve on")
	issuer := fs.String("issuer", "", "the issuer URL clients and verifiers use (default http://ADDR); behind a proxy or in a container network, the name they reach it by")
	key := fs.String("key", "", "file keeping the signing key across restarts (created, mode 0600); without it tokens do not survive a restart")
	if err := parse(fs, args); err != nil {
		return err
	}
	srv, err := oidcdev.Listen(*listen, oidcdev.Config{Issuer: *issuer, Audience: "auditledger", Users: devUsers, KeyFile: *key})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(stdout, "development OpenID provider at %s (audience auditledger); users:", srv.Issuer)
	for _, u := range devUsers {
		fmt.Fprintf(stdout, " %s", u.Name)
	}
	fmt.Fprintln(stdout)
	<-ctx.Done()
	return nil
}
