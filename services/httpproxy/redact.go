package httpproxy

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strings"

	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/services/gateway"
)

// recorded is what the proxy records of a request — path, query, the
// headers it names, and the digest of its body — with every value the
// built-in detectors find replaced. Each is judged as the upstream will
// read it: the path and query after percent-decoding, repeated while it
// changes (jane%2540example.com is an address too); the body after its
// Content-Encoding (gzip, deflate) and in its media type's encoding
// (form fields, JSON strings with \u escapes, multipart parts). The body
// is never recorded, only its keyed digest (body_hmac, under the tenant's
// search key, over the bytes as received: docs/FORMAT.md §1.5), so that it
// cannot be used to guess the body back, whether or not the detectors
// could read it; what they find in it is listed under "/body_hmac", with
// the values for the core to record their search digests. A body the
// proxy cannot decode within its limits is not judged, and the record
// says why (body_undecoded).
type recorded struct {
	path, query string // decoded path; query as sent, each scrubbed part decoded
	target      string // the request target as recorded: path and query
	header      http.Header
	// undecoded says why the body could not be judged.
	undecoded  string
	redactions []gateway.Redaction
}

// The percent-decoding and query judgment every gateway shares.
const overEncoded = gateway.OverEncoded

func unescapeAll(s string, query bool) (string, bool) { return gateway.UnescapeAll(s, query) }

func scrubDecoded(s string, query bool, found *[]gateway.Finding) (string, map[string]int) {
	return gateway.ScrubDecoded(s, query, found)
}

func redactQuery(raw string, found *[]gateway.Finding) (string, map[string]int) {
	return gateway.ScrubQuery(raw, found)
}

func joinSegments(p string, counts map[string]int, found *[]gateway.Finding) (string, map[string]int) {
	return gateway.JoinSegments(p, counts, found)
}

// recordedHeaders are the request headers the proxy records (as
// content_type, content_encoding) and binds into approval statements.
var recordedHeaders = []string{"Content-Type", "Content-Encoding"}

// redactRequest scrubs what is recorded of the request with URL u,
// header h and body; limit bounds a decoded body.
func redactRequest(u *url.URL, h http.Header, body []byte, limit int64) recorded {
	rec := recorded{path: u.Path, query: u.RawQuery, target: u.RequestURI(), header: h}
	var pf, qf, bf []gateway.Finding
	p, pc := scrubDecoded(u.Path, false, &pf)
	p, pc = joinSegments(p, pc, &pf)
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
	cloned := false
	for _, name := range recordedHeaders {
		vs := h.Values(name)
		var scrubbed []string
		var found bool
		for _, v := range vs {
			var hf []gateway.Finding
			s, c := scrubDecoded(v, false, &hf)
			if c != nil {
				found = true
				v = s
				rec.redactions = append(rec.redactions, gateway.Found("/"+strings.ReplaceAll(strings.ToLower(name), "-", "_"), hf)...)
			}
			scrubbed = append(scrubbed, v)
		}
		if found {
			if !cloned {
				rec.header, cloned = h.Clone(), true
			}
			rec.header[name] = scrubbed
		}
	}
	_, _, why := scrubBody(h.Get("Content-Type"), h.Values("Content-Encoding"), body, limit, 0, &bf)
	if why != "" {
		rec.undecoded = why
	}
	// What the detectors found in the body is listed under the body's
	// digest, with the values for their search digests.
	rec.redactions = append(rec.redactions, gateway.Found("/body_hmac", bf)...)
	rec.redactions = append(rec.redactions, gateway.Found("/statement", append(pf, qf...))...)
	return rec
}

// describeBody adds to payload what is recorded of the body: its size,
// its keyed digest (bodyHMAC; none without the tenant's key), and why it
// was not judged.
func (rec recorded) describeBody(payload map[string]any, size int, bodyHMAC string) {
	payload["body_bytes"] = size
	if bodyHMAC != "" {
		payload["body_hmac"] = bodyHMAC
	}
	if rec.undecoded != "" {
		payload["body_undecoded"] = rec.undecoded
	}
}

// recordedPath is what is recorded of the path of u when nothing else of
// the request is: decoded and scrubbed as redactRequest records it, or
// as Go decoded it when nothing was found.
func recordedPath(u *url.URL) string {
	var found []gateway.Finding
	if p, c := scrubDecoded(u.Path, false, &found); c != nil {
		return p
	}
	return u.Path
}

func addCounts(to, from map[string]int) {
	for d, n := range from {
		to[d] += n
	}
}

// maxBodyDepth bounds nesting: a multipart part holding a multipart body.
const maxBodyDepth = 2

// scrubBody returns body with what the detectors find replaced, read as
// the upstream reads it: decoded by the content codings encodings names
// (in the order they were applied), then by its media type ctype. With
// nothing found it returns body as sent and nil counts; with something
// found, the decoded body scrubbed. why is not empty when the body could
// not be decoded within limit bytes (an unknown coding, a corrupt or too
// large stream, a malformed multipart body): the detectors could not
// judge it.
func scrubBody(ctype string, encodings []string, body []byte, limit int64, depth int, found *[]gateway.Finding) (out []byte, counts map[string]int, why string) {
	if len(body) == 0 {
		return body, nil, ""
	}
	d, why := decodeContent(encodings, body, limit)
	if why != "" {
		return nil, nil, why
	}
	media, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		media = ""
	}
	counts = map[string]int{}
	s := d
	switch {
	case strings.HasPrefix(media, "multipart/"):
		if depth >= maxBodyDepth {
			return nil, nil, "multipart body nested too deep"
		}
		var c map[string]int
		if s, c, why = scrubMultipart(params["boundary"], d, limit, depth, found); why != "" {
			return nil, nil, why
		}
		addCounts(counts, c)
	case media == "application/x-www-form-urlencoded":
		q, c := redactQuery(string(d), found)
		s = []byte(q)
		addCounts(counts, c)
	case (media == "application/json" || strings.HasSuffix(media, "+json") || media == "" && json.Valid(d)) && bytes.IndexByte(d, '\\') >= 0:
		// Escapes (\u0034) hide what the text pass reads; without any,
		// a JSON text holds its strings as written.
		if j, c, ok := scrubJSON(d, found); ok {
			s = j
			addCounts(counts, c)
		}
	}
	t, c := gateway.ScrubFound(string(s), found)
	addCounts(counts, c)
	if len(counts) == 0 {
		return body, nil, ""
	}
	return []byte(t), counts, ""
}

