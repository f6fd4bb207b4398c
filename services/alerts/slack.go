package alerts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditledger/auditledger/events"
)

// Slack's limits on an incoming webhook's message, in characters.
const (
	MaxText        = 40000 // the message's text
	MaxSectionText = 3000  // one section block's text
	maxStatement   = 1500  // a statement quoted in an alert, before escaping
)

// Escape escapes the three characters Slack's text reads as control
// (&, <, >). It alone does not make a value inert (newlines, backticks,
// * _ ~ and bare URLs stay live): Slack renders values with Inert.
func Escape(s string) string {
	return escaper.Replace(s)
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Fit cuts escaped text to at most max characters, ending it in "…" when
// cut: never inside an escape (&amp; &lt; &gt;) nor inside a UTF-8
// character. Invalid UTF-8 counts one character a byte.
func Fit(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	if max < 1 {
		return ""
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); {
		size := 1
		if s[i] == '&' {
			for _, e := range []string{"&amp;", "&lt;", "&gt;"} {
				if strings.HasPrefix(s[i:], e) {
					size = len(e)
				}
			}
		}
		if size == 1 {
			_, size = utf8.DecodeRuneInString(s[i:])
		}
		w := 1
		if size > 1 && s[i] == '&' {
			w = size // an escape counts as what is sent
		}
		if n+w > max-1 {
			break
		}
		b.WriteString(s[i : i+size])
		n += w
		i += size
	}
	b.WriteString("…")
	return b.String()
}

// Cut cuts raw text to at most max characters, ending in "…" when cut,
// never inside a UTF-8 character.
func Cut(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// Decision tells a reviewer how to decide a pending request.
type Decision struct {
	ID string `json:"id"`
	// API is the call: method and path (and the base URL when known).
	API string `json:"api"`
	// CLI is the command.
	CLI string `json:"cli"`
}

// decisions are the types that hold something pending a reviewer, and
// how each is decided.
var decisions = map[events.Type]func(ev *events.Event, api string) *Decision{
	events.ApprovalRequested: func(ev *events.Event, api string) *Decision {
		id, ok := Field(ev, "payload.approval_id")
		if !ok {
			return nil
		}
		cli := "auditledger approvals approve " + id
		if sum, ok := Field(ev, "payload.statement_sha256"); ok && len(sum) >= 12 {
			cli += " --sha256 " + sum[:12]
		}
		return &Decision{ID: id,
			API: "POST " + api + "/v1/approvals/" + id + "/approve (or /deny) with {\"reason\": \"…\"}",
			CLI: cli + " --reason \"…\" (or: auditledger approvals deny " + id + " --reason \"…\")"}
	},
	// The broker records the request's id as access_id
	// (services/access.Event, docs/FORMAT.md §1.1).
	events.AccessRequested: func(ev *events.Event, api string) *Decision {
		id, ok := Field(ev, "payload.access_id")
		if !ok {
			return nil
		}
		if bg, _ := Field(ev, "payload.break_glass"); bg == "true" {
			return nil // granted at once: nothing waits for a reviewer
		}
		return &Decision{ID: id,
			API: "POST " + api + "/v1/access-requests/" + id + "/approve (or /deny) with {\"reason\": \"…\"}",
			CLI: "auditledger access approve " + id + " --reason \"…\" (or: auditledger access deny " + id + " --reason \"…\")"}
	},
}

// decision is how a reviewer decides what ev asks, or nil.
func decision(ev *events.Event, api string) *Decision {
	if f := decisions[ev.Type]; f != nil {
		return f(ev, strings.TrimSuffix(api, "/"))
	}
	return nil
}

// Detail names the payload members an alert shows, in this order, when
// the event has them: what the policy said, what was run, where from.
// Each has its own budget (maxField); the fields go in section blocks of
// as many as fit whole, and the statement, the longest, comes last in a
// block of its own, so none crowds out the others. The access members
// are those the access broker records (services/access.Event): which
// request, the window asked for or granted, and break-glass.
var Detail = []string{"rule", "reason", "kind", "method", "path", "user", "approval_id",
	"access_id", "break_glass", "start", "duration_seconds", "not_before", "not_after", "expires_at", "statement"}

// maxField is the characters one detail value may take once escaped:
// nine of them, with their names, fit one section block.
const maxField = 280

// SlackMessage is the body posted to a Slack-compatible incoming webhook.
// Mrkdwn is false: the text, what notifications show, is not formatted.
type SlackMessage struct {
	Text   string       `json:"text"`
	Mrkdwn bool         `json:"mrkdwn"`
	Blocks []SlackBlock `json:"blocks"`
}

// SlackBlock is a section or context block.
type SlackBlock struct {
	Type     string       `json:"type"`
	Text     *SlackText   `json:"text,omitempty"`
	Elements []*SlackText `json:"elements,omitempty"`
}

// SlackText is a mrkdwn text object.
type SlackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func mrkdwn(s string) *SlackText { return &SlackText{Type: "mrkdwn", Text: Fit(s, MaxSectionText)} }

// codeSafe makes text safe inside a Slack code span (or, multiline, a
// code block), where Slack applies no formatting: & < > escaped (no
// link, no mention), no backtick (shown as ˋ, so the span cannot be
// closed early), control characters shown as their Unicode pictures (a
// newline as ␤, unless multiline), line and paragraph separators as ␤,
// bidirectional overrides and invalid UTF-8 as �.
func codeSafe(s string, multiline bool) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '`':
			b.WriteRune('ˋ')
		case multiline && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r < 0x20:
			b.WriteRune(0x2400 + r)
		case r == 0x7f:
			b.WriteRune('␡')
		case r == 0x85 || r == 0x2028 || r == 0x2029:
			b.WriteRune('␤')
		case r >= 0x80 && r < 0xa0, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == utf8.RuneError:
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// defang breaks every URL scheme ("://" shown as "[:]//"), so no value
// is a link.
func defang(s string) string { return strings.ReplaceAll(s, "://", "[:]//") }

// Inert renders an event's value as Slack shows it: in a code span,
// safe (codeSafe), no URL (defang), cut to max characters. Only the
// alerter's own text is ever formatted.
func Inert(v string, max int) string {
	if v == "" {
		return "(empty)"
	}
	return "`" + Fit(defang(codeSafe(v, false)), max) + "`"
}

// Slack renders a for a Slack-compatible incoming webhook: text (what
// notifications show) and blocks. Every value an event carries is shown
// inert (Inert: in a code span, on one line, no link); only the
// alerter's own words are formatted. Each value has its own budget, and
// a block too long is cut, never dropped.
func Slack(a *Alert, api string) ([]byte, error) {
	ev, r := a.Event, a.Rule
	where := Inert(ev.Tenant, 100)
	if ev.Target != nil {
		where += " on " + Inert(strings.TrimSpace(ev.Target.Kind+" "+ev.Target.Name), 200)
	}
	sev := strings.ToUpper(r.Severity)
	title := codeSafe(r.Title, false) // the operator's words, on one line
	text := fmt.Sprintf("[%s] %s: %s in %s (rule %s, ledger index %d)", sev, title, Inert(string(ev.Type), 100), where, Inert(r.ID, 64), a.Index)
	head := fmt.Sprintf("*%s* · severity *%s*\n*Event:* %s in %s, %s\n*Actor:* %s (%s, %s)",
		title, codeSafe(r.Severity, false), Inert(string(ev.Type), 100), where, ev.Time.UTC().Format(time.RFC3339),
		Inert(ev.Actor.Subject, 200), Inert(ev.Actor.Issuer, 200), Inert(string(ev.Actor.Kind), 50))
	if len(ev.Actor.Groups) > 0 {
		head += " · groups " + Inert(strings.Join(ev.Actor.Groups, ", "), 400)
	}
	blocks := []SlackBlock{{Type: "section", Text: mrkdwn(head)}}
	var detail []string
	for _, name := range Detail {
		v, ok := Field(ev, "payload."+name)
		if !ok || v == "" {
			continue
		}
		if name == "statement" {
			if len(detail) > 0 {
				blocks = append(blocks, SlackBlock{Type: "section", Text: mrkdwn(strings.Join(detail, "\n"))})
				detail = nil
			}
			// A code block: lines kept, no backtick to close it.
			st := Fit(defang(codeSafe(Cut(v, maxStatement), true)), MaxSectionText-len("*statement:*\n``````"))
			blocks = append(blocks, SlackBlock{Type: "section", Text: mrkdwn("*statement:*\n```" + st + "```")})
			continue
		}
		line := fmt.Sprintf("*%s:* %s", name, Inert(v, maxField))
		if len(detail) > 0 && utf8.RuneCountInString(strings.Join(detail, "\n")+"\n"+line) > MaxSectionText {
			blocks = append(blocks, SlackBlock{Type: "section", Text: mrkdwn(strings.Join(detail, "\n"))})
			detail = nil
		}
		detail = append(detail, line)
	}
	if len(detail) > 0 {
		blocks = append(blocks, SlackBlock{Type: "section", Text: mrkdwn(strings.Join(detail, "\n"))})
	}
	if a.Rate != nil {
		what := fmt.Sprintf("*Rate:* %d matching events within %s", a.Rate.Count, a.Rate.Within)
		switch {
		case a.Rate.Overflow:
			what += fmt.Sprintf(" with %s of any value (more than %d values at once: counted together)", Inert(a.Rate.Key, 100), a.Rate.Cap)
		case a.Rate.Key != "":
			what += fmt.Sprintf(" with %s = %s", Inert(a.Rate.Key, 100), Inert(a.Rate.Value, 200))
		}
		blocks = append(blocks, SlackBlock{Type: "section", Text: mrkdwn(what)})
	}
	if d := decision(ev, api); d != nil {
		// The alerter's own command and call; the id in them is the
		// event's, so it is made inert too, the API's base URL kept.
		// An id past 128 characters is shown cut (ending in …, so the
		// command visibly is not whole).
		if id := Cut(d.ID, 128); id != d.ID {
			d = &Decision{ID: id, API: strings.ReplaceAll(d.API, d.ID, id), CLI: strings.ReplaceAll(d.CLI, d.ID, id)}
		}
		base := strings.TrimSuffix(api, "/")
		call := defang(codeSafe(d.API, false))
		if rest, ok := strings.CutPrefix(d.API, "POST "+base); ok {
			call = "POST " + codeSafe(base, false) + defang(codeSafe(rest, false))
		}
		cli := defang(codeSafe(d.CLI, false))
		blocks = append(blocks, SlackBlock{Type: "section", Text: mrkdwn(fmt.Sprintf("*To decide:*\n`%s`\n`%s`", cli, call))})
		text += " — to decide: `" + cli + "`"
	}
	ctx := fmt.Sprintf("auditledger %s · event %s · sealed %s", Inert(a.ID, 100), Inert(ev.ID, 200), a.SealedAt.UTC().Format(time.RFC3339Nano))
	if a.Suppressed > 0 {
		ctx += fmt.Sprintf(" · %d earlier alerts of this rule held back by its limit", a.Suppressed)
	}
	blocks = append(blocks, SlackBlock{Type: "context", Elements: []*SlackText{mrkdwn(ctx)}})
	// Not HTML-escaped by the encoder: the text is escaped for Slack
	// already, and \u0026lt; would only be harder to read.
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(SlackMessage{Text: Fit(text, MaxText), Blocks: slices.Clip(blocks)}); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}
