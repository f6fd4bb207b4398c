package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/piikeys"
)

// Erasure of a data subject (docs/FORMAT.md §2.4): their key is destroyed
// in AUDIT_PII_KEYS, so no field sealed under it decrypts; the log does
// not change. Every step is recorded, naming the subject's pseudonym only.

// sealedFields are the fields a subject's key seals (docs/FORMAT.md §1.6).
var sealedFields = []string{"actor.email"}

// subjectFlags name one data subject and how to reach the key store.
type subjectFlags struct {
	subject, issuer, tenant, reason *string
	nats, nkey, creds, operator     *string
}

func addSubjectFlags(fs *pflag.FlagSet) subjectFlags {
	return subjectFlags{
		subject:  fs.String("subject", "", "the data subject: the actor's subject (OIDC sub) as events name it"),
		issuer:   fs.String("issuer", "", "the actor's issuer as events name it"),
		tenant:   fs.String("tenant", "", "the tenant whose events seal the subject's fields"),
		reason:   fs.String("reason", "", "why (recorded; never the subject's name or address)"),
		nats:     fs.String("nats", nats.DefaultURL, "NATS server URL"),
		nkey:     fs.String("nkey", "", "NATS nkey seed file of the admin bus role (auditledger keys nats: admin.nk; dev: auditledger-data/nats-keys/admin.nk)"),
		creds:    fs.String("creds", "", "NATS JWT credentials file of an admin user (decentralized auth), instead of --nkey"),
		operator: fs.String("operator", "", "who runs the command, as recorded (default: the OS user @ the host name)"),
	}
}

// keyAdmin is an open key store with a recorder, as the admin bus
// principal.
type keyAdmin struct {
	*busRecorder
	keys     *piikeys.Store
	operator string
	f        subjectFlags
}

func (f subjectFlags) open(ctx context.Context, stderr io.Writer) (*keyAdmin, error) {
	op := *f.operator
	if op == "" {
		name := "unknown"
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
		host, _ := os.Hostname()
		op = name + "@" + host
	}
	rec, err := dialRecorder(ctx, stderr, "auditledger-admin", *f.nats, *f.nkey, *f.creds, bus.Admin)
	if err != nil {
		return nil, err
	}
	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	keys, err := piikeys.Open(kctx, rec.js, 1)
	cancel()
	if err != nil {
		rec.close()
		return nil, err
	}
	rec.keys = keys
	return &keyAdmin{busRecorder: rec, keys: keys, operator: op, f: f}, nil
}

// subjectCommand is a command about one data subject: it checks the
// flags (reason among them when needsReason), opens the key store, runs
// do and closes the store.
func subjectCommand(c *cobra.Command, name, usage, long string, needsReason bool, do func(ctx context.Context, k *keyAdmin, f subjectFlags, stdout io.Writer) error) cli.Run {
	fs := cli.Describe(c, usage, long)
	f := addSubjectFlags(fs)
	required := []string{"subject", "issuer", "tenant"}
	if needsReason {
		required = append(required, "reason")
	}
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, required...); err != nil {
			return err
		}
		k, err := f.open(ctx, stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer k.close()
		return do(ctx, k, f, stdout)
	}
}

// record stores one event about the subject and waits until the bus holds
// it. The event names the pseudonym, never the subject.
func (k *keyAdmin) record(ctx context.Context, t events.Type, id string, payload map[string]any) error {
	payload["by"] = k.operator
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	ev := &events.Event{Version: events.Version, ID: id, Type: t, Time: time.Now().UTC(), Tenant: *k.f.tenant,
		Source: events.Source{Kind: "cli", Instance: "auditledger-admin"},
		Actor:  events.Actor{Issuer: "auditledger-admin", Subject: k.operator, Kind: events.Human},
		Target: &events.Target{Kind: "auditledger-pii-keys", Name: piikeys.Bucket}, Payload: body}
	return k.busRecorder.record(ctx, ev, time.Minute)
}

func eventID(kind, pseudonym string) string {
	return kind + "/" + pseudonym + "/" + detect.RandomHex(8)
}

