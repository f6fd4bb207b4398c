package httpproxy

import (
	"net/url"
	"strings"

	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/services/gateway"
)

// recorded is what the proxy records of a request's path, query and body,
// with every value the built-in detectors find replaced: in the path and
// query after percent-decoding (jane%40example.com is an address too),
// and in the body as text. The body is never recorded, only its digest,
// which is over the scrubbed body so that it cannot be used to guess a
// replaced value back.
type recorded struct {
	path, query string // decoded path; query as sent, each scrubbed part decoded
	target      string // the request target as recorded: path and query
	body        []byte // the body with detector matches replaced
	redactions  []gateway.Redaction
}

func redactRequest(u *url.URL, body []byte) recorded {
	rec := recorded{path: u.Path, query: u.RawQuery, target: u.RequestURI(), body: body}
	total := map[string]int{}
	add := func(counts map[string]int) {
		for d, n := range counts {
			total[d] += n
		}
	}
	p, pc := detect.Scrub(u.Path)
	q, qc := redactQuery(u.RawQuery)
	if pc != nil || qc != nil {
		rec.path, rec.query = p, q
		rec.target = p
		if pc == nil {
			rec.target = u.EscapedPath()
		}
		if q != "" {
			rec.target += "?" + q
		}
		rec.redactions = append(rec.redactions, gateway.Redactions("/path", pc)...)
		rec.redactions = append(rec.redactions, gateway.Redactions("/query", qc)...)
		add(pc)
		add(qc)
	}
	if b, bc := detect.Scrub(string(body)); bc != nil {
		rec.body = []byte(b)
		rec.redactions = append(rec.redactions, gateway.Redactions("/body_sha256", bc)...)
	}
	rec.redactions = append(rec.redactions, gateway.Redactions("/statement", total)...)
	return rec
}

// redactQuery scrubs each name and value of a query string, decoded; a
// part with nothing found stays as it was sent.
func redactQuery(raw string) (string, map[string]int) {
	if raw == "" {
		return raw, nil
	}
	var all map[string]int
	parts := strings.Split(raw, "&")
	for i, part := range parts {
		k, v, eq := strings.Cut(part, "=")
		ks, kc := scrubQueryText(k)
		vs, vc := scrubQueryText(v)
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

func scrubQueryText(s string) (string, map[string]int) {
	if d, err := url.QueryUnescape(s); err == nil {
		s = d
	}
	return detect.Scrub(s)
}
