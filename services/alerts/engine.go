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
	// Overflow is set when the events were counted together, whatever
	// their key value, because the rule had MaxRateKeys windows open
	// (Value is then empty); Cap is then that number.
	Overflow bool
	Cap      int
}

// MaxRateKeys is how many key values a rate rule counts apart at once.
// Past it, events with a new key value are counted together in one
// overflow window until windows expire; an alert from it says so.
const MaxRateKeys = 10000

// Engine evaluates rules over records in ledger order. Rate windows and
// limits are kept in memory: after a restart they start empty (a window
// that spans the restart counts only what comes after it). It is not
// safe for concurrent use.
//
// A rate rule's windows are bounded: one whose newest event is older than
// the rule's window is removed by a sweep run, by event time, once per
// half window (so an idle key's window is gone within 1.5 windows), and
// at most MaxRateKeys (maxKeys) key values are counted apart per rule.
type Engine struct {
	rules   []*Rule
	rates   map[string]*rateState // by rule id
	limits  map[string]*limitState
	maxKeys int
}

// rateState is one rate rule's windows.
type rateState struct {
	windows  map[string][]time.Time // key value → times in the window, oldest first
	overflow []time.Time            // events of key values past maxKeys
	swept    time.Time              // event time of the last sweep
}

// overflowed is the overflow window's key in messages.
const overflowed = ""

type limitState struct {
	start      time.Time
	sent       int
	suppressed int
}

// NewEngine evaluates rules.
func NewEngine(rules []*Rule) *Engine {
	return &Engine{rules: rules, rates: map[string]*rateState{}, limits: map[string]*limitState{}, maxKeys: MaxRateKeys}
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
	st := e.rates[r.ID]
	if st == nil {
		st = &rateState{windows: map[string][]time.Time{}, swept: ev.Time}
		e.rates[r.ID] = st
	}
	cut := ev.Time.Add(-r.rate.within)
	if ev.Time.Sub(st.swept) >= r.rate.within/2 {
		// Amortised: at most maxKeys windows looked at once per half
		// window of event time.
		for k, w := range st.windows {
			if !w[len(w)-1].After(cut) {
				delete(st.windows, k)
			}
		}
		st.swept = ev.Time
	}
	w, ok := st.windows[value]
	over := !ok && len(st.windows) >= e.maxKeys
	if over {
		w = st.overflow
	}
	i := 0
	for i < len(w) && !w[i].After(cut) {
		i++
	}
	w = append(w[i:], ev.Time)
	hit := len(w) >= r.rate.count
	if hit {
		w = nil
	}
	switch {
	case over:
		st.overflow = w
	case hit:
		delete(st.windows, value)
	default:
		st.windows[value] = w
	}
	if !hit {
		return nil, false
	}
	h := &RateHit{Count: r.rate.count, Within: r.rate.within, Key: r.rate.key, Value: value, Overflow: over}
	if over {
		h.Value, h.Cap = overflowed, e.maxKeys
	}
	return h, true
}

// windows is how many rate windows the engine holds (for tests).
func (e *Engine) windows() int {
	n := 0
	for _, st := range e.rates {
		n += len(st.windows)
		if len(st.overflow) > 0 {
			n++
		}
	}
	return n
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
