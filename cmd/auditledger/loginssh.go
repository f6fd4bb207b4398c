package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/sshproxy"
)

// loginSSH gets a short-lived SSH user certificate from the SSH gateway
// for an OIDC token, over a key pair made here: the private key never
// leaves this machine.
func loginSSH(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "login ssh --gateway URL [--issuer URL --client-id ID | --token-file FILE]",
		"Exchanges an OIDC token whose audience is the SSH gateway for a short-lived\nSSH user certificate (key id and principals from the token's claims, valid no\nlonger than the token), over an ed25519 key pair kept in --dir (made on first\nuse; the private key never leaves it). Writes the certificate beside the key\nand a known_hosts file holding the gateway's @cert-authority line, and prints\nthe ssh_config snippet that uses them: then `ssh -F FILE LOGIN+TARGET@ALIAS`,\nscp and sftp work unchanged. The token is $AUDITLEDGER_TOKEN, --token-file,\nor one fetched with the client-credentials grant (--issuer, --client-id, the\nsecret in $AUDITLEDGER_CLIENT_SECRET), as agents do.")
	def := os.Getenv("AUDITLEDGER_SSH_GATEWAY")
	if def == "" {
		def = "http://" + defaultSSHLoginAddr
	}
	gateway := fs.String("gateway", def, "the gateway's login endpoint (default $AUDITLEDGER_SSH_GATEWAY or http://"+defaultSSHLoginAddr+")")
	home, _ := os.UserHomeDir()
	dir := fs.String("dir", filepath.Join(home, ".auditledger", "ssh"), "directory of the key pair, certificate and known_hosts")
	alias := fs.String("alias", "auditledger", "the Host name in the ssh_config snippet")
	host := fs.String("ssh-host", "", "the gateway's SSH host name (default: the login endpoint's host)")
	port := fs.String("ssh-port", "", "the gateway's SSH port (default: the port the gateway reports)")
	issuer := fs.String("issuer", os.Getenv("AUDITLEDGER_OIDC_ISSUER"), "OIDC issuer, to fetch a token with the client-credentials grant (default $AUDITLEDGER_OIDC_ISSUER)")
	client := fs.String("client-id", "", "OAuth client ID for the client-credentials grant")
	tokenFile := fs.String("token-file", "", "file holding your OIDC token (default: $AUDITLEDGER_TOKEN)")
	return func(ctx context.Context, _ []string, _ io.Reader, stdout, stderr io.Writer) error {
		tok, err := oidcToken(ctx, "login ssh", *tokenFile, *issuer, *client)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*dir, 0o700); err != nil {
			return err
		}
		key := filepath.Join(*dir, "id_ed25519")
		pub, err := clientKey(key)
		if err != nil {
			return err
		}
		r, err := sshproxy.Login(ctx, nil, *gateway, tok, pub)
		if err != nil {
			return fmt.Errorf("login ssh: %w", err)
		}
		h, p := *host, *port
		if h == "" {
			u, err := url.Parse(*gateway)
			if err != nil {
				return fmt.Errorf("--gateway: %w", err)
			}
			h = u.Hostname()
		}
		if p == "" {
			if _, p, err = net.SplitHostPort(r.SSHAddr); err != nil {
				p = "2222"
			}
		}
		files, err := sshproxy.WriteClientFiles(*dir, key, *alias, h, p, r)
		if err != nil {
			return err
		}
		conf := filepath.Join(*dir, "ssh_config")
		if err := os.WriteFile(conf, []byte(files.Config), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "certificate for %s (principals %s, serial %d) valid until %s\n", r.KeyID, strings.Join(r.Principals, ","), r.Serial, r.ValidBefore.Format("2006-01-02 15:04:05 MST"))
		fmt.Fprintf(stderr, "written: %s, %s, %s\nconnect: ssh -F %s LOGIN+TARGET@%s (or add the snippet below to ~/.ssh/config)\n\n", files.Certificate, files.KnownHosts, conf, conf, *alias)
		fmt.Fprint(stdout, files.Config)
		fmt.Fprintf(stdout, "\n# known_hosts (%s):\n# %s\n", files.KnownHosts, strings.ReplaceAll(r.KnownHosts, "\n", "\n# "))
		return nil
	}
}

// oidcToken is the OIDC token a gateway's client presents (cmd names the
// command in errors): a file, $AUDITLEDGER_TOKEN, or one fetched with the
// client-credentials grant.
func oidcToken(ctx context.Context, cmd, file, issuer, client string) (string, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		return strings.TrimSpace(string(b)), err
	case client != "":
		secret := os.Getenv("AUDITLEDGER_CLIENT_SECRET")
		if issuer == "" || secret == "" {
			return "", errors.New(cmd + ": --client-id needs --issuer and $AUDITLEDGER_CLIENT_SECRET")
		}
		return identity.ClientCredentialsToken(ctx, issuer, client, secret)
	case os.Getenv("AUDITLEDGER_TOKEN") != "":
		return strings.TrimSpace(os.Getenv("AUDITLEDGER_TOKEN")), nil
	}
	return "", errors.New(cmd + ": no token: set AUDITLEDGER_TOKEN, pass --token-file, or --issuer and --client-id")
}

// clientKey reads the key pair at path, or makes it (mode 0600), and
// returns its public key in authorized_keys format.
func clientKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		blk, err := ssh.MarshalPrivateKey(priv, "auditledger login ssh")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
			return nil, err
		}
		s, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			return nil, err
		}
		pub := ssh.MarshalAuthorizedKey(s.PublicKey())
		return pub, os.WriteFile(path+".pub", pub, 0o644)
	}
	if err != nil {
		return nil, err
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("login ssh: %s: %w", path, err)
	}
	return ssh.MarshalAuthorizedKey(s.PublicKey()), nil
}
