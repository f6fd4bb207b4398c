package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/busdial"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/keyfile"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/nkeyauth"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/sshproxy"
)

func keysGenerate(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "keys generate --out DIR [--name ORIGIN] [--file STEM]", "Creates DIR/ledger.key (the secret signing key, mode 0600) and DIR/ledger.vkey\n(the public verifier key, name+hash+base64, as Go's checksum database and\ntransparency-log witnesses use). The key name is the log's origin line in\nevery checkpoint. With --file approvals, the key the api role signs approval\ndecisions with (approvals.key) and the verifier key proxies check them with\n(approvals.vkey). Existing keys are never overwritten.")
	out := fs.String("out", "", "directory to write the keys into (created if missing)")
	name := fs.String("name", "auditledger.local/log", "key name and log origin: a schema-less URL without spaces or '+'")
	file := fs.String("file", "ledger", "file name stem: DIR/STEM.key and DIR/STEM.vkey (\"approvals\" for the key the api role signs decisions with)")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if *file == "" || strings.ContainsAny(*file, `/\`) {
			return fmt.Errorf("keys generate: --file %q: want a plain name", *file)
		}
		if err := cli.Required(fs, "out"); err != nil {
			return err
		}
		skey, vkey, err := ledger.GenerateKey(nil, *name)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		sp, vp := filepath.Join(*out, *file+".key"), filepath.Join(*out, *file+".vkey")
		for _, p := range []string{sp, vp} {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("keys generate: %s exists; refusing to overwrite a key", p)
			}
		}
		if err := keyfile.WriteNew(sp, skey+"\n", 0o600); err != nil {
			return err
		}
		if err := keyfile.WriteNew(vp, vkey+"\n", 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "signing key:  %s (secret, mode 0600)\nverifier key: %s\n%s\n", sp, vp, vkey)
		return nil
	}
}

func loadSigner(path string) (*ledger.NoteSigner, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	// A verifier key given where the signing key goes: say so, rather
	// than ask for the public key's permissions to be tightened.
	if _, verr := ledger.NewNoteVerifier(strings.TrimSpace(string(b))); verr == nil {
		return nil, fmt.Errorf("%s holds a verifier (public) key; give the signing key here (the file beside it without .vkey, from auditledger keys generate)", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s is readable by others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	s, err := ledger.NewNoteSigner(string(b))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return s, nil
}

// loadVerifier accepts a verifier key or the path of a file holding one.
func loadVerifier(arg string) (*ledger.NoteVerifier, error) {
	text := arg
	if b, err := os.ReadFile(arg); err == nil {
		text = string(b)
	} else if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(arg, "+") {
		return nil, fmt.Errorf("verifier key: %q is neither a readable file nor a key (name+hash+base64)", arg)
	}
	v, err := ledger.NewNoteVerifier(text)
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	return v, nil
}

func keysNATS(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "keys nats --out DIR",
		"Creates one NATS nkey per bus role in DIR (admin.nk, ledger.nk, api.nk,\nproxy.nk, reader.nk, forwarder-syslog.nk, forwarder-hec.nk,\nforwarder-webhook.nk, and producer-NAME.nk for each --producers NAME: secret\nseeds, mode 0600; existing ones are kept, so run it again after an upgrade) and\nwrites DIR/nats-auth.conf, the authorization block for nats-server with each\nrole's public key and permissions: include it from nats.conf\n(deploy/nats.conf does). Give each process only its roles' seeds: serve's\nnats.nkeys is DIR; proxy and emit take --nkey DIR/proxy.nk; the stock nats\nCLI takes --nkey DIR/reader.nk to follow sealed records.")
	out := fs.String("out", "", "directory for the seeds and nats-auth.conf (created if missing)")
	producersArg := fs.String("producers", "", "comma-separated producer instances (proxies' source instance, or their producer key names): one seed each, producer-NAME.nk, that may publish events only as that producer")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "out"); err != nil {
			return err
		}
		var producers []string
		for _, p := range strings.Split(*producersArg, ",") {
			if p = strings.TrimSpace(p); p != "" {
				if tok := bus.ProducerToken(p); tok != p {
					return fmt.Errorf("keys nats: --producers: %q is not a plain name (letters, digits, - and _, at most 64): its events would go to subject token %s", p, tok)
				}
				producers = append(producers, p)
			}
		}
		pubs, err := nkeyauth.Generate(*out, producers...)
		if err != nil {
			return fmt.Errorf("keys nats: %w", err)
		}
		conf := filepath.Join(*out, "nats-auth.conf")
		if err := os.WriteFile(conf, []byte(nkeyauth.ServerConfig(pubs)), 0o644); err != nil {
			return fmt.Errorf("keys nats: %w", err)
		}
		roles := slices.Sorted(maps.Keys(pubs))
		for _, r := range roles {
			fmt.Fprintf(stdout, "%-16s %s  %s\n", r, pubs[r], nkeyauth.SeedFile(*out, r))
		}
		fmt.Fprintf(stdout, "server authorization: %s\n", conf)
		return nil
	}
}

// keysEvidence creates the key evidence bundles are signed with.
func keysEvidence(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "keys evidence --out DIR --origin ORIGIN",
		"Creates the Ed25519 SSH key evidence bundles are signed with (docs/FORMAT.md\n§12): DIR/evidence (OpenSSH private key, mode 0600; give it to `evidence\nbuild --key` or the api role's evidence_key), DIR/evidence.pub, and\nDIR/allowed_signers naming it evidence@ORIGIN for the namespace\nauditledger-evidence — the file to publish to auditors, who check bundles\nwith it (`evidence verify --allowed-signers`, or ssh-keygen -Y verify). It\nis not the log's checkpoint key. ssh-keygen -t ed25519 makes an equivalent\nkey. Existing keys are never overwritten.")
	out := fs.String("out", "", "directory to write the keys into (created if missing)")
	origin := fs.String("origin", "auditledger.local/log", "the log's origin: the signer is named evidence@ORIGIN, as bundles name it")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "out"); err != nil {
			return err
		}
		if err := keyfile.WriteEvidenceKey(*out, *origin); err != nil {
			return fmt.Errorf("keys evidence: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s, %s.pub and %s\n", filepath.Join(*out, "evidence"), filepath.Join(*out, "evidence"), filepath.Join(*out, "allowed_signers"))
		return nil
	}
}

// keysPII creates the personal-data keys bucket and tenants' search keys,
// and lists the tenants that have one: never a key.
func keysPII(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "keys pii --nats URL [--nkey SEED | --creds FILE] [--tenant T ...] [--replicas N]",
		"Creates the personal-data keys bucket (AUDIT_PII_KEYS on the bus) if it does not\nexist (or, made by an earlier release, turns off its rollups, with which any\ncredential that may add a key could purge them all), and a search key for each\n--tenant that has none, then lists the tenants\nthat have a search key and when it was made. Never prints a key. Gateways make\na tenant's key on its first event anyway; making it here first lets the bucket\nbe backed up before any record depends on it.\n\nEach value the detectors replace is recorded as its keyed digest under its\ntenant's search key (docs/FORMAT.md §1.5): losing a tenant's key ends\nsearching that tenant's older records by value, for good. Back the bucket up\n(as the admin principal: nats stream backup KV_AUDIT_PII_KEYS DIR, restored\nwith nats stream restore), and keep the backups away from the log. The bucket\nholds data subjects' field keys too, so a backup must expire before the\nerasure deadline: take them often and keep each for less than that\n(docs/FORMAT.md §1.5, \"Who holds the keys\").")
	natsURL := fs.String("nats", nats.DefaultURL, "NATS server URL")
	nkey := fs.String("nkey", "", "NATS nkey seed file of the admin bus principal (dev: DATA/nats-keys/admin.nk)")
	creds := fs.String("creds", "", "NATS JWT credentials file, instead of --nkey")
	tenants := fs.StringArray("tenant", nil, "make this tenant's search key if it has none (repeat for several)")
	replicas := fs.Int("replicas", 1, "replicas of the bucket, when creating it (as the streams': 3 in a cluster)")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		for _, t := range *tenants {
			if !tenantName.MatchString(t) {
				return cli.Usagef("keys pii: --tenant %q: want 1-64 characters of a-z, 0-9, _ and -", t)
			}
		}
		dial := &busdial.Dialer{URL: *natsURL, Name: "auditledger-keys", SeedFile: *nkey, Creds: *creds,
			Log: cli.Logger(ctx, stderr, "text", "warn")}
		defer dial.Close()
		_, js, err := dial.Connect(bus.Admin)
		if err != nil {
			return fmt.Errorf("keys pii: %w", err)
		}
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		st, err := piikeys.Open(octx, js, *replicas)
		if err != nil {
			return fmt.Errorf("keys pii: %w", err)
		}
		for _, t := range *tenants {
			if _, err := st.TenantKey(octx, t); err != nil {
				return fmt.Errorf("keys pii: %w", err)
			}
		}
		list, err := st.TenantKeyList(octx)
		if err != nil {
			return fmt.Errorf("keys pii: %w", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TENANT\tSEARCH KEY CREATED")
		for _, k := range list {
			fmt.Fprintf(tw, "%s\t%s\n", k.Tenant, k.Created.UTC().Format(time.RFC3339))
		}
		if len(list) == 0 {
			fmt.Fprintln(tw, "(no tenant has a search key yet)")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "bucket %s: back it up (nats stream backup KV_%s DIR); a lost tenant key ends searching that tenant's records by value\n", piikeys.Bucket, piikeys.Bucket)
		return nil
	}
}

// keysSSHCA rotates the SSH gateway's certificate authorities.
func keysSSHCA(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "keys ssh-ca --dir KEYS_DIR (--rotate-user | --rotate-host | --stage-target | --activate-target)",
		"Rotates the SSH gateway's certificate authorities in its keys_dir; the\n"+
			"gateway reads them at start, so restart it after each step.\n\n"+
			"--rotate-user retires user_ca and makes a new one: the gateway issues from\n"+
			"the new CA only and accepts certificates of the retired one (kept as\n"+
			"user_ca.<when>.pub, its private key removed) for 12 hours, the longest\n"+
			"any of them is valid.\n\n"+
			"--rotate-host retires host_ca, makes a new one and issues the gateway's\n"+
			"host certificate from it (same host names); the retired public key is\n"+
			"kept as host_ca.<when>.pub and, for 12 hours, the known_hosts lines the\n"+
			"gateway hands out at login list both @cert-authority lines, so clients\n"+
			"trust a gateway presenting either certificate. A client whose known_hosts\n"+
			"holds only the old line refuses the gateway once it presents the new\n"+
			"certificate: `auditledger login ssh` again writes both.\n\n"+
			"The target CA rotates in two steps, so no target ever refuses the\n"+
			"gateway: --stage-target makes target_ca.next; add target_ca.next.pub to\n"+
			"every target's TrustedUserCAKeys beside target_ca.pub; then\n"+
			"--activate-target puts it in use (the old public key kept as\n"+
			"target_ca.<when>.pub); once the gateway runs with it, remove the old key\n"+
			"from the targets.")
	dir := fs.String("dir", "", "the gateway's keys_dir")
	rotateUser := fs.Bool("rotate-user", false, "retire the user CA and make a new one")
	rotateHost := fs.Bool("rotate-host", false, "retire the host CA, make a new one and issue the host certificate from it")
	stage := fs.Bool("stage-target", false, "make the next target CA (target_ca.next) for the targets to trust")
	activate := fs.Bool("activate-target", false, "put the staged target CA in use")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "dir"); err != nil {
			return err
		}
		n := 0
		for _, b := range []bool{*rotateUser, *rotateHost, *stage, *activate} {
			if b {
				n++
			}
		}
		if n != 1 {
			return errors.New("keys ssh-ca: give one of --rotate-user, --rotate-host, --stage-target, --activate-target")
		}
		now := time.Now()
		switch {
		case *rotateUser:
			retired, err := sshproxy.RotateUserCA(*dir, now)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "new user CA: %s.pub\nretired: %s (accepted until %s)\nrestart the gateway to issue from the new CA\n",
				filepath.Join(*dir, sshproxy.UserCAFile), retired, now.Add(sshproxy.MaxUserCertValidity).UTC().Format(time.RFC3339))
		case *rotateHost:
			retired, err := sshproxy.RotateHostCA(*dir, now)
			if err != nil {
				return err
			}
			pub, _ := os.ReadFile(filepath.Join(*dir, sshproxy.HostCAFile+".pub"))
			fmt.Fprintf(stdout, "new host CA: %s.pub\nhost certificate issued again: %s\nretired: %s (listed in known_hosts until %s)\n"+
				"restart the gateway to present the new certificate; clients trust it through this line (auditledger login ssh writes it):\n@cert-authority HOSTS %s",
				filepath.Join(*dir, sshproxy.HostCAFile), filepath.Join(*dir, sshproxy.HostKeyFile+"-cert.pub"), retired,
				now.Add(sshproxy.MaxUserCertValidity).UTC().Format(time.RFC3339), pub)
		case *stage:
			next, err := sshproxy.StageTargetCA(*dir)
			if err != nil {
				return err
			}
			pub, _ := os.ReadFile(next)
			fmt.Fprintf(stdout, "next target CA: %s\nadd it to every target's TrustedUserCAKeys (beside target_ca.pub), then run keys ssh-ca --activate-target:\n%s", next, pub)
		case *activate:
			retired, err := sshproxy.ActivateTargetCA(*dir, now)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "target CA in use: %s.pub\nretired: %s\nrestart the gateway, then remove the retired key from the targets' TrustedUserCAKeys\n",
				filepath.Join(*dir, sshproxy.TargetCAFile), retired)
		}
		return nil
	}
}
