package siem

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook signature headers (docs/SIEM.md, "Webhook").
const (
	HeaderTimestamp = "Auditledger-Timestamp"
	HeaderSignature = "Auditledger-Signature"
)

// Webhook posts batches as JSON arrays of rendered records (or, for CEF,
// lines of text) to an HTTPS endpoint, signed with HMAC-SHA256 over the
// timestamp and the body.
type Webhook struct {
	URL    string
	Secret []byte
	// Client sends the requests (default: one with a 30 s timeout).
	Client *http.Client
	// Timeout bounds each exchange as a whole — connecting, sending, the
	// answer and its body — whatever Client's own timeout (default 30 s).
	Timeout time.Duration
	Now     func() time.Time
}

var defaultClient = &http.Client{Timeout: 30 * time.Second}

func (w *Webhook) String() string { return "webhook " + w.URL }

// Sign is the signature header's value for a body sent at ts:
// "v1=" + hex(HMAC-SHA256(secret, decimal ts + "." + body)).
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// CheckSignature is what a receiver does: the signature must match and
// the timestamp be within tolerance of now (replays of an old request
// fail; within the tolerance the event ids deduplicate).
func CheckSignature(secret []byte, tsHeader, sigHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return fmt.Errorf("%s %q: not a Unix time", HeaderTimestamp, tsHeader)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%s is %v from now, more than %v: a replay?", HeaderTimestamp, d.Round(time.Second), tolerance)
	}
	if !hmac.Equal([]byte(Sign(secret, ts, body)), []byte(sigHeader)) {
		return errors.New("signature does not match")
	}
	return nil
}

// Send posts items; 2xx confirms them, 4xx (but 408 and 429) rejects the
// batch, anything else fails it. It is safe for concurrent use.
func (w *Webhook) Send(ctx context.Context, items []Item) (map[int]error, error) {
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body bytes.Buffer
	ctype := "application/json"
	if len(items) > 0 && bytes.HasPrefix(items[0].Body, []byte("CEF:")) {
		ctype = "text/plain; charset=utf-8"
		for _, it := range items {
			body.Write(it.Body)
			body.WriteByte('\n')
		}
	} else {
		body.WriteByte('[')
		for i, it := range items {
			if i > 0 {
				body.WriteByte(',')
			}
			body.Write(it.Body)
		}
		body.WriteByte(']')
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := now().Unix()
	records := fmt.Sprintf("%d-%d", items[0].Index, items[len(items)-1].Index)
	h := http.Header{}
	h.Set("Content-Type", ctype)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, Sign(w.Secret, ts, body.Bytes()))
	h.Set("Auditledger-Records", records)
	if err := Post(ctx, w.Client, w.URL, w.URL, body.Bytes(), h); err != nil {
		var rej *Rejection
		if !errors.As(err, &rej) {
			err = fmt.Errorf("records %s: %w", records, err)
		}
		return nil, err
	}
	return nil, nil
}

// Post sends body to url with header and reads the answer: 2xx is nil,
// 4xx (but 408 and 429) a *Rejection (never to be sent again as it is),
// anything else an error to try again. Errors name the endpoint as name,
// never url (a Slack-compatible webhook's URL is its secret). client nil
// is one with a 30 s timeout.
func Post(ctx context.Context, client *http.Client, name, url string, body []byte, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", name, redactURL(err, url, name))
	}
	req.Header = header
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", name, redactURL(err, url, name))
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 512))
	if err != nil && resp.StatusCode/100 != 4 {
		return fmt.Errorf("%s answered %s, then reading the answer: %w", name, resp.Status, redactURL(err, url, name))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429:
		return &Rejection{Reason: fmt.Sprintf("%s answered %s: %s", name, resp.Status, bytes.TrimSpace(msg))}
	}
	return fmt.Errorf("%s answered %s: %s", name, resp.Status, bytes.TrimSpace(msg))
}

// redactURL replaces url by name in err's text when they differ (the
// client's errors quote the URL).
func redactURL(err error, url, name string) error {
	if err == nil || url == name || !strings.Contains(err.Error(), url) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), url, name))
}
