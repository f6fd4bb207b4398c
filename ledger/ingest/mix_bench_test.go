package ingest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events/detect"
)

// MixProducers are the gateways MixEvent's events come from: a batch
// message holds one producer's events.
var MixProducers = []string{"pg-1", "ssh-1", "http-1"}

// MixEvent is event i of producer p (an index of MixProducers), as the
// gateways record them with the detectors on (docs/FORMAT.md §1): the
// PostgreSQL gateway's statements (simple and extended protocol, with
// keyed digests of bind parameters) each followed by its response digest;
// the SSH gateway's exec commands and session.output chunks of terminal
// text (base64, up to about 1.5 KiB) and typed input; the HTTP gateway's
// requests and response digests. Every actor carries a sealed e-mail
// pseudonym. None holds a value a detector finds: the writer seals all.
func MixEvent(p, i int) []byte {
	at := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC).Add(time.Duration(i) * 3 * time.Millisecond)
	user := i % 97
	sum := sha256.Sum256([]byte{byte(user)})
	// Ids as the gateway core makes them (detect.RandomHex): the
	// session's 16 hex digits, ending in a letter and holding nothing a
	// detector finds, "." and the event's place in it.
	var session string
	for k := 0; ; k++ {
		sid := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%d", MixProducers[p], i/50, k))
		session = hex.EncodeToString(sid[:8])
		if _, c := detect.Scrub(session + ".1"); session[15] > '9' && c == nil {
			break
		}
	}
	seq := i%50 + 1
	var typ, source, target, payload string
	digest := func(what string) string {
		d := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%s", MixProducers[p], i, what))
		return hex.EncodeToString(d[:])
	}
	prev := fmt.Sprintf("%s.%d", session, max(1, seq-1))
	switch p {
	case 0:
		source = `{"kind":"postgres-proxy","instance":"pg-1","version":"0.9.0"}`
		target = `{"kind":"postgres","name":"orders","host":"db1.internal:5432","database":"orders"}`
		switch i % 4 {
		case 0:
			typ = "command.executed"
			payload = fmt.Sprintf(`{"protocol":"simple","statement":"SELECT id, status, total, created_at FROM orders WHERE customer_id = %d AND created_at > now() - interval '7 days' ORDER BY created_at DESC LIMIT 50","statement_sha256":"%s","kind":"SELECT"}`, 4000+i%5000, digest("statement"))
		case 2:
			typ = "command.executed"
			payload = fmt.Sprintf(`{"protocol":"extended","statement":"UPDATE orders SET status = $1, updated_at = now() WHERE id = $2 RETURNING id","statement_sha256":"%s","kind":"UPDATE","parameters":{"count":2,"recorded":"hash","values":["hmac:%s","hmac:%s"]}}`, digest("statement"), digest("p1"), digest("p2"))
		default:
			typ = "response.digest"
			payload = fmt.Sprintf(`{"command_id":"%s","command_tag":"SELECT %d","rows":%d,"bytes":%d,"hmac":"hmac:%s"}`, prev, i%50, i%50, 120*(i%50)+17, digest("rows"))
		}
	case 1:
		source = `{"kind":"ssh-gateway","instance":"ssh-1","version":"0.9.0"}`
		target = `{"kind":"ssh","name":"web-3","host":"web-3.internal:22"}`
		switch i % 8 {
		case 0:
			typ = "command.executed"
			payload = `{"protocol":"ssh","kind":"exec","statement":"journalctl -u nginx --since '10 min ago' --no-pager | tail -n 40","programs":["journalctl","tail"]}`
		case 1:
			typ = "session.output"
			data := base64.StdEncoding.EncodeToString([]byte("tail -n 40 /var/log/nginx/error.log\r\n"))
			payload = fmt.Sprintf(`{"stream":"stdin","offset":%d,"bytes":37,"data":"%s","sha256":"%s"}`, 37*(i/8), data, digest("stdin"))
		default:
			typ = "session.output"
			var text strings.Builder
			for l := range 6 + i%8 {
				fmt.Fprintf(&text, "Dec 07 05:%02d:%02d web-3 nginx[%d]: 10.0.%d.%d - - \"GET /api/v1/orders/%d HTTP/1.1\" 200 %d \"-\" \"curl/8.5.0\"\r\n",
					(i/60)%60, i%60, 1200+l, l, i%250, 4000+i%5000+l, 300+17*l)
			}
			raw := text.String()
			data := base64.StdEncoding.EncodeToString([]byte(raw))
			rs := sha256.Sum256([]byte(raw))
			payload = fmt.Sprintf(`{"stream":"stdout","offset":%d,"bytes":%d,"data":"%s","sha256":"%s"}`, 1500*(i/8), len(raw), data, hex.EncodeToString(rs[:]))
		}
	default:
		source = `{"kind":"http-proxy","instance":"http-1","version":"0.9.0"}`
		target = `{"kind":"http","name":"orders-api","host":"orders-api.internal:8443"}`
		if i%2 == 0 {
			typ = "command.executed"
			payload = fmt.Sprintf(`{"protocol":"http","method":"GET","path":"/api/v1/customers/%d/orders","query":"limit=50&sort=-created_at&status=open","statement":"GET /api/v1/customers/%d/orders?limit=50&sort=-created_at&status=open","statement_sha256":"%s","body_bytes":0,"body_hmac":"hmac:%s","content_type":"","client_addr":"10.0.3.17:%d"}`,
				4000+i%5000, 4000+i%5000, digest("statement"), digest("body"), 40000+i%20000)
		} else {
			typ = "response.digest"
			payload = fmt.Sprintf(`{"command_id":"%s","status":200,"bytes":%d,"hmac":"hmac:%s","content_type":"application/json"}`, prev, 900+37*(i%300), digest("response"))
		}
	}
	return fmt.Appendf(nil, `{"version":1,"id":"%s.%d","type":"%s","time":"%s","tenant":"acme","source":%s,"actor":{"issuer":"https://idp.example","subject":"user-%d","email":"pii1.%x.%s","groups":["dba","oncall"],"kind":"human"},"session_id":"%s","session_seq":%d,"target":%s,"payload":%s}`,
		session, seq, typ, at.Format(time.RFC3339Nano), source, user, sum[:16], strings.Repeat("q8Zt-", 8), session, seq, target, payload)
}
