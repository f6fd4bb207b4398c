package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/storeurl"
	"github.com/auditledger/auditledger/services/identity"
)

// legalHoldInstance is the source instance of legal hold events: the
// producer they are published as.
const legalHoldInstance = bus.LegalHoldInstance

const legalHoldLong = `Puts the segments holding records --from through --to, both included, under
legal hold, or releases them. --from and --to are required; --to is the last
record held (--from 0 --to 41 is records 0 to 41), unlike the --to of log and
scan, which is the first index left out. On S3, an Object Lock legal hold
(PutObjectLegalHold) on the sealed version of each segment, of the
checkpoint signed at its end and of the bulk pieces its records name
(bulk/<name>), which S3 then refuses to delete even after its retain-until
date; on a local store, a marker file under .legal-hold/ that the
store's own delete honours.

The change is recorded first: a %s event (range, reason, store, every
object) is published to AUDIT_EVENTS and stored by JetStream, and is sealed
like any event; only then is the hold applied. If the bus does not take the
event, nothing is applied. If applying fails part way, the command says which
objects changed; the event already records the intent, and running the same
command again applies the rest (a hold that is set stays set).

Who: --token, an OIDC access token checked against --oidc-issuer (the event's
actor is the token's subject), or --operator NAME for a local operator
($AUDITLEDGER_OPERATOR).`

func legalHoldSet(c *cobra.Command) cli.Run {
	return legalHoldChange(c, true)
}

func legalHoldRelease(c *cobra.Command) cli.Run {
	return legalHoldChange(c, false)
}

func legalHoldChange(c *cobra.Command, on bool) cli.Run {
	verb, typ := "set", events.LegalHoldSet
	if !on {
		verb, typ = "release", events.LegalHoldReleased
	}
	fs := cli.Describe(c, "legal-hold "+verb+" --store URL --from FIRST --to LAST(included) --reason TEXT (--operator NAME | --token TOKEN --oidc-issuer URL) [--nats URL --nkey FILE]",
		fmt.Sprintf(legalHoldLong, typ))
	storeURL := fs.String("store", "", "segment store URL")
	from := fs.String("from", "", "first record index of the range (required: no default, a hold names its range)")
	to := fs.String("to", "", "last record index of the range, included (not the first left out, as log's and scan's --to)")
	reason := fs.String("reason", "", "why (a case or matter reference): recorded in the event")
	who := addWhoFlags(fs)
	url := fs.String("nats", nats.DefaultURL, "NATS server URL")
	nkey := fs.String("nkey", "", "NATS nkey seed file of the admin bus role (auditledger keys nats: admin.nk; dev: auditledger-data/nats-keys/admin.nk)")
	creds := fs.String("creds", "", "NATS JWT credentials file (decentralized auth), instead of --nkey")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the bus to store the event")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "store", "from", "to", "reason"); err != nil {
			return err
		}
		first, err := strconv.ParseUint(*from, 10, 64)
		if err != nil {
			return cli.Usagef("legal-hold %s: --from %q: want a record index", verb, *from)
		}
		last, err := strconv.ParseUint(*to, 10, 64)
		if err != nil {
			return cli.Usagef("legal-hold %s: --to %q: want a record index (the last one held, included)", verb, *to)
		}
		if last < first {
			return cli.Usagef("legal-hold %s: --to %d is before --from %d: --to is the last record of the range, included", verb, last, first)
		}
		actor, err := who.actor(ctx)
		if err != nil {
			return fmt.Errorf("legal-hold %s: %w", verb, err)
		}
		store, err := storeurl.OpenExisting(ctx, *storeURL)
		if err != nil {
			return err
		}
		holder, ok := store.Store.(ledger.LegalHolder)
		if !ok {
			return fmt.Errorf("legal-hold %s: %s keeps no legal holds", verb, store.Store)
		}
		spans, err := ledger.Spans(ctx, store.Store, first, last)
		if err != nil {
			return fmt.Errorf("legal-hold %s: %w", verb, err)
		}
		hold := ledger.LegalHold{From: first, To: last, Reason: *reason, Store: store.Store.String()}
		pieces := make([][]string, len(spans))
		for i, s := range spans {
			// The bulk pieces its records name (docs/FORMAT.md §1.7): a hold
			// keeps what replaying the range needs.
			if pieces[i], err = ledger.SpanBulk(ctx, store.Store, s); err != nil {
				return fmt.Errorf("legal-hold %s: %w", verb, err)
			}
			hold.Objects = append(hold.Objects, s.Segment, s.Checkpoint)
			hold.BulkPieces += len(pieces[i])
		}

		// Recorded first: a hold applied without its record must not happen.
		ev, err := legalHoldEvent(typ, actor, hold)
		if errors.Is(err, events.ErrTooLarge) {
			return fmt.Errorf("legal-hold %s: the range's %d segments and checkpoints do not fit in one event of at most %d bytes: "+
				"%s narrower ranges, one command each: %w", verb, len(hold.Objects), events.MaxSize, verb, err)
		}
		if err != nil {
			return fmt.Errorf("legal-hold %s: %w", verb, err)
		}
		rec, err := dialRecorder(ctx, stderr, legalHoldInstance, *url, *nkey, *creds, bus.Admin)
		if err != nil {
			return fmt.Errorf("legal-hold %s: the bus is unreachable, so the change cannot be recorded; nothing was applied: %w", verb, err)
		}
		err = rec.record(ctx, ev, *timeout)
		if cerr := rec.close(); err == nil {
			err = cerr
		}
		if err != nil {
			return cli.Failed(fmt.Errorf("legal-hold %s: the bus did not store the %s event, so nothing was applied: %w", verb, typ, err))
		}
		fmt.Fprintf(stdout, "recorded %s %s (records %d..%d) by %s\n", typ, ev.ID, hold.From, hold.To, actor.Subject)

		var done []string
		apply := slices.Clone(hold.Objects)
		for _, p := range pieces {
			apply = append(apply, p...)
		}
		for _, name := range apply {
			if err := holder.SetLegalHold(ctx, name, on); err != nil {
				fmt.Fprintf(stdout, "applied to %d of %d objects: %s\n", len(done), len(apply), strings.Join(done, " "))
				return cli.Failed(fmt.Errorf("legal-hold %s: %s: %w; event %s records the change: run the command again to apply the rest", verb, name, err, ev.ID))
			}
			done = append(done, name)
		}
		state := "held"
		if !on {
			state = "released"
		}
		for i, s := range spans {
			fmt.Fprintf(stdout, "%-9s %s  records %d..%d  and %s", state, s.Segment, s.First, s.End-1, s.Checkpoint)
			if n := len(pieces[i]); n > 0 {
				fmt.Fprintf(stdout, "  and %d bulk piece(s)", n)
			}
			fmt.Fprintln(stdout)
		}
		return nil
	}
}

