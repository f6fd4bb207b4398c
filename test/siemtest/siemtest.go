// Package siemtest holds the receivers the SIEM forwarder tests deliver
// to: a webhook endpoint that checks each request's signature as docs/SIEM.md
// tells receivers to, and a Splunk HTTP Event Collector that follows
// Splunk's documented protocol. Both count what they accepted by event id
// (the receiver's dedup key), can be taken down for a while, and refuse one
// chosen event for good.
package siemtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/auditledger/auditledger/services/siem"
)

// Webhook is a signed-webhook receiver.
type Webhook struct {
	Secret []byte
	// Poison is an event id the receiver refuses (400).
	Poison   string
	delay    time.Duration
	mu       sync.Mutex
	got      map[string]int
	down     bool
	BadSigs  int
	Requests int
	batches  [][]uint64 // the ledger indexes of each accepted request
	bodies   [][]byte   // the bytes of each accepted request, as received
	// hold, when set, is how many requests are accepted before the rest
	// wait for Release (or for their client to go away).
	hold     int
	released chan struct{}
	// holdPrefix, when set, counts toward hold only the requests that
	// carried an event whose id starts with it; held counts them.
	holdPrefix string
	held       int
}

// NewWebhook returns a receiver checking signatures made with secret.
func NewWebhook(secret []byte) *Webhook { return &Webhook{Secret: secret, got: map[string]int{}} }

// Down makes the receiver answer 503 (true) or accept again (false).
func (r *Webhook) Down(down bool) { r.mu.Lock(); r.down = down; r.mu.Unlock() }

// Slow makes each request take d, as a busy receiver's would.
func (r *Webhook) Slow(d time.Duration) { r.mu.Lock(); r.delay = d; r.mu.Unlock() }

// HoldAfterEvents accepts n requests and keeps every later one waiting until
// Release, or until its client gives up (a killed forwarder): a test that
// kills a forwarder part way then finds it part way however fast or slow
// the machine is, where a delay alone can let every batch through first.
// It counts only the requests that carry an event whose id starts with
// prefix: the records a gateway or the writer seals on its own
// (policy.loaded, ledger.clock.status) may fill the first request,
// before the events a test sends.
func (r *Webhook) HoldAfterEvents(n int, prefix string) {
	r.mu.Lock()
	r.hold, r.released, r.holdPrefix, r.held = n, make(chan struct{}), prefix, 0
	r.mu.Unlock()
}

// Release lets the requests HoldAfterEvents keeps waiting go on, and stops
// holding.
func (r *Webhook) Release() {
	r.mu.Lock()
	if r.released != nil {
		close(r.released)
	}
	r.hold, r.released = 0, nil
	r.mu.Unlock()
}

