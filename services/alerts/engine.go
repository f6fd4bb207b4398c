package alerts

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
)

// Alert is what one rule raised on one sealed record.
type Alert struct {
	// ID is "alert/<rule>/<index>": the same on every delivery of the
	// same alert, so a receiver drops repeats by it.
	ID   string
	Rule *Rule
	// Index is the ledger index of the record that raised it.
	Index    uint64
	SealedAt time.Time
	Event    *events.Event
	// Rate is set for a rate rule: how many events with which key value
	// within what window.
	Rate *RateHit
	// Suppressed counts the alerts of the rule its limit held back since
	// its previous alert.
	Suppressed int
}

// RateHit is what a rate rule counted.
type RateHit struct {
	Count  int
	Within time.Duration
	Key    string
	Value  string
}

// Engine evaluates rules over records in ledger order. Rate windows and
// limits are kept in memory: after a restart they start empty (a window
// that spans the restart counts only what comes after it). It is not
// safe for concurrent use.
type Engine struct {
	rules   []*Rule
	windows map[string][]time.Time // rule + key value → times in the window
	limits  map[string]*limitState
}

type limitState struct {
	start      time.Time
	sent       int
	suppressed int
}

// NewEngine evaluates rules.
func NewEngine(rules []*Rule) *Engine {
	return &Engine{rules: rules, windows: map[string][]time.Time{}, limits: map[string]*limitState{}}
}

// Rules are the engine's rules.
func (e *Engine) Rules() []*Rule { return e.rules }

// Evaluate returns the alerts ev (sealed at index) raises. Each record
// must be evaluated once: rates and limits count it.
func (e *Engine) Evaluate(index uint64, sealedAt time.Time, ev *events.Event) []*Alert {
	var out []*Alert
	for _, r := range e.rules {
		if !r.Matches(ev) {
			continue
		}
		a := &Alert{ID: fmt.Sprintf("alert/%s/%d", r.ID, index), Rule: r, Index: index, SealedAt: sealedAt, Event: ev}
		if r.rate != nil {
			hit, ok := e.count(r, ev)
			if !ok {
				continue
			}
			a.Rate = hit
		}
		if r.limit != nil {
			st := e.limits[r.ID]
			if st == nil || ev.Time.Sub(st.start) >= r.limit.per || ev.Time.Before(st.start) {
				prev := 0
				if st != nil {
					prev = st.suppressed
				}
				st = &limitState{start: ev.Time, suppressed: prev}
				e.limits[r.ID] = st
			}
			if st.sent >= r.limit.alerts {
				st.suppressed++
				continue
			}
			st.sent++
			a.Suppressed, st.suppressed = st.suppressed, 0
		}
		out = append(out, a)
	}
	return out
}

// count adds ev to its window and reports a hit when the window holds
// the rule's count; the window is then emptied, so N events fire once.
func (e *Engine) count(r *Rule, ev *events.Event) (*RateHit, bool) {
	value := ""
	if r.rate.key != "" {
		v, ok := Field(ev, r.rate.key)
		if !ok {
			return nil, false // no key: not counted
		}
		value = v
	}
	k := r.ID + "\x00" + value
	w := e.windows[k]
	cut := ev.Time.Add(-r.rate.within)
	i := 0
	for i < len(w) && !w[i].After(cut) {
		i++
	}
	w = append(w[i:], ev.Time)
	if len(w) < r.rate.count {
		e.windows[k] = w
		return nil, false
	}
	delete(e.windows, k)
	return &RateHit{Count: len(w), Within: r.rate.within, Key: r.rate.key, Value: value}, true
}

// Field reads one field of ev by path (Fields): its text, or a number's
// or a boolean's JSON text. actor.email, a sealed field, is never read.
func Field(ev *events.Event, path string) (string, bool) {
	tgt := ev.Target
	if tgt == nil {
		tgt = &events.Target{}
	}
	switch path {
	case "type":
		return string(ev.Type), true
	case "tenant":
		return ev.Tenant, true
	case "session_id":
		return ev.SessionID, ev.SessionID != ""
	case "source.kind":
		return ev.Source.Kind, true
	case "source.instance":
		return ev.Source.Instance, true
	case "actor.issuer":
		return ev.Actor.Issuer, true
	case "actor.subject":
		return ev.Actor.Subject, true
	case "actor.kind":
		return string(ev.Actor.Kind), true
	case "target.kind":
		return tgt.Kind, ev.Target != nil
	case "target.name":
		return tgt.Name, tgt.Name != ""
	case "target.host":
		return tgt.Host, tgt.Host != ""
	case "target.database":
		return tgt.Database, tgt.Database != ""
	}
	member, ok := strings.CutPrefix(path, "payload.")
	if !ok {
		return "", false
	}
	var v any
	if json.Unmarshal(ev.Payload, &v) != nil {
		return "", false
	}
	for name := range strings.SplitSeq(member, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = m[name]; !ok {
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}
