package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/api"
)

// queryEvents asks the API's read path for events: the common questions
// without writing HTTP.
func queryEvents(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "query events [--type T,...] [--tenant T] [--actor SUBJECT [--issuer URL]] [--email E] [--session ID] [--target NAME] [--since TIME] [--until TIME] [--q TEXT] [--match-value VALUE|-] [--limit N] [--all] [--json]",
		"Asks the API (GET /v1/events, role auditor or security) for sealed events in\nledger order and prints them as a table (index, time, type, actor, session\nand sequence, what was done), or as JSON lines with --json: each with its\nledger index, leaf hash and exact record bytes (for proof verify). --all\nfollows every page. The token comes from $AUDITLEDGER_TOKEN or --token-file.\n\n--match-value VALUE finds the events that recorded VALUE although the log\nholds only its keyed digest (a card number, an e-mail address the detectors\nreplaced; docs/FORMAT.md §1.5): the API (POST /v1/events/match) digests it\nunder each tenant's search key within your scope, in the canonical form the\ndigest takes (separators between digit groups, digits of other scripts,\nfull-width and invisible characters, an address's letter case all fold\naway), and prints who, when, on what target and\nwhere in the event. It combines with --tenant, --type, --since, --until,\n--limit and --all. --match-value - reads the value from stdin (one line),\nthe recommended form: a value on the command line stays in shell history\nand is shown by ps. The value goes in the request body, not the URL; the\nsearch is recorded with its digest.")
	af := addAPIFlags(fs)
	filters := map[string]*string{}
	for _, f := range []struct{ name, usage string }{
		{"type", "event types, comma-separated"}, {"tenant", "tenant"}, {"actor", "actor subject"}, {"email", "actor e-mail"},
		{"issuer", "the actor's issuer, with --actor and one --tenant when the subject is personal (an e-mail address: events record it by pseudonym)"},
		{"session", "session id"}, {"target", "target name"}, {"since", "from this time (RFC 3339)"}, {"until", "before this time (RFC 3339)"},
		{"q", "a literal text in the event, case-insensitive"},
	} {
		filters[f.name] = fs.String(f.name, "", f.usage)
	}
	match := fs.String("match-value", "", "events that recorded this value (replaced by a detector), by its keyed digest; - reads the value from stdin (recommended: a value on the command line stays in shell history and ps)")
	limit := fs.Int("limit", 100, "events per page (1 to 1000)")
	all := fs.Bool("all", false, "follow every page")
	asJSON := fs.Bool("json", false, "JSON lines instead of a table")
	return func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
		if *match != "" {
			value := *match
			if value == "-" {
				var err error
				if value, err = readValue(stdin); err != nil {
					return err
				}
			}
			for _, k := range []string{"actor", "issuer", "email", "session", "target", "q"} {
				if *filters[k] != "" {
					return cli.Usagef("query events: --match-value combines with --tenant, --type, --since, --until, --limit and --all, not --%s", k)
				}
			}
			return matchEvents(ctx, af, value, filters, *limit, *all, *asJSON, stdout)
		}
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

// readValue is the value of --match-value -: one line of stdin, its
// line feed (or CR LF) dropped. The value is never quoted in an error.
func readValue(stdin io.Reader) (string, error) {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	b, err := io.ReadAll(io.LimitReader(stdin, api.MaxMatchValue+3))
	if err != nil {
		return "", fmt.Errorf("query events: reading --match-value from stdin: %w", err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	switch {
	case len(b) > api.MaxMatchValue+2:
		return "", cli.Usagef("query events: --match-value -: the value on stdin is longer than %d bytes", api.MaxMatchValue)
	case strings.ContainsAny(v, "\r\n"):
		return "", cli.Usagef("query events: --match-value -: stdin holds more than one line; give one value, on one line")
	case strings.TrimSpace(v) == "":
		return "", cli.Usagef("query events: --match-value -: stdin holds no value (echo VALUE | auditledger query events --match-value -)")
	}
	return v, nil
}

// matchEvents is query events --match-value: the events that recorded a
// value, with who, when, on what target and where in the event.
func matchEvents(ctx context.Context, af apiFlags, value string, filters map[string]*string, limit int, all, asJSON bool, stdout io.Writer) error {
	req := api.MatchRequest{Value: value, Tenant: *filters["tenant"], Type: *filters["type"], Limit: limit}
	for _, p := range []struct {
		flag string
		t    **time.Time
	}{{"since", &req.Since}, {"until", &req.Until}} {
		if v := *filters[p.flag]; v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return cli.Usagef("query events: --%s %q is not an RFC 3339 time (e.g. 2026-11-27T10:00:00Z)", p.flag, v)
			}
			*p.t = &t
		}
	}
	var tw *tabwriter.Writer
	enc := json.NewEncoder(stdout)
	if !asJSON {
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "INDEX\tTIME\tTYPE\tTENANT\tACTOR\tTARGET\tSESSION\tFOUND AT\tWHAT")
	}
	shown := 0
	for {
		var page api.MatchPage
		if err := af.call(ctx, "POST", "/v1/events/match", req, &page); err != nil {
			return fmt.Errorf("query events: %w", err)
		}
		for _, m := range page.Events {
			shown++
			if asJSON {
				if err := enc.Encode(m); err != nil {
					return err
				}
				continue
			}
			var ev events.Event
			if err := json.Unmarshal(m.Event, &ev); err != nil {
				return fmt.Errorf("event %d: %w", m.Index, err)
			}
			sess, target := "", ""
			if ev.SessionID != "" {
				sess = fmt.Sprintf("%s:%d", ev.SessionID, ev.SessionSeq)
			}
			if ev.Target != nil {
				target = strings.Trim(ev.Target.Kind+":"+ev.Target.Name, ":")
			}
			var at []string
			for _, p := range m.Matched {
				at = append(at, p.Path+" ("+p.Detector+")")
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Index, ev.Time.UTC().Format("2006-01-02T15:04:05Z"), ev.Type, ev.Tenant,
				ev.Actor.Subject, target, sess, strings.Join(at, ", "), what(json.RawMessage(ev.Payload)))
		}
		if !all || page.Next == nil {
			break
		}
		req.After = page.Next
	}
	if tw == nil {
		return nil
	}
	if shown == 0 {
		fmt.Fprintln(tw, "(no event recorded this value)")
	}
	return tw.Flush()
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
