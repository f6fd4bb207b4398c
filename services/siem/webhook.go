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
	"net/url"
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
// never endpoint (a Slack-compatible webhook's URL is its secret). client nil
// is one with a 30 s timeout.
func Post(ctx context.Context, client *http.Client, name, endpoint string, body []byte, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, "POST", endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", name, redactURL(err, endpoint, name))
	}
	req.Header = header
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", name, redactURL(err, endpoint, name))
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 512))
	if err != nil && resp.StatusCode/100 != 4 {
		return fmt.Errorf("%s answered %s, then reading the answer: %w", name, resp.Status, redactURL(err, endpoint, name))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429:
		return &Rejection{Reason: fmt.Sprintf("%s answered %s: %s", name, resp.Status, bytes.TrimSpace(msg))}
	}
	err = fmt.Errorf("%s answered %s: %s", name, resp.Status, bytes.TrimSpace(msg))
	if resp.StatusCode == 429 || resp.StatusCode == 503 {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return &RetryAfter{After: d, Err: err}
		}
	}
	return err
}

// MaxRetryAfter caps the wait a destination's Retry-After asks for.
const MaxRetryAfter = 5 * time.Minute

// RetryAfter is a failure (429, 503) whose answer said when to try
// again: After, at most MaxRetryAfter. The forwarder waits at least that
// long before the next attempt.
type RetryAfter struct {
	After time.Duration
	Err   error
}

func (r *RetryAfter) Error() string {
	return fmt.Sprintf("%v (retry after %v)", r.Err, r.After)
}
func (r *RetryAfter) Unwrap() error { return r.Err }

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	var d time.Duration
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		d = time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return 0, false
	}
	return min(d, MaxRetryAfter), true
}

// redactURL keeps endpoint (a Slack-compatible webhook's URL is its
// secret) out of err. A *url.Error, as the client returns, quotes the
// URL in its own form (scheme lowercased, userinfo masked), not as
// configured: its URL becomes the scheme and host alone. Whatever text
// still holds the endpoint, its path, query or user is withheld whole.
// Nothing is changed when endpoint is what errors name it by.
func redactURL(err error, endpoint, name string) error {
	if err == nil || endpoint == name {
		return err
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = &url.Error{Op: uerr.Op, URL: redactedURL(endpoint), Err: uerr.Err}
	}
	text := err.Error()
	if leaks(text, endpoint) {
		return fmt.Errorf("request failed (the error quoted the URL, withheld): %w", errWithheld{err})
	}
	return err
}

// redactedURL is the scheme and host of endpoint, or "(url)".
func redactedURL(endpoint string) string {
	u, err := url.Parse(strings.TrimSpace(endpoint))
	if err != nil || u.Host == "" {
		return "(url)"
	}
	return strings.ToLower(u.Scheme) + "://" + u.Host
}

// leaks reports whether text holds endpoint or a secret part of it, in
// any case.
func leaks(text, endpoint string) bool {
	lt := strings.ToLower(text)
	parts := []string{endpoint}
	if u, err := url.Parse(strings.TrimSpace(endpoint)); err == nil {
		if u.Path != "" && u.Path != "/" {
			parts = append(parts, u.Path, u.EscapedPath())
		}
		parts = append(parts, u.RawQuery)
		if u.User != nil {
			parts = append(parts, u.User.Username())
			if pw, ok := u.User.Password(); ok {
				parts = append(parts, pw)
			}
		}
	}
	for _, p := range parts {
		if p != "" && strings.Contains(lt, strings.ToLower(p)) {
			return true
		}
	}
	return false
}

// errWithheld keeps an error for errors.Is and errors.As (a timeout
// stays one) without its text.
type errWithheld struct{ err error }

func (e errWithheld) Error() string { return "details withheld" }
func (e errWithheld) Unwrap() error { return e.err }
