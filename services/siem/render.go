// Package siem renders sealed records for security information and event
// management systems — native JSON, OCSF 1.2.0 and CEF — each rendering
// keeping the record's ledger index, leaf hash and event id, so that any
// alert can later be proven against the signed log. docs/SIEM.md holds the
// mapping tables.
package siem

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
)

// Sealed is one sealed record as a SIEM sees it.
type Sealed struct {
	Index    uint64
	Leaf     ledger.Hash
	SealedAt time.Time
	Event    *events.Event
	// Raw is the event's exact bytes, as sealed.
	Raw []byte
}

// FromRecord parses a sealed record's bytes.
func FromRecord(raw []byte) (Sealed, error) {
	r, err := ledger.ParseRecord(raw)
	if err != nil {
		return Sealed{}, err
	}
	if r.Redacted() {
		return Sealed{}, fmt.Errorf("record %d is redacted", r.Index)
	}
	ev, err := events.Parse(r.Event)
	if err != nil {
		return Sealed{}, fmt.Errorf("record %d: %w", r.Index, err)
	}
	return Sealed{Index: r.Index, Leaf: ledger.LeafHash(raw), SealedAt: r.Time, Event: ev, Raw: r.Event}, nil
}

// Format names a rendering.
type Format string

// The renderings.
const (
	JSON Format = "json"
	OCSF Format = "ocsf"
	CEF  Format = "cef"
)

// Formats lists them.
var Formats = []Format{JSON, OCSF, CEF}

// Render renders s in format f, without a trailing newline.
func Render(f Format, s Sealed) ([]byte, error) {
	switch f {
	case JSON:
		return RenderJSON(s), nil
	case OCSF:
		return RenderOCSF(s)
	case CEF:
		return RenderCEF(s), nil
	}
	return nil, fmt.Errorf("format %q unknown: want json, ocsf or cef", f)
}

// RenderJSON is the native rendering: the ledger's coordinates and the
// event exactly as sealed.
func RenderJSON(s Sealed) []byte {
	return fmt.Appendf(nil, `{"index":%d,"leaf":"%s","sealed_at":"%s","event":%s}`, s.Index, hex.EncodeToString(s.Leaf[:]), s.SealedAt.UTC().Format(time.RFC3339Nano), s.Raw)
}

// payload decodes an event's payload into a map (empty if it is not an
// object).
func payload(ev *events.Event) map[string]any {
	var p map[string]any
	json.Unmarshal(ev.Payload, &p)
	if p == nil {
		p = map[string]any{}
	}
	return p
}

func str(p map[string]any, k string) string {
	if v, ok := p[k].(string); ok {
		return v
	}
	return ""
}

func num(p map[string]any, k string) (int64, bool) {
	if v, ok := p[k].(float64); ok {
		return int64(v), true
	}
	return 0, false
}

// endpoint splits a "host:port" client address into an OCSF network
// endpoint; ok is false when there is none.
func endpoint(addr string) (map[string]any, bool) {
	if addr == "" {
		return nil, false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return map[string]any{"name": addr}, true
	}
	e := map[string]any{"ip": host}
	if p, err := strconv.Atoi(port); err == nil {
		e["port"] = p
	}
	return e, true
}

// severity of each event type: OCSF severity_id (1 Informational, 2 Low,
// 3 Medium, 4 High) and CEF severity (0–10).
func severity(t events.Type) (ocsf int, cef int) {
	switch t {
	case events.LedgerGap:
		return 4, 8
	case events.CommandBlocked, events.LedgerRejected, events.ApprovalDenied, events.AccessDenied:
		return 3, 6
	case events.AuthnFailed, events.ApprovalExpired, events.AccessExpired:
		return 2, 4
	}
	return 1, 2
}

// statement is the event's statement or request line, if any.
func statement(p map[string]any) string { return str(p, "statement") }

// isHTTP tells the HTTP proxy's events from the PostgreSQL proxy's.
func isHTTP(ev *events.Event, p map[string]any) bool {
	return str(p, "protocol") == "http" || ev.Target != nil && ev.Target.Kind == "http" || ev.Source.Kind == "http-proxy"
}

// short cuts s to n bytes on a rune boundary.
func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

var lineBreaks = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ")

// oneLine replaces line breaks, for formats that end a message at one.
func oneLine(s string) string { return lineBreaks.Replace(s) }
