package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/storeurl"
)

// logCmd prints sealed records from a store, offline: what the ledger
// holds, readable, or as JSON lines for other tools.
func logCmd(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "log --store URL [--from N] [--to M] [--type T,...] [--tenant T] [--session ID] [--json] [--open [--api URL]]",
		"Prints the sealed records of a store, read from the store alone (no NATS, no\nserver): a table (index, time sealed, type, tenant, actor, session and\nsequence, and what was done), or with --json one JSON object per line with the\nrecord's index, leaf hash, sealing time, source sequence and the event as\nsealed. It reads, it does not check: run verify for that.\n\nSealed actor e-mails (docs/FORMAT.md §1.6) stay sealed unless --open: then\nthe API opens them for your token (role auditor or security, your tenants;\neach opening is recorded), shown beside the actor (\"(erased)\" once the\nsubject was erased) and as actor_email with --json.")
	storeURL := fs.String("store", "", "store URL or directory")
	from := fs.Uint64("from", 0, "first index to print")
	to := fs.Uint64("to", 0, "print indexes below this (0: to the end)")
	types := fs.String("type", "", "only these event types, comma-separated (e.g. command.executed,approval.granted)")
	tenant := fs.String("tenant", "", "only this tenant")
	session := fs.String("session", "", "only this session id")
	asJSON := fs.Bool("json", false, "JSON lines instead of a table")
	opener := addOpenFlags(fs)
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "store"); err != nil {
			return err
		}
		o := opener()
		store, err := storeurl.OpenExisting(ctx, *storeURL)
		if err != nil {
			return err
		}
		want := map[events.Type]bool{}
		for _, t := range strings.Split(*types, ",") {
			if t = strings.TrimSpace(t); t != "" {
				want[events.Type(t)] = true
			}
		}
		end := *to
		if end == 0 {
			end = ^uint64(0)
		}
		var tw *tabwriter.Writer
		if !*asJSON {
			tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			defer tw.Flush()
			fmt.Fprintln(tw, "INDEX\tSEALED\tTYPE\tTENANT\tACTOR\tSESSION\tWHAT")
		}
		enc := json.NewEncoder(stdout)
		shown := 0
		// Rows wait in pages, so that their sealed e-mails are opened in
		// one request a page.
		type row struct {
			idx uint64
			raw []byte
			r   ledger.Record
			ev  *events.Event
		}
		var page []row
		flush := func() error {
			evs := make([]*events.Event, len(page))
			for i := range page {
				evs[i] = page[i].ev
			}
			if err := o.open(ctx, evs); err != nil {
				return err
			}
			for _, w := range page {
				if *asJSON {
					if err := enc.Encode(struct {
						Index      uint64          `json:"index"`
						Leaf       string          `json:"leaf"`
						Sealed     time.Time       `json:"sealed"`
						Source     uint64          `json:"source,omitempty"`
						Event      json.RawMessage `json:"event"`
						ActorEmail string          `json:"actor_email,omitempty"`
					}{w.idx, ledger.LeafHash(w.raw).Base64(), w.r.Time.UTC(), w.r.Source, w.r.Event, o.email(w.ev)}); err != nil {
						return err
					}
					continue
				}
				sess := ""
				if w.ev.SessionID != "" {
					sess = fmt.Sprintf("%s:%d", w.ev.SessionID, w.ev.SessionSeq)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", w.idx, w.r.Time.UTC().Format("2006-01-02T15:04:05.000Z"), w.ev.Type, w.ev.Tenant,
					o.actor(w.ev), sess, what(json.RawMessage(w.ev.Payload)))
			}
			page = page[:0]
			return nil
		}
		err = ledger.ReadRange(ctx, store.Store, *from, end, func(idx uint64, raw []byte, r ledger.Record) error {
			ev := new(events.Event)
			if err := json.Unmarshal(r.Event, ev); err != nil {
				return fmt.Errorf("record %d: %w", idx, err)
			}
			if len(want) > 0 && !want[ev.Type] || *tenant != "" && ev.Tenant != *tenant || *session != "" && ev.SessionID != *session {
				return nil
			}
			shown++
			page = append(page, row{idx, raw, r, ev})
			if len(page) < 256 {
				return nil
			}
			return flush()
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return fmt.Errorf("log: %w", err)
		}
		if tw != nil && shown == 0 {
			fmt.Fprintln(tw, "(no records match)")
		}
		return nil
	}
}

// what sums up a payload in one line: the statement or request when
// there is one, else the payload itself, cut to fit a terminal.
func what(payload json.RawMessage) string {
	var p map[string]any
	json.Unmarshal(payload, &p)
	var s string
	switch {
	case p["statement"] != nil:
		s = fmt.Sprint(p["statement"])
	case p["method"] != nil && p["path"] != nil:
		s = fmt.Sprintf("%v %v", p["method"], p["path"])
	default:
		s = string(payload)
	}
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 80 {
		s = string(r[:79]) + "…"
	}
	return s
}
