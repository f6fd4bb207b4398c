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
	"sync"
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
	chanOnce   sync.Once
	channel    string
}

func (h *HEC) String() string { return "splunk-hec " + h.URL }

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

// post sends one request to the collector, with the token and, with
// acknowledgement, the channel; it returns the status and the body.
func (h *HEC) post(ctx context.Context, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(h.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Splunk "+h.Token)
	req.Header.Set("Content-Type", "application/json")
	if h.Ack {
		h.chanOnce.Do(func() { // one channel for every batch, concurrent ones too
			var b [16]byte
			rand.Read(b[:])
			b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
			h.channel = fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
		})
		req.Header.Set("X-Splunk-Request-Channel", h.channel)
	}
	resp, err := h.client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, raw, err
}

// Send posts items as one batch; 400 with codes 5, 6, 12 or 13 (no data,
// invalid data format, event field missing or blank) rejects it, other
// failures fail it.
func (h *HEC) Send(ctx context.Context, items []Item) (map[int]error, error) {
	// Written by hand around the rendering, which is JSON already (or, for
	// CEF, a string): encoding/json would check and compact every event
	// again.
	var body bytes.Buffer
	st := h.SourceType
	if st == "" {
		st = "auditledger"
	}
	head := []byte(`,"source":"auditledger","sourcetype":` + jsonString(st))
	if h.Index != "" {
		head = append(head, `,"index":`+jsonString(h.Index)...)
	}
	for _, it := range items {
		ev := it.Event
		body.WriteString(`{"time":`)
		body.WriteString(strconv.FormatFloat(float64(ev.Time.UnixMilli())/1000, 'f', 3, 64))
		body.WriteString(`,"host":`)
		body.WriteString(jsonString(ev.Source.Instance))
		body.Write(head)
		body.WriteString(`,"event":`)
		if len(it.Body) > 0 && (it.Body[0] == '{' || it.Body[0] == '[') {
			body.Write(it.Body)
		} else { // CEF: a string event
			body.WriteString(jsonString(string(it.Body)))
		}
		fmt.Fprintf(&body, `,"fields":{"ledger_index":%d,"event_id":%s,"tenant":%s,"event_type":%s}}`+"\n",
			it.Index, jsonString(ev.ID), jsonString(ev.Tenant), jsonString(string(ev.Type)))
	}
	status, raw, err := h.post(ctx, "/services/collector/event", body.Bytes())
	if err != nil {
		return nil, err
	}
	var r hecReply
	json.Unmarshal(raw, &r)
	if r.Text == "" {
		r.Text = strings.TrimSpace(string(raw))
	}
	if status == http.StatusBadRequest && (r.Code == 5 || r.Code == 6 || r.Code == 12 || r.Code == 13) {
		return nil, &Rejection{Reason: fmt.Sprintf("%s refused the batch: %s (code %d)", h, r.Text, r.Code)}
	}
	if status != http.StatusOK || r.Code != 0 {
		return nil, fmt.Errorf("%s: %d %s: %s (code %d)", h, status, http.StatusText(status), r.Text, r.Code)
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
		status, raw, err := h.post(ctx, "/services/collector/ack", query)
		if err == nil && status == http.StatusOK && json.Unmarshal(raw, &acks) == nil && acks.Acks[strconv.FormatInt(id, 10)] {
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

// jsonString is s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