func eraseCmd(c *cobra.Command) cli.Run {
	return subjectCommand(c, "erase", "erase --subject SUBJECT --issuer ISSUER --tenant T --reason TEXT [--nats URL] [--nkey FILE | --creds FILE] [--operator NAME]",
		"Erases a data subject: destroys their key in the bus's AUDIT_PII_KEYS bucket, so\nthat no field sealed under it (actor.email, docs/FORMAT.md §1.6) decrypts any\nmore; the log does not change, and verify still passes and names the erased\nfields. In order: erasure.requested is recorded, the key is destroyed (overwritten\nin JetStream's store), erasure.performed is recorded — so no erasure is ever\nunrecorded, and one that stopped half-way shows as requested only. The events\nname the subject's pseudonym, the fields, the reason and the operator, never the\nsubject. A subject under legal hold (auditledger subject hold) is refused: the\nrefusal is recorded (erasure.refused) and the exit code is 1. Backups of\nAUDIT_PII_KEYS taken before the erasure still hold the key (docs/FORMAT.md §2.4).",
		true, func(ctx context.Context, k *keyAdmin, f subjectFlags, stdout io.Writer) error {
			tenant, issuer, subject, reason := *f.tenant, *f.issuer, *f.subject, *f.reason
			refuse := func(p, why string) error {
				id := eventID("erasure", p) + "/refused"
				if err := k.record(ctx, events.ErasureRefused, id, map[string]any{"pseudonym": p, "fields": sealedFields,
					"reason": why, "request_reason": reason}); err != nil {
					return fmt.Errorf("erase: refused (%s), and the refusal could not be recorded: %w", why, err)
				}
				fmt.Fprintf(stdout, "refused: %s\n  pseudonym  %s\n  recorded   erasure.refused %s\n", why, p, id)
				return cli.Failed(fmt.Errorf("erase: refused: %s; release the hold first (auditledger subject release)", why))
			}
			held, why, err := k.keys.Held(ctx, tenant, issuer, subject)
			if err != nil {
				return fmt.Errorf("erase: reading the legal hold: %w", err)
			}
			if held {
				// A held subject is named by their pseudonym, made if they
				// have none yet.
				p, err := k.keys.Pseudonym(ctx, tenant, issuer, subject)
				if err != nil {
					return fmt.Errorf("erase: refused (under legal hold), and the subject's pseudonym could not be had: %w", err)
				}
				return refuse(p, fmt.Sprintf("%v (%s)", piikeys.ErrHeld, why))
			}
			p, err := k.keys.PseudonymOf(ctx, tenant, issuer, subject)
			if errors.Is(err, piikeys.ErrNoSubject) {
				return cli.Failed(fmt.Errorf("erase: nothing to erase: tenant %s has no key for subject %q of issuer %s (nothing of theirs was sealed, or they were erased already); nothing recorded", tenant, subject, issuer))
			}
			if err != nil {
				return fmt.Errorf("erase: %w", err)
			}
			base := eventID("erasure", p)
			payload := func() map[string]any {
				return map[string]any{"pseudonym": p, "fields": sealedFields, "reason": reason}
			}
			// Recorded before the key is touched: if it cannot be, nothing is
			// destroyed.
			if err := k.record(ctx, events.ErasureRequested, base+"/requested", payload()); err != nil {
				return fmt.Errorf("erase: nothing erased: %w", err)
			}
			_, err = k.keys.Erase(ctx, tenant, issuer, subject)
			switch {
			case errors.Is(err, piikeys.ErrHeld):
				return refuse(p, err.Error()) // held since the check
			case errors.Is(err, piikeys.ErrNoSubject):
				// Erased by someone else since the lookup: the key is gone
				// all the same.
			case err != nil:
				return fmt.Errorf("erase: erasure.requested %s/requested is recorded, but destroying the key failed (it may be partly erased; run erase again): %w", base, err)
			}
			pl := payload()
			pl["requested"] = base + "/requested"
			if err := k.record(ctx, events.ErasurePerformed, base+"/performed", pl); err != nil {
				return fmt.Errorf("erase: the key of pseudonym %s is destroyed and erasure.requested %s/requested is recorded, but erasure.performed is not (verify reports the erasure as incomplete): %w", p, base, err)
			}
			fmt.Fprintf(stdout, "erased: the subject's key is destroyed; no field sealed under it decrypts\n  pseudonym  %s\n  fields     %v\n  recorded   erasure.requested %s/requested, erasure.performed %s/performed\n", p, sealedFields, base, base)
			return nil
		})
}

// printErasure is verify's report of sealed fields and erasures.
func printErasure(w io.Writer, r ledger.ErasureReport) {
	if r.Sealed == 0 && len(r.Performed) == 0 && len(r.Incomplete) == 0 {
		return
	}
	fmt.Fprintf(w, "  sealed       %d sealed field(s); %d erasure(s) performed, %d field(s) erased (no key opens them; the records are unchanged)\n",
		r.Sealed, len(r.Performed), r.ErasedCount())
	for _, e := range r.Performed {
		for _, f := range r.Erased {
			if f.Pseudonym != e.Pseudonym {
				continue
			}
			idx := f.Indexes
			more := ""
			if len(idx) > 10 {
				idx = idx[:10]
			}
			if f.Count > len(idx) {
				more = fmt.Sprintf(" and %d more", f.Count-len(idx))
			}
			fmt.Fprintf(w, "  erased       pseudonym %s by erasure.performed at record %d: %d %s field(s), records %v%s\n", e.Pseudonym, e.Index, f.Count, f.Field, idx, more)
		}
	}
	for _, e := range r.Incomplete {
		fmt.Fprintf(w, "  warning      erasure of pseudonym %s requested at record %d, never recorded as performed (run erase again)\n", e.Pseudonym, e.Index)
	}
}
