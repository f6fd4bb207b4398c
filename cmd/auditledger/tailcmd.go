package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/busdial"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/services/siem"
)

// tailCmd follows the sealed records on AUDIT_LEDGER.
func tailCmd(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "tail [--nats URL --nkey SEED] [--tenant T] [--type T,...] [--format text|json|ocsf|cef] [--from-index N] [--open [--api URL]]",
		"Follows the sealed records as the ledger publishes them (AUDIT_LEDGER), as the\nbus's reader role: one line per record, a readable summary by default, or\nthe native JSON, OCSF or CEF rendering (docs/SIEM.md), each with its ledger\nindex, leaf hash and event id. Starts with the next record sealed, or with\n--from-index N at record N (as far back as the stream keeps). Ctrl-C stops.\n\nSealed actor e-mails (docs/FORMAT.md §1.6) stay sealed unless --open (text\nformat): then the API opens them for your token (role auditor or security,\nyour tenants; each opening is recorded), shown beside the actor.")
	url := fs.String("nats", nats.DefaultURL, "NATS server URL")
	nkey := fs.String("nkey", "", "NATS nkey seed file of the reader bus role (dev: DATA/nats-keys/reader.nk)")
	creds := fs.String("creds", "", "NATS JWT credentials file, instead of --nkey")
	tenant := fs.String("tenant", "", "only this tenant's records")
	types := fs.String("type", "", "only these event types, comma-separated")
	format := fs.String("format", "text", "text (readable), json, ocsf or cef")
	from := fs.String("from-index", "", "start at this ledger index instead of the next record")
	opener := addOpenFlags(fs)
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if *format != "text" && !slices.Contains(siem.Formats, siem.Format(*format)) {
			return fmt.Errorf("tail: --format %q: want text, json, ocsf or cef", *format)
		}
		o := opener()
		if o != nil && *format != "text" {
			return cli.Usagef("tail: --open shows e-mails in the text format only; --format %s renders records as sealed", *format)
		}
		want, err := siem.ParseTypes(strings.Split(*types, ","))
		if err != nil {
			return fmt.Errorf("tail: --type: %w", err)
		}
		filter := siem.Filter{Types: want}
		if *tenant != "" {
			filter.Tenants = []string{*tenant}
		}
		var start uint64
		if *from != "" {
			n, err := strconv.ParseUint(*from, 10, 64)
			if err != nil {
				return fmt.Errorf("tail: --from-index %q: want a ledger index", *from)
			}
			start = n
		}
		dial := &busdial.Dialer{URL: *url, Name: "auditledger-tail", SeedFile: *nkey, Creds: *creds,
			Log: cli.Logger(ctx, stderr, "text", "warn")}
		defer dial.Close()
		_, js, err := dial.Connect(bus.Reader)
		if err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{"audit.ledger.records"}, DeliverPolicy: jetstream.DeliverNewPolicy}
		if *from != "" {
			cfg.DeliverPolicy = jetstream.DeliverAllPolicy
		}
		cons, err := js.OrderedConsumer(ctx, bus.LedgerStream, cfg)
		if err != nil {
			return fmt.Errorf("tail: %s: %w", bus.LedgerStream, err)
		}
		it, err := cons.Messages()
		if err != nil {
			return err
		}
		go func() { <-ctx.Done(); it.Stop() }()
		for {
			msg, err := it.Next()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("tail: %w", err)
			}
			first, _ := strconv.ParseUint(msg.Headers().Get(bus.HeaderIndex), 10, 64)
			raws, err := bus.SplitRecords(msg.Data())
			if err != nil {
				return err
			}
			var kept []siem.Sealed
			for i, raw := range raws {
				if first+uint64(i) < start {
					continue
				}
				s, err := siem.FromRecord(raw)
				if err != nil {
					fmt.Fprintf(stderr, "tail: record %d: %v\n", first+uint64(i), err)
					continue
				}
				if filter.Keep(s.Event) {
					kept = append(kept, s)
				}
			}
			// One request a message opens the e-mails of its records.
			evs := make([]*events.Event, len(kept))
			for i := range kept {
				evs[i] = kept[i].Event
			}
			if err := o.open(ctx, evs); err != nil {
				return fmt.Errorf("tail: %w", err)
			}
			for _, s := range kept {
				if *format == "text" {
					fmt.Fprintln(stdout, tailLine(s, o))
					continue
				}
				b, err := siem.Render(siem.Format(*format), s)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s\n", b)
			}
		}
	}
}

// tailLine is a record in one readable line: index, sealing time, type,
// tenant, actor (with its e-mail when o opened it), session, what
// happened, and the leaf's first bytes.
func tailLine(s siem.Sealed, o *sealedOpener) string {
	ev := s.Event
	session := ev.SessionID
	if session != "" {
		session += ":" + strconv.FormatUint(ev.SessionSeq, 10)
	}
	return fmt.Sprintf("%-8d %s  %-18s %-8s %-10s %-14s %s  leaf %x", s.Index, s.SealedAt.UTC().Format(time.RFC3339), ev.Type, ev.Tenant,
		o.actor(ev), session, what(json.RawMessage(ev.Payload)), s.Leaf[:4])
}
