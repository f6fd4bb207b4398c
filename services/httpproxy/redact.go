package httpproxy

import (
	"net/url"
	"strings"

	"github.com/auditledger/auditledger/services/gateway"
)

// recorded is what the proxy records of a request's path, query and body,
// with every value the built-in detectors find replaced: in the path and
// query after percent-decoding (jane%40example.com is an address too),
// and in the body as text. The body is never recorded, only its keyed
// digest (body_hmac, over the body as received: docs/FORMAT.md §1.5);
// what the detectors find in it is listed under "/body_hmac", with the
// values for the core to record their search digests.
type recorded struct {
	path, query string // decoded path; query as sent, each scrubbed part decoded
	target      string // the request target as recorded: path and query
	redactions  []gateway.Redaction
}

func redactRequest(u *url.URL, body []byte) recorded {
	rec := recorded{path: u.Path, query: u.RawQuery, target: u.RequestURI()}
	var pf, qf, bf []gateway.Finding
	p, pc := gateway.ScrubFound(u.Path, &pf)
	q, qc := redactQuery(u.RawQuery, &qf)
	if pc != nil || qc != nil {
		rec.path, rec.query = p, q
		rec.target = p
		if pc == nil {
			rec.target = u.EscapedPath()
		}
		if q != "" {
			rec.target += "?" + q
		}
		rec.redactions = append(rec.redactions, gateway.Found("/path", pf)...)
		rec.redactions = append(rec.redactions, gateway.Found("/query", qf)...)
	}
	if len(body) > 0 {
		gateway.ScrubFound(string(body), &bf)
		rec.redactions = append(rec.redactions, gateway.Found("/body_hmac", bf)...)
	}
	rec.redactions = append(rec.redactions, gateway.Found("/statement", append(pf, qf...))...)
	return rec
}

// redactQuery scrubs each name and value of a query string, decoded; a
// part with nothing found stays as it was sent.
func redactQuery(raw string, found *[]gateway.Finding) (string, map[string]int) {
	if raw == "" {
		return raw, nil
	}
	var all map[string]int
	parts := strings.Split(raw, "&")
	for i, part := range parts {
		k, v, eq := strings.Cut(part, "=")
		ks, kc := scrubQueryText(k, found)
		vs, vc := scrubQueryText(v, found)
		if kc == nil && vc == nil {
			continue
		}
		if all == nil {
			all = map[string]int{}
		}
		for _, c := range []map[string]int{kc, vc} {
			for d, n := range c {
				all[d] += n
			}
		}
		parts[i] = ks
		if eq {
			parts[i] += "=" + vs
		}
	}
	return strings.Join(parts, "&"), all
}

func scrubQueryText(s string, found *[]gateway.Finding) (string, map[string]int) {
	if d, err := url.QueryUnescape(s); err == nil {
		s = d
	}
	return gateway.ScrubFound(s, found)
}