// decodeContent undoes the content codings of a body, at most limit
// bytes decoded.
func decodeContent(encodings []string, body []byte, limit int64) ([]byte, string) {
	var codings []string
	for _, v := range encodings {
		for _, c := range strings.Split(v, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	for i := len(codings) - 1; i >= 0; i-- {
		var r io.Reader
		var err error
		switch codings[i] {
		case "gzip", "x-gzip":
			r, err = gzip.NewReader(bytes.NewReader(body))
		case "deflate": // zlib (RFC 9110), or raw deflate as some clients send it
			if r, err = zlib.NewReader(bytes.NewReader(body)); err != nil {
				r, err = flate.NewReader(bytes.NewReader(body)), nil
			}
		default:
			return nil, fmt.Sprintf("content coding %q is not decoded", codings[i])
		}
		if err != nil {
			return nil, fmt.Sprintf("content coding %s: %v", codings[i], err)
		}
		d, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err != nil {
			return nil, fmt.Sprintf("content coding %s: %v", codings[i], err)
		}
		if int64(len(d)) > limit {
			return nil, fmt.Sprintf("content coding %s: more than %d bytes decoded", codings[i], limit)
		}
		body = d
	}
	return body, ""
}

// scrubJSON scrubs every string, member name and number of a JSON text
// as decoded; ok is false when it is not one JSON value.
func scrubJSON(b []byte, found *[]gateway.Finding) ([]byte, map[string]int, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, nil, false
	}
	counts := map[string]int{}
	v = scrubJSONValue(v, counts, found)
	if len(counts) == 0 {
		return b, nil, true
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, nil, false
	}
	return out, counts, true
}

func scrubJSONValue(v any, counts map[string]int, found *[]gateway.Finding) any {
	switch x := v.(type) {
	case string:
		if detect.IsDigest(x) {
			return x
		}
		s, c := gateway.ScrubFound(x, found)
		addCounts(counts, c)
		return s
	case json.Number:
		if s, c := gateway.ScrubFound(string(x), found); c != nil {
			addCounts(counts, c)
			return s
		}
		return x
	case []any:
		for i := range x {
			x[i] = scrubJSONValue(x[i], counts, found)
		}
		return x
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make(map[string]any, len(x))
		for _, k := range keys {
			name, c := gateway.ScrubFound(k, found)
			addCounts(counts, c)
			for _, taken := out[name]; taken; _, taken = out[name] {
				name += "_"
			}
			out[name] = scrubJSONValue(x[k], counts, found)
		}
		return out
	}
	return v
}

// scrubMultipart scrubs each part of a multipart body: its header values
// (a file name), and its content as its own media type and transfer
// encoding read it. The result is the body written again with the same
// boundary, parts decoded.
func scrubMultipart(boundary string, body []byte, limit int64, depth int, found *[]gateway.Finding) ([]byte, map[string]int, string) {
	if boundary == "" {
		return nil, nil, "multipart body without a boundary"
	}
	counts := map[string]int{}
	var out bytes.Buffer
	w := multipart.NewWriter(&out)
	if err := w.SetBoundary(boundary); err != nil {
		return nil, nil, "multipart boundary: " + err.Error()
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		p, err := r.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, "multipart body: " + err.Error()
		}
		content, err := io.ReadAll(io.LimitReader(p, limit+1))
		if err != nil {
			return nil, nil, "multipart part: " + err.Error()
		}
		h := textproto.MIMEHeader{}
		for name, vs := range p.Header {
			for _, v := range vs {
				s, c := scrubDecoded(v, false, found)
				addCounts(counts, c)
				if c == nil {
					s = v
				}
				h.Add(name, s)
			}
		}
		switch strings.ToLower(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding"))) {
		case "base64":
			d, err := io.ReadAll(io.LimitReader(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(content)), limit+1))
			if err != nil {
				return nil, nil, "multipart part: base64: " + err.Error()
			}
			content = d
			h.Del("Content-Transfer-Encoding")
		case "quoted-printable":
			d, err := io.ReadAll(io.LimitReader(quotedprintable.NewReader(bytes.NewReader(content)), limit+1))
			if err != nil {
				return nil, nil, "multipart part: quoted-printable: " + err.Error()
			}
			content = d
			h.Del("Content-Transfer-Encoding")
		}
		s, c, why := scrubBody(p.Header.Get("Content-Type"), p.Header.Values("Content-Encoding"), content, limit, depth+1, found)
		if why != "" {
			return nil, nil, why
		}
		addCounts(counts, c)
		if c == nil {
			s = content
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			return nil, nil, "multipart: " + err.Error()
		}
		pw.Write(s)
	}
	w.Close()
	return out.Bytes(), counts, ""
}
