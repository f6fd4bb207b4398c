package gateway

import (
	"net/url"
	"slices"
	"strings"

	"github.com/auditledger/auditledger/events/detect"
)

// A request target as a server reads it, judged by the detectors: each
// gateway that records paths and query strings (HTTP, Kubernetes) judges
// them alike, percent-decoded and with the values of a name given more
// than once, and a path's segments, read joined.

// MaxDecodeRounds bounds repeated percent-decoding (each round costs a
// pass over the value): a value still encoded after that many rounds is
// not judged, so it is recorded as OverEncoded, none of it kept.
const MaxDecodeRounds = 32

// OverEncoded is what is recorded of a value percent-encoded more than
// MaxDecodeRounds times.
const OverEncoded = "[REDACTED:over_encoded]"

// UnescapeAll percent-decodes s while that changes it; query decoding
// reads + as a space (in every round). A malformed escape ends the
// decoding there. It reports false for a value still changing after
// MaxDecodeRounds rounds.
func UnescapeAll(s string, query bool) (string, bool) {
	for range MaxDecodeRounds {
		if !strings.Contains(s, "%") && !(query && strings.Contains(s, "+")) {
			return s, true
		}
		var d string
		var err error
		if query {
			d, err = url.QueryUnescape(s)
		} else {
			d, err = url.PathUnescape(s)
		}
		if err != nil || d == s {
			return s, true
		}
		s = d // a + decoded from %2B reads as a space too, as a server decoding twice reads it
	}
	return s, false
}

// ScrubDecoded is s percent-decoded (UnescapeAll) with what the
// detectors find replaced; its counts are nil when nothing was. A value
// encoded beyond MaxDecodeRounds is replaced whole by OverEncoded
// (counted as over_encoded, which no detector is).
func ScrubDecoded(s string, query bool, found *[]Finding) (string, map[string]int) {
	d, ok := UnescapeAll(s, query)
	if !ok {
		return OverEncoded, map[string]int{"over_encoded": 1}
	}
	return ScrubFound(d, found)
}

// ScrubQuery scrubs each name and value of a query string (or a form
// body), decoded; a part with nothing found stays as it was sent.
func ScrubQuery(raw string, found *[]Finding) (string, map[string]int) {
	if raw == "" {
		return raw, nil
	}
	var all map[string]int
	parts := strings.Split(raw, "&")
	// The values of a name given more than once, decoded, for judging
	// joined (c=4111&c=1111&…): a server reads them as one list.
	type value struct {
		part       int
		name, text string
	}
	byName := map[string][]value{}
	var names []string
	for i, part := range parts {
		k, v, eq := strings.Cut(part, "=")
		ks, kc := scrubQueryText(k, found)
		vs, vc := scrubQueryText(v, found)
		if eq {
			if _, ok := byName[ks]; !ok {
				names = append(names, ks)
			}
			byName[ks] = append(byName[ks], value{i, ks, vs})
		}
		if kc == nil && vc == nil {
			continue
		}
		if all == nil {
			all = map[string]int{}
		}
		addCounts(all, kc)
		addCounts(all, vc)
		parts[i] = ks
		if eq {
			parts[i] += "=" + vs
		}
	}
	// The values of different names side by side (a=41111111&b=11111111,
	// which a server joins as it likes), in the order sent: runs of them
	// judged as one whole value (JoinedRuns).
	var seq []value
	for _, name := range names {
		seq = append(seq, byName[name]...)
	}
	slices.SortFunc(seq, func(a, b value) int { return a.part - b.part })
	texts := make([]string, len(seq))
	for i, v := range seq {
		texts[i] = v.text
	}
	for _, j := range JoinedRuns(texts) {
		*found = append(*found, Finding{Detector: j.Detector, Value: j.Value})
		if all == nil {
			all = map[string]int{}
		}
		all[j.Detector]++
		for _, p := range j.Parts {
			parts[seq[p].part] = seq[p].name + "=" + detect.Placeholder(j.Detector)
		}
	}
	for _, name := range names {
		vs := byName[name]
		if len(vs) < 2 {
			continue
		}
		texts := make([]string, len(vs))
		for i, v := range vs {
			texts[i] = v.text
		}
		for _, j := range detect.JoinedValues(texts) {
			*found = append(*found, Finding{Detector: j.Detector, Value: j.Value})
			if all == nil {
				all = map[string]int{}
			}
			all[j.Detector]++
			for _, p := range j.Parts {
				parts[vs[p].part] = name + "=" + detect.Placeholder(j.Detector)
			}
		}
	}
	return strings.Join(parts, "&"), all
}

// JoinSegments judges the segments of p, a decoded (and scrubbed) path,
// joined (detect.JoinedValues: /q/4111 1111/1111 1111 is one card
// number to a server that joins them): every segment that goes into a
// value found becomes the detector's placeholder. counts are scrubbed's
// counts with the values found so added; found gets the values.
func JoinSegments(p string, counts map[string]int, found *[]Finding) (string, map[string]int) {
	segs := strings.Split(p, "/")
	joined := detect.JoinedValues(segs)
	if len(joined) == 0 {
		return p, counts
	}
	out := map[string]int{}
	addCounts(out, counts)
	for _, j := range joined {
		*found = append(*found, Finding{Detector: j.Detector, Value: j.Value})
		out[j.Detector]++
		for _, i := range j.Parts {
			segs[i] = detect.Placeholder(j.Detector)
		}
	}
	return strings.Join(segs, "/"), out
}

func scrubQueryText(s string, found *[]Finding) (string, map[string]int) {
	return ScrubDecoded(s, true, found)
}

func addCounts(to, from map[string]int) {
	for d, n := range from {
		to[d] += n
	}
}
