package kubegateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/gateway"
)

// maxRecordedBody is the largest request body recorded as a value; a
// larger one is recorded by its size and digest only.
const maxRecordedBody = 64 << 10

// lastApplied is the annotation kubectl apply keeps a copy of the whole
// object in, secret values included.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// describe is the command payload of a request, as the API server parses
// it. Every string passes the detectors when it is recorded.
func describe(r *http.Request, info *request.RequestInfo, q Request) map[string]any {
	c := map[string]any{"protocol": "kubernetes", "method": gateway.Clip(r.Method, 32), "verb": gateway.Clip(q.Verb, 64),
		"client_addr": r.RemoteAddr}
	recordTarget(c, r.URL)
	if ua := r.UserAgent(); ua != "" {
		c["user_agent"] = gateway.Clip(ua, 256)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		c["content_type"] = gateway.Clip(ct, 128)
	}
	if q.IsResource {
		c["api_group"], c["api_version"], c["resource"] = q.APIGroup, gateway.Clip(info.APIVersion, 64), gateway.Clip(q.Resource, 256)
		for k, v := range map[string]string{"subresource": q.Subresource, "namespace": q.Namespace, "name": q.Name} {
			if v != "" {
				c[k] = gateway.Clip(v, 256)
			}
		}
	}
	st := statement(q)
	c["statement"] = gateway.Clip(st, 2048)
	c["statement_sha256"] = approvals.Digest(st)
	return c
}

// statement is a request as a kubectl user would say it: "delete
// namespaces prod", "create rolebindings.rbac.authorization.k8s.io -n
// team-a", "create pods/exec web-1 -n prod", "get /version".
func statement(q Request) string {
	if !q.IsResource {
		return q.Verb + " " + q.Path
	}
	res := q.Resource
	if q.APIGroup != "" {
		res += "." + q.APIGroup
	}
	if q.Subresource != "" {
		res += "/" + q.Subresource
	}
	s := q.Verb + " " + res
	if q.Name != "" {
		s += " " + q.Name
	}
	if q.Namespace != "" {
		s += " -n " + q.Namespace
	}
	return s
}

// judgedTarget is u's path and query as recorded: as sent, or, where the
// detectors find a value, decoded with each value replaced — judged as
// the HTTP gateway judges them (gateway.ScrubQuery, gateway.JoinSegments):
// percent-decoded, a path's segments and the values of a query name given
// more than once (an exec's command=4111&command=1111&…) read joined. rs
// lists what was replaced, with the values, under /path and /query.
func judgedTarget(u *url.URL) (path, query string, rs []gateway.Redaction) {
	path, query = u.EscapedPath(), u.RawQuery
	var pf, qf []gateway.Finding
	p, pc := gateway.ScrubDecoded(u.Path, false, &pf)
	if p, pc = gateway.JoinSegments(p, pc, &pf); pc != nil {
		path = p
		rs = append(rs, gateway.Found("/path", pf)...)
	}
	if query != "" {
		if q, qc := gateway.ScrubQuery(query, &qf); qc != nil {
			query = q
			rs = append(rs, gateway.Found("/query", qf)...)
		}
	}
	return path, query, rs
}

// recordTarget puts u's path and query, judged, into payload.
func recordTarget(payload map[string]any, u *url.URL) {
	path, query, rs := judgedTarget(u)
	payload["path"] = gateway.Clip(path, 2048)
	if query != "" {
		payload["query"] = gateway.Clip(query, 2048)
	}
	gateway.AddRedactions(payload, rs...)
}

// recordedTarget is the request target an approval is bound to, judged
// as it is recorded.
func recordedTarget(u *url.URL) string {
	path, query, _ := judgedTarget(u)
	if query == "" {
		return path
	}
	return path + "?" + query
}

// recordBody puts the request body into the command payload (member
// "body"), as a JSON value whose strings the detectors then scrub, or says
// why it is not there (member "body_omitted"). The body of a request to
// secrets is never recorded; in any other body, a Secret's data and
// stringData values and every last-applied-configuration annotation are
// replaced by their keyed digests (or by "(not recorded)" without a key).
func recordBody(c map[string]any, contentType string, body []byte, secrets bool, keyed func(label string, b []byte) string) {
	if secrets {
		c["body_omitted"] = "secret: recorded by its digest only"
		return
	}
	if len(body) > maxRecordedBody {
		c["body_omitted"] = fmt.Sprintf("larger than %d bytes: recorded by its digest only", maxRecordedBody)
		return
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	var v any
	switch {
	case strings.HasSuffix(mt, "json") || mt == "" && json.Valid(body):
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			c["body_omitted"] = "not valid JSON: recorded by its digest only"
			return
		}
	case strings.HasSuffix(mt, "yaml"):
		if err := yaml.Unmarshal(body, &v); err != nil {
			c["body_omitted"] = "not valid YAML: recorded by its digest only"
			return
		}
		v = jsonable(v)
	default:
		c["body_omitted"] = "content type " + gateway.Clip(contentType, 128) + ": recorded by its digest only"
		return
	}
	v = withoutSecrets(v, keyed)
	gateway.AddRedactions(c, joinBodyValues(v)...)
	c["body"] = v
}

