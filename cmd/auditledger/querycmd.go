package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/api"
)

// queryEvents asks the API's read path for events: the common questions
// without writing HTTP.
func queryEvents(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "query events [--type T,...] [--tenant T] [--actor SUBJECT] [--email E] [--session ID] [--target NAME] [--since TIME] [--until TIME] [--q TEXT] [--limit N] [--all] [--json]",
		"Asks the API (GET /v1/events, role auditor or security) for sealed events in\nledger order and prints them as a table (index, time, type, actor, session\nand sequence, what was done), or as JSON lines with --json: each with its\nledger index, leaf hash and exact record bytes (for proof verify). --all\nfollows every page. The token comes from $AUDITLEDGER_TOKEN or --token-file.")
	af := addAPIFlags(fs)
	filters := map[string]*string{}
	for _, f := range []struct{ name, usage string }{
		{"type", "event types, comma-separated"}, {"tenant", "tenant"}, {"actor", "actor subject"}, {"email", "actor e-mail"},
		{"session", "session id"}, {"target", "target name"}, {"since", "from this time (RFC 3339)"}, {"until", "before this time (RFC 3339)"},
		{"q", "a literal text in the event, case-insensitive"},
	} {
		filters[f.name] = fs.String(f.name, "", f.usage)
	}
	limit := fs.Int("limit", 100, "events per page (1 to 1000)")
	all := fs.Bool("all", false, "follow every page")
	asJSON := fs.Bool("json", false, "JSON lines instead of a table")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		v := url.Values{}
		for k, p := range filters {
			if *p != "" {
				v.Set(k, *p)
			}
		}
		v.Set("limit", strconv.Itoa(*limit))
		out := newEventPrinter(stdout, *asJSON)
		for {
			var page api.EventPage
			if err := af.call(ctx, "GET", "/v1/events?"+v.Encode(), nil, &page); err != nil {
				return fmt.Errorf("query events: %w", err)
			}
			for _, e := range page.Events {
				if err := out.print(e); err != nil {
					return err
				}
			}
			if !*all || page.Next == nil {
				return out.done()
			}
			v.Set("after", strconv.FormatUint(*page.Next, 10))
		}
	}
}

// querySession prints one session's timeline and the sequence numbers
// missing from it.
func querySession(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "query session ID --tenant T [--json]",
		"Asks the API (GET /v1/sessions/{id}) for a session's timeline: its events in\nsequence order, as a table or JSON lines, then the sequence numbers missing\nfrom it — a gap is a record that never reached the ledger.")
	af := addAPIFlags(fs)
	tenant := fs.String("tenant", "", "the session's tenant")
	asJSON := fs.Bool("json", false, "JSON lines instead of a table")
	c.Args = cli.AtMostOne
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		var id string
		if len(args) == 1 {
			id = args[0]
		}
		if id == "" {
			return fmt.Errorf("query session: give the session id first: auditledger query session ID --tenant T")
		}
		if err := cli.Required(fs, "tenant"); err != nil {
			return err
		}
		var tl api.Timeline
		if err := af.call(ctx, "GET", "/v1/sessions/"+url.PathEscape(id)+"?tenant="+url.QueryEscape(*tenant), nil, &tl); err != nil {
			return fmt.Errorf("query session: %w", err)
		}
		out := newEventPrinter(stdout, *asJSON)
		for _, e := range tl.Events {
			if err := out.print(e); err != nil {
				return err
			}
		}
		if err := out.done(); err != nil {
			return err
		}
		for _, g := range tl.Gaps {
			if *asJSON {
				json.NewEncoder(stdout).Encode(map[string]any{"gap": g})
			} else if g.From == g.To {
				fmt.Fprintf(stdout, "missing: session_seq %d\n", g.From)
			} else {
				fmt.Fprintf(stdout, "missing: session_seq %d to %d\n", g.From, g.To)
			}
		}
		return nil
	}
}

type eventPrinter struct {
	tw    *tabwriter.Writer
	enc   *json.Encoder
	shown int
}

func newEventPrinter(w io.Writer, asJSON bool) *eventPrinter {
	if asJSON {
		return &eventPrinter{enc: json.NewEncoder(w)}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tTIME\tTYPE\tTENANT\tACTOR\tSESSION\tWHAT")
	return &eventPrinter{tw: tw}
}

func (p *eventPrinter) print(e api.EventResult) error {
	p.shown++
	if p.enc != nil {
		return p.enc.Encode(e)
	}
	var ev events.Event
	if err := json.Unmarshal(e.Event, &ev); err != nil {
		return fmt.Errorf("event %d: %w", e.Index, err)
	}
	sess := ""
	if ev.SessionID != "" {
		sess = fmt.Sprintf("%s:%d", ev.SessionID, ev.SessionSeq)
	}
	actor := ev.Actor.Subject
	if e.ActorEmail != "" { // opened by the API from the sealed field
		actor += " <" + e.ActorEmail + ">"
	}
	fmt.Fprintf(p.tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Index, ev.Time.UTC().Format("2006-01-02T15:04:05Z"), ev.Type, ev.Tenant,
		actor, sess, what(json.RawMessage(ev.Payload)))
	return nil
}

func (p *eventPrinter) done() error {
	if p.tw == nil {
		return nil
	}
	if p.shown == 0 {
		fmt.Fprintln(p.tw, "(no events match)")
	}
	return p.tw.Flush()
}
