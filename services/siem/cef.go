package siem

import (
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/auditledger/auditledger/events"
)

// CEFVersion is the product version in CEF headers.
var CEFVersion = "1"

// RenderCEF renders s as one ArcSight Common Event Format line:
//
//	CEF:0|auditledger|auditledger|<version>|<event type>|<summary>|<severity>|<extensions>
//
// The ledger's coordinates are in cn1 (index), cs1 (leaf hash) and
// externalId (event id); docs/SIEM.md lists every extension.
func RenderCEF(s Sealed) []byte {
	ev := s.Event
	p := payload(ev)
	_, sev := severity(ev.Type)
	var b strings.Builder
	b.WriteString("CEF:0|auditledger|auditledger|")
	b.WriteString(cefHeader(CEFVersion))
	b.WriteByte('|')
	b.WriteString(cefHeader(string(ev.Type)))
	b.WriteByte('|')
	b.WriteString(cefHeader(short(oneLine(summary(ev, p)), 512)))
	b.WriteByte('|')
	b.WriteString(strconv.Itoa(sev))
	b.WriteByte('|')
	first := true
	ext := func(k, v string) {
		if v == "" {
			return
		}
		if !first {
			b.WriteByte(' ')
		}
		first = false
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(cefValue(v))
	}
	ext("rt", strconv.FormatInt(ev.Time.UnixMilli(), 10))
	ext("externalId", ev.ID)
	ext("cn1Label", "ledgerIndex")
	ext("cn1", strconv.FormatUint(s.Index, 10))
	ext("cs1Label", "ledgerLeaf")
	ext("cs1", hex.EncodeToString(s.Leaf[:]))
	ext("cs2Label", "tenant")
	ext("cs2", ev.Tenant)
	ext("cs3Label", "sessionId")
	ext("cs3", ev.SessionID)
	ext("deviceCustomDate1Label", "sealedAt")
	ext("deviceCustomDate1", strconv.FormatInt(s.SealedAt.UnixMilli(), 10))
	ext("suser", ev.Actor.Subject)
	ext("suid", ev.Actor.Issuer)
	if ev.Actor.Email != "" {
		ext("cs4Label", "actorEmail")
		ext("cs4", ev.Actor.Email)
	}
	ext("deviceProcessName", ev.Source.Kind)
	ext("dvchost", ev.Source.Instance)
	if ev.Target != nil {
		ext("dhost", ev.Target.Host)
		ext("destinationServiceName", ev.Target.Name)
	}
	if host, port, ok := strings.Cut(str(p, "client_addr"), ":"); ok {
		ext("src", host)
		ext("spt", port)
	}
	if st := statement(p); st != "" {
		ext("request", short(oneLine(st), 1023))
	}
	if ref, ok := p["policy"].(map[string]any); ok {
		// The policy that judged the event (docs/FORMAT.md §1.3).
		ext("cs6Label", "policySha256")
		ext("cs6", str(ref, "sha256"))
	}
	switch ev.Type {
	case events.CommandBlocked:
		ext("act", "blocked")
		ext("reason", str(p, "reason"))
		ext("cs5Label", "rule")
		ext("cs5", str(p, "rule"))
	case events.MaskApplied:
		ext("act", "masked")
		ext("cs5Label", "rule")
		ext("cs5", str(p, "rule_id"))
	case events.ApprovalGranted, events.ApprovalDenied, events.ApprovalExpired, events.ApprovalRequested:
		ext("act", strings.TrimPrefix(string(ev.Type), "approval."))
		ext("cs5Label", "approvalId")
		ext("cs5", str(p, "approval_id"))
		ext("reason", str(p, "reason"))
	case events.AccessRequested, events.AccessApproved, events.AccessDenied, events.AccessExpired:
		ext("act", strings.TrimPrefix(string(ev.Type), "access."))
		ext("cs5Label", "accessId")
		ext("cs5", str(p, "access_id"))
		ext("reason", str(p, "reason"))
	case events.AuthnFailed:
		ext("outcome", "failure")
		ext("reason", str(p, "reason"))
	}
	if ev.Type == events.ResponseDigest {
		if rows, ok := num(p, "rows"); ok {
			ext("cnt", strconv.FormatInt(rows, 10))
		}
		if code, ok := num(p, "status"); ok {
			ext("outcome", strconv.FormatInt(code, 10))
		}
	}
	return []byte(b.String())
}

var (
	cefHeaderEscapes = strings.NewReplacer(`\`, `\\`, `|`, `\|`, "\n", " ", "\r", " ")
	cefValueEscapes  = strings.NewReplacer(`\`, `\\`, `=`, `\=`, "\r\n", `\n`, "\n", `\n`, "\r", `\r`)
)

// cefHeader escapes a header field: backslash and pipe.
func cefHeader(s string) string { return cefHeaderEscapes.Replace(s) }

// cefValue escapes an extension value: backslash, equals and line breaks.
func cefValue(s string) string { return cefValueEscapes.Replace(s) }