// legalHoldEvent builds the event recording a legal hold change.
func legalHoldEvent(typ events.Type, actor events.Actor, hold ledger.LegalHold) (*events.Event, error) {
	payload, err := json.Marshal(hold)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	ev := &events.Event{
		Version: events.Version, Type: typ, Time: now, Tenant: ledger.SystemTenant,
		// No time in the id: a run of 19 digits can read as a card number,
		// and the writer refuses an event holding one.
		ID:      fmt.Sprintf("legal-hold/%d-%d/%s", hold.From, hold.To, detect.RandomHex(8)),
		Source:  events.Source{Kind: "cli", Instance: legalHoldInstance},
		Actor:   actor,
		Payload: payload,
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	if _, err := events.Parse(raw); err != nil {
		return nil, err
	}
	return ev, nil
}

// whoFlags say who changes a legal hold: an OIDC token's subject, or a
// named local operator.
type whoFlags struct {
	operator, token, issuer, audience *string
}

func addWhoFlags(fs *pflag.FlagSet) whoFlags {
	aud := os.Getenv("AUDITLEDGER_OIDC_AUDIENCE")
	if aud == "" {
		aud = "auditledger"
	}
	return whoFlags{
		operator: fs.String("operator", "", "the local operator making the change, by name (default $AUDITLEDGER_OPERATOR); recorded as the event's actor"),
		token:    fs.String("token", "", "an OIDC access token of the person making the change (default $AUDITLEDGER_TOKEN; auditledger token gets one); its subject is recorded as the event's actor"),
		issuer:   fs.String("oidc-issuer", os.Getenv("AUDITLEDGER_OIDC_ISSUER"), "with --token: the OIDC issuer that signed it (default $AUDITLEDGER_OIDC_ISSUER)"),
		audience: fs.String("oidc-audience", aud, "with --token: the audience it must be issued for (default $AUDITLEDGER_OIDC_AUDIENCE or auditledger)"),
	}
}

// actor checks the token, or takes the operator's name.
func (w whoFlags) actor(ctx context.Context) (events.Actor, error) {
	// Read here, not as flag defaults: -h (and docs/cli) would show them.
	if *w.token == "" && *w.operator == "" {
		*w.token, *w.operator = os.Getenv("AUDITLEDGER_TOKEN"), os.Getenv("AUDITLEDGER_OPERATOR")
	}
	switch {
	case *w.token != "" && *w.operator != "":
		return events.Actor{}, errors.New("--token and --operator exclude each other: say who once")
	case *w.token != "":
		if *w.issuer == "" {
			return events.Actor{}, errors.New("--token needs --oidc-issuer (or $AUDITLEDGER_OIDC_ISSUER) to check it")
		}
		v, err := identity.NewOIDC(ctx, identity.OIDCConfig{Issuer: *w.issuer, Audience: *w.audience})
		if err != nil {
			return events.Actor{}, err
		}
		a, err := v.Authenticate(ctx, "", *w.token)
		if err != nil {
			return events.Actor{}, fmt.Errorf("--token: %w", err)
		}
		// The writer refuses an e-mail in clear; the subject names them.
		a.Email = ""
		return a, nil
	case *w.operator != "":
		if len(*w.operator) > 256 || strings.ContainsFunc(*w.operator, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return events.Actor{}, errors.New("--operator: at most 256 characters, no control characters")
		}
		host, _ := os.Hostname()
		issuer := "local"
		if host != "" {
			issuer = "local:" + host
		}
		return events.Actor{Issuer: issuer, Subject: *w.operator, Kind: events.Human}, nil
	}
	return events.Actor{}, errors.New("say who makes the change: --token TOKEN with --oidc-issuer URL, or --operator NAME (or $AUDITLEDGER_OPERATOR)")
}

func legalHoldStatus(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "legal-hold status --store URL [--from INDEX] [--to INDEX]",
		"Lists the segments holding records --from..--to (default: the whole log) with\ntheir lock and legal hold as the store reports them now, and the checkpoint\nsigned at each one's end. `auditledger verify` compares the holds with the\nlegal_hold events in the log.")
	storeURL := fs.String("store", "", "segment store URL")
	from := fs.Uint64("from", 0, "first record index")
	to := fs.String("to", "", "last record index (default: the last record)")
	heldOnly := fs.Bool("held", false, "list only segments under legal hold")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "store"); err != nil {
			return err
		}
		store, err := storeurl.OpenExisting(ctx, *storeURL)
		if err != nil {
			return err
		}
		inspector, ok := store.Store.(ledger.Inspector)
		if !ok {
			return fmt.Errorf("legal-hold status: %s cannot report protection", store.Store)
		}
		last := uint64(ledger.ToEnd)
		if *to != "" {
			if last, err = strconv.ParseUint(*to, 10, 64); err != nil {
				return cli.Usagef("legal-hold status: --to %q: want a record index", *to)
			}
		}
		spans, err := ledger.Spans(ctx, store.Store, *from, last)
		if err != nil {
			return fmt.Errorf("legal-hold status: %w", err)
		}
		held := 0
		for _, s := range spans {
			seg, err := inspector.Inspect(ctx, s.Segment)
			if err != nil {
				return fmt.Errorf("legal-hold status: %w", err)
			}
			cp, err := inspector.Inspect(ctx, s.Checkpoint)
			if err != nil {
				return fmt.Errorf("legal-hold status: %w", err)
			}
			if seg.LegalHold {
				held++
			} else if *heldOnly {
				continue
			}
			fmt.Fprintf(stdout, "%s  records %d..%d  %s  checkpoint %s\n", s.Segment, s.First, s.End-1, describeProtection(seg), describeProtection(cp))
		}
		fmt.Fprintf(stdout, "%d of %d segment(s) under legal hold\n", held, len(spans))
		return nil
	}
}

func describeProtection(p ledger.Protection) string {
	s := p.Mode
	if p.Locked {
		s += " until " + p.RetainUntil.Format(time.RFC3339)
	}
	if p.LegalHold {
		return s + ", legal hold ON"
	}
	return s + ", legal hold off"
}
