package detect

import "encoding/json"

// FreeText is text a person typed for the record (the reason of an
// approval, a request for access, a revocation) as every copy of it must
// hold it, the brokers' buckets as much as the log: what the detectors
// find replaced by its placeholder (Scrub) and, where the writer's judge
// (InEvent) still finds a value in what is left, the whole text replaced
// by the placeholder of the detector that found it. Text kept as typed
// would be a value in clear in the bucket, and the writer would refuse
// the event that carries it: the decision it records would go unsealed.
func FreeText(s string) string {
	if s == "" {
		return s
	}
	out, _ := Scrub(s)
	doc, err := json.Marshal(map[string]map[string]string{"payload": {"text": out}})
	if err != nil {
		return Placeholder("unjudged")
	}
	if m, found, _ := InEvent(doc); found {
		return Placeholder(m.Detector)
	}
	return out
}