// joinBodyValues judges the strings of a decoded body that a program
// reads side by side joined (gateway.JoinedRuns): the
// members of one object, by name (a ConfigMap's data: {a: "4111 1111",
// b: "1111 1111"}, an object's annotations), and one member across the
// objects of an array, in order (two env values, the values of a JSON
// patch's ops), and the strings of an array. Each string that goes into a
// value found becomes its placeholder, listed at the first one's place
// with the value. Numbers, strings far apart in the body, and digests
// (withoutSecrets) are not joined: ports, sizes and counts side by side
// would make digit runs by chance.
func joinBodyValues(v any) []gateway.Redaction {
	type leaf struct {
		path string
		text string
		set  func(any)
	}
	var rs []gateway.Redaction
	judge := func(leaves []leaf) {
		if len(leaves) < 2 {
			return
		}
		texts := make([]string, len(leaves))
		for i, l := range leaves {
			texts[i] = l.text
		}
		for _, j := range gateway.JoinedRuns(texts) {
			for _, k := range j.Parts {
				leaves[k].set(detect.Placeholder(j.Detector))
			}
			rs = append(rs, gateway.Found(leaves[j.Parts[0]].path, []gateway.Finding{{Detector: j.Detector, Value: j.Value}})...)
		}
	}
	str := func(x any) (string, bool) {
		s, ok := x.(string)
		return s, ok && !detect.IsDigest(s) && s != "(not recorded)"
	}
	esc := func(k string) string { return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1") }
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch t := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var members []leaf
			for _, k := range keys {
				if s, ok := str(t[k]); ok {
					members = append(members, leaf{path + "/" + esc(k), s, func(x any) { t[k] = x }})
				}
			}
			judge(members)
			for _, k := range keys {
				walk(t[k], path+"/"+esc(k))
			}
		case []any:
			var elems []leaf
			across := map[string][]leaf{}
			var names []string
			for i, e := range t {
				if s, ok := str(e); ok {
					elems = append(elems, leaf{path + "/" + strconv.Itoa(i), s, func(x any) { t[i] = x }})
				}
				if m, ok := e.(map[string]any); ok {
					for k, x := range m {
						if s, ok := str(x); ok {
							if _, seen := across[k]; !seen {
								names = append(names, k)
							}
							across[k] = append(across[k], leaf{path + "/" + strconv.Itoa(i) + "/" + esc(k), s, func(x any) { m[k] = x }})
						}
					}
				}
			}
			judge(elems)
			sort.Strings(names)
			for _, k := range names {
				judge(across[k])
			}
			for i, e := range t {
				walk(e, path+"/"+strconv.Itoa(i))
			}
		}
	}
	walk(v, "/body")
	return rs
}

// jsonable turns what YAML decoding made into values a payload holds.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonable(e)
		}
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = jsonable(e)
		}
	case int, int64, uint64, float64, bool, string, nil, json.Number:
	default:
		return fmt.Sprint(t)
	}
	return v
}

// withoutSecrets replaces secret values in a decoded body (see
// recordBody).
func withoutSecrets(v any, keyed func(label string, b []byte) string) any {
	digest := func(s string) string {
		if keyed == nil {
			return "(not recorded)"
		}
		return keyed(gateway.BodyLabel, []byte(s))
	}
	switch t := v.(type) {
	case map[string]any:
		if k, _ := t["kind"].(string); k == "Secret" {
			for _, f := range []string{"data", "stringData"} {
				switch d := t[f].(type) {
				case map[string]any:
					for key, val := range d {
						d[key] = digest(fmt.Sprint(val))
					}
				case nil:
				default:
					t[f] = digest(fmt.Sprint(d))
				}
			}
		}
		if md, ok := t["metadata"].(map[string]any); ok {
			if an, ok := md["annotations"].(map[string]any); ok {
				if la, ok := an[lastApplied]; ok {
					an[lastApplied] = digest(fmt.Sprint(la))
				}
			}
		}
		for k, e := range t {
			t[k] = withoutSecrets(e, keyed)
		}
	case []any:
		for i, e := range t {
			t[i] = withoutSecrets(e, keyed)
		}
	}
	return v
}
