package events

import (
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// appendJSON appends ev as JSON, byte for byte what json.Marshal(ev)
// writes (TestEncoderMatchesJSON and FuzzEncoder hold it to that), at a
// third of its cost: every producer encodes each event once on its hot
// path. ev must be valid (Validate), so that its strings are UTF-8.
//
// Like json.Marshal with this package's tags, it writes
// "dev_identity":false when that is unset (v2's omitempty omits only
// empty JSON values: null, "", {}, []), and omits session_seq when it is
// 0 (omitzero): an event outside a session has neither session_id nor
// session_seq (docs/FORMAT.md §1; "session_seq":0 alone is the legacy
// form releases before wrote, which readers accept in sealed records).
func (ev *Event) appendJSON(b []byte) ([]byte, error) {
	var err error
	str := func(name, s string) {
		if err != nil {
			return
		}
		b = append(b, name...)
		b, err = jsontext.AppendQuote(b, s)
	}
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, int64(ev.Version), 10)
	str(`,"id":`, ev.ID)
	str(`,"type":`, string(ev.Type))
	b = append(b, `,"time":"`...)
	b = ev.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	str(`,"tenant":`, ev.Tenant)
	str(`,"source":{"kind":`, ev.Source.Kind)
	str(`,"instance":`, ev.Source.Instance)
	if ev.Source.Version != "" {
		str(`,"version":`, ev.Source.Version)
	}
	str(`},"actor":{"issuer":`, ev.Actor.Issuer)
	str(`,"subject":`, ev.Actor.Subject)
	if ev.Actor.Email != "" {
		str(`,"email":`, ev.Actor.Email)
	}
	if len(ev.Actor.Groups) > 0 {
		for i, g := range ev.Actor.Groups {
			if i == 0 {
				str(`,"groups":[`, g)
			} else {
				str(`,`, g)
			}
		}
		b = append(b, ']')
	}
	str(`,"kind":`, string(ev.Actor.Kind))
	b = append(b, `,"dev_identity":`...)
	b = strconv.AppendBool(b, ev.Actor.DevIdentity)
	b = append(b, '}')
	if ev.SessionID != "" {
		str(`,"session_id":`, ev.SessionID)
	}
	if ev.SessionSeq != 0 {
		b = append(b, `,"session_seq":`...)
		b = strconv.AppendUint(b, ev.SessionSeq, 10)
	}
	if t := ev.Target; t != nil {
		str(`,"target":{"kind":`, t.Kind)
		for _, f := range [...]struct{ name, v string }{{`,"name":`, t.Name}, {`,"host":`, t.Host}, {`,"database":`, t.Database}} {
			if f.v != "" {
				str(f.name, f.v)
			}
		}
		b = append(b, '}')
	}
	if err != nil {
		return nil, err
	}
	b = append(b, `,"payload":`...)
	// As json.Marshal writes a jsontext.Value: checked (UTF-8, unique
	// names) and without whitespace.
	if b, err = jsontext.AppendFormat(b, ev.Payload); err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// sizeHint is about the length of ev's encoding: its strings, a little
// for escapes, and the names and punctuation around them.
func (ev *Event) sizeHint() int {
	n := 256 + len(ev.Payload) + len(ev.ID) + len(ev.Type) + len(ev.Tenant) + len(ev.Source.Kind) + len(ev.Source.Instance) +
		len(ev.Source.Version) + len(ev.Actor.Issuer) + len(ev.Actor.Subject) + len(ev.Actor.Email) + len(ev.SessionID)
	for _, g := range ev.Actor.Groups {
		n += len(g) + 3
	}
	if t := ev.Target; t != nil {
		n += len(t.Kind) + len(t.Name) + len(t.Host) + len(t.Database)
	}
	return n + n/8
}
