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
// (&, <, >), so a value can neither open a link nor mention @channel.
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
	"access.requested": func(ev *events.Event, api string) *Decision {
		id, ok := Field(ev, "payload.request_id")
		if !ok {
			return nil
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
var Detail = []string{"rule", "reason", "kind", "statement", "method", "path", "user", "approval_id", "request_id", "expires_at"}

// SlackMessage is the body posted to a Slack-compatible incoming webhook.
type SlackMessage struct {
	Text   string       `json:"text"`
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

// Slack renders a for a Slack-compatible incoming webhook: text (what
// notifications show) and blocks. Every value is escaped before it is
// cut; a block too long is cut, never dropped.
func Slack(a *Alert, api string) ([]byte, error) {
	ev, r := a.Event, a.Rule
	e := Escape
	where := e(ev.Tenant)
	if ev.Target != nil {
		where += " on " + e(strings.TrimSpace(ev.Target.Kind+" "+ev.Target.Name))
	}
	sev := strings.ToUpper(r.Severity)
	text := fmt.Sprintf("[%s] %s: %s in %s (rule %s, ledger index %d)", sev, e(r.Title), e(string(ev.Type)), where, e(r.ID), a.Index)
	head := fmt.Sprintf("*%s* · severity *%s*\n*Event:* `%s` in %s, %s\n*Actor:* %s (%s, %s)",
		e(r.Title), e(r.Severity), e(string(ev.Type)), where, ev.Time.UTC().Format(time.RFC3339), e(ev.Actor.Subject), e(ev.Actor.Issuer), e(string(ev.Actor.Kind)))
	if len(ev.Actor.Groups) > 0 {
		head += " · groups " + e(strings.Join(ev.Actor.Groups, ", "))
	}
	blocks := []SlackBlock{{Type: "section", Text: mrkdwn(head)}}
	var detail []string
	for _, name := range Detail {
		v, ok := Field(ev, "payload."+name)
		if !ok || v == "" {
			continue
		}
		if name == "statement" {
			detail = append(detail, "*statement:*\n```"+e(strings.ReplaceAll(Cut(v, maxStatement), "```", "'''"))+"```")
			continue
		}
		detail = append(detail, fmt.Sprintf("*%s:* %s", name, e(Cut(v, 500))))
	}
	if len(detail) > 0 {
		blocks = append(blocks, SlackBlock{Type: "section", Text: mrkdwn(strings.Join(detail, "\n"))})
	}
	if a.Rate != nil {
		what := fmt.Sprintf("*Rate:* %d matching events within %s", a.Rate.Count, a.Rate.Within)
		if a.Rate.Key != "" {
			what += fmt.Sprintf(" with %s = `%s`", e(a.Rate.Key), e(Cut(a.Rate.Value, 200)))
		}
		blocks = append(blocks, SlackBlock{Type: "section", Text: mrkdwn(what)})
	}
	if d := decision(ev, api); d != nil {
		blocks = append(blocks, SlackBlock{Type: "section", Text: mrkdwn(fmt.Sprintf("*To decide:*\n`%s`\n`%s`", e(d.CLI), e(d.API)))})
		text += " — to decide: " + e(d.CLI)
	}
	ctx := fmt.Sprintf("auditledger %s · event %s · sealed %s", e(a.ID), e(ev.ID), a.SealedAt.UTC().Format(time.RFC3339Nano))
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