func (r *Webhook) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	delay := r.delay
	r.mu.Unlock()
	time.Sleep(delay)
	r.mu.Lock()
	if r.released != nil && r.held >= r.hold {
		released := r.released
		r.mu.Unlock()
		select {
		case <-released:
		case <-req.Context().Done():
			return // the client is gone; nothing was accepted
		}
		r.mu.Lock()
	}
	defer r.mu.Unlock()
	r.Requests++
	if err := siem.CheckSignature(r.Secret, req.Header.Get(siem.HeaderTimestamp), req.Header.Get(siem.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		r.BadSigs++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if r.down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	var batch []struct {
		Index uint64 `json:"index"`
		Event struct {
			ID string `json:"id"`
		} `json:"event"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, b := range batch {
		if r.Poison != "" && b.Event.ID == r.Poison {
			http.Error(w, "this receiver refuses "+r.Poison, http.StatusBadRequest)
			return
		}
	}
	idx := make([]uint64, len(batch))
	counted := false
	for i, b := range batch {
		r.got[b.Event.ID]++
		idx[i] = b.Index
		counted = counted || strings.HasPrefix(b.Event.ID, r.holdPrefix)
	}
	if counted {
		r.held++
	}
	r.batches = append(r.batches, idx)
	r.bodies = append(r.bodies, body)
}

// Bodies returns the body of each accepted request, byte for byte as it
// arrived.
func (r *Webhook) Bodies() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies)
}

// Batches returns the ledger indexes each accepted request carried.
func (r *Webhook) Batches() [][]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

// RequestCount is how many signed requests the receiver answered.
func (r *Webhook) RequestCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Requests
}

// Got returns how many times each event id was accepted.
func (r *Webhook) Got() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.got))
	for k, v := range r.got {
		out[k] = v
	}
	return out
}

// HEC is a Splunk HTTP Event Collector as Splunk documents it:
// "Authorization: Splunk TOKEN"; batches of event objects on
// /services/collector/event; with a request channel, an ackId per
// request, the batch indexed at the first /services/collector/ack query
// about it and reported indexed at the next. Down answers 503 (code 9);
// the poison event is refused with 400, code 6 (invalid data format).
type HEC struct {
	Token   string
	Poison  string
	mu      sync.Mutex
	got     map[string]int
	pending map[int64][]string
	nextAck int64
	down    bool
	NoAuth  int
}

// NewHEC returns a collector accepting token.
func NewHEC(token string) *HEC {
	return &HEC{Token: token, got: map[string]int{}, pending: map[int64][]string{}}
}

// Down makes the collector busy (true) or accepting again (false).
func (h *HEC) Down(down bool) { h.mu.Lock(); h.down = down; h.mu.Unlock() }

func (h *HEC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	reply := func(code int, body string) { w.WriteHeader(code); io.WriteString(w, body) }
	if r.Header.Get("Authorization") != "Splunk "+h.Token {
		h.NoAuth++
		reply(401, `{"text":"Token is required","code":2}`)
		return
	}
	switch r.URL.Path {
	case "/services/collector/ack":
		var q struct{ Acks []int64 }
		json.NewDecoder(r.Body).Decode(&q)
		out := map[string]bool{}
		for _, id := range q.Acks {
			ids, waiting := h.pending[id]
			if waiting { // indexed now: the next query says so
				for _, e := range ids {
					h.got[e]++
				}
				delete(h.pending, id)
			}
			out[fmt.Sprint(id)] = !waiting && id < h.nextAck
		}
		b, _ := json.Marshal(map[string]any{"acks": out})
		reply(200, string(b))
	case "/services/collector/event":
		if h.down {
			reply(503, `{"text":"Server is busy","code":9}`)
			return
		}
		dec := json.NewDecoder(r.Body)
		var ids []string
		for dec.More() {
			var e struct {
				Event  json.RawMessage `json:"event"`
				Fields map[string]any  `json:"fields"`
				Time   float64         `json:"time"`
			}
			if err := dec.Decode(&e); err != nil || len(e.Event) == 0 {
				reply(400, fmt.Sprintf(`{"text":"Invalid data format","code":6,"invalid-event-number":%d}`, len(ids)))
				return
			}
			id, _ := e.Fields["event_id"].(string)
			if h.Poison != "" && id == h.Poison {
				reply(400, fmt.Sprintf(`{"text":"Invalid data format","code":6,"invalid-event-number":%d}`, len(ids)))
				return
			}
			ids = append(ids, id)
		}
		if r.Header.Get("X-Splunk-Request-Channel") == "" {
			for _, id := range ids {
				h.got[id]++
			}
			reply(200, `{"text":"Success","code":0}`)
			return
		}
		id := h.nextAck
		h.nextAck++
		h.pending[id] = ids
		reply(200, fmt.Sprintf(`{"text":"Success","code":0,"ackId":%d}`, id))
	default:
		reply(404, `{"text":"The requested URL was not found on this server.","code":404}`)
	}
}

// Got returns how many times each event id was indexed.
func (h *HEC) Got() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.got))
	for k, v := range h.got {
		out[k] = v
	}
	return out
}
