package siem

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HEC sends batches to a Splunk HTTP Event Collector: one request per
// batch to /services/collector/event, each event an object with its time,
// source type and the rendering, authenticated with "Authorization: Splunk
// TOKEN". With Ack (the collector's indexer acknowledgement), a batch
// counts as delivered only once the collector says it is indexed.
type HEC struct {
	URL        string // e.g. https://splunk.example:8088
	Token      string
	Index      string // optional
	SourceType string // default "auditledger:<format>"
	Ack        bool
	// AckTimeout bounds the wait for indexing (default 2 minutes); a
	// batch not acknowledged by then is sent again (the event ids
	// deduplicate what was indexed meanwhile).
	AckTimeout time.Duration
	Client     *http.Client
	channel    string
}

func (h *HEC) String() string { return "splunk-hec " + h.URL }

// hecEvent is one event of a batch (Splunk's /services/collector/event
// format).
type hecEvent struct {
	Time       float64         `json:"time"`
	Host       string          `json:"host,omitempty"`
	Source     string          `json:"source"`
	SourceType string          `json:"sourcetype"`
	Index      string          `json:"index,omitempty"`
	Event      json.RawMessage `json:"event"`
	Fields     map[string]any  `json:"fields"`
}

// hecReply is the collector's answer.
type hecReply struct {
	Text               string `json:"text"`
	Code               int    `json:"code"`
	AckID              *int64 `json:"ackId"`
	InvalidEventNumber *int   `json:"invalid-event-number"`
}

func (h *HEC) client() *http.Client {
	if h.Client != nil {
		return h.Client
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (h *HEC) post(ctx context.Context, path string, body []byte) (*http.Response, hecReply, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(h.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, hecReply{}, err
	}
	req.Header.Set("Authorization", "Splunk "+h.Token)
	req.Header.Set("Content-Type", "application/json")
	if h.Ack {
		if h.channel == "" {
			var b [16]byte
			rand.Read(b[:])
			b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
			h.channel = fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
		}
		req.Header.Set("X-Splunk-Request-Channel", h.channel)
	}
	resp, err := h.client().Do(req)
	if err != nil {
		return nil, hecReply{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var r hecReply
	json.Unmarshal(raw, &r)
	if r.Text == "" {
		r.Text = strings.TrimSpace(string(raw))
	}
	return resp, r, nil
}

// Send posts items as one batch; 400 with codes 5, 6, 12 or 13 (no data,
// invalid data format, event field missing or blank) rejects it, other
// failures fail it.
func (h *HEC) Send(ctx context.Context, items []Item) (map[int]error, error) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, it := range items {
		ev := it.Body
		if !json.Valid(ev) { // CEF: a string event
			ev, _ = json.Marshal(string(it.Body))
		}
		st := h.SourceType
		if st == "" {
			st = "auditledger"
		}
		e := hecEvent{Time: float64(it.Event.Time.UnixMilli()) / 1000, Host: it.Event.Source.Instance, Source: "auditledger", SourceType: st,
			Index: h.Index, Event: ev, Fields: map[string]any{"ledger_index": it.Index, "event_id": it.Event.ID, "tenant": it.Event.Tenant, "event_type": string(it.Event.Type)}}
		if err := enc.Encode(e); err != nil {
			return nil, err
		}
	}
	resp, r, err := h.post(ctx, "/services/collector/event", body.Bytes())
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusBadRequest && (r.Code == 5 || r.Code == 6 || r.Code == 12 || r.Code == 13) {
		return nil, &Rejection{Reason: fmt.Sprintf("%s refused the batch: %s (code %d)", h, r.Text, r.Code)}
	}
	if resp.StatusCode != http.StatusOK || r.Code != 0 {
		return nil, fmt.Errorf("%s: %s: %s (code %d)", h, resp.Status, r.Text, r.Code)
	}
	if !h.Ack {
		return nil, nil
	}
	if r.AckID == nil {
		return nil, fmt.Errorf("%s: indexer acknowledgement asked for, but the collector gave no ackId (is useACK on for the token?)", h)
	}
	return nil, h.waitAck(ctx, *r.AckID)
}

// waitAck polls /services/collector/ack until the batch is indexed.
func (h *HEC) waitAck(ctx context.Context, id int64) error {
	timeout := h.AckTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	wait := 50 * time.Millisecond
	query := []byte(`{"acks":[` + strconv.FormatInt(id, 10) + `]}`)
	for {
		var acks struct {
			Acks map[string]bool `json:"acks"`
		}
		if ok, err := h.ackQuery(ctx, query, &acks); err == nil && ok && acks.Acks[strconv.FormatInt(id, 10)] {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: batch (ackId %d) not acknowledged as indexed within %v", h, id, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

func (h *HEC) ackQuery(ctx context.Context, query []byte, into any) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(h.URL, "/")+"/services/collector/ack", bytes.NewReader(query))
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Splunk "+h.Token)
	req.Header.Set("X-Splunk-Request-Channel", h.channel)
	resp, err := h.client().Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, nil
	}
	return true, json.NewDecoder(resp.Body).Decode(into)
}
