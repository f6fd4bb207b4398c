package siem_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/services/siem"
)

// A Slack-compatible webhook's URL is its secret: written in any case,
// or with a user, it stays out of the error and so out of the log, also
// when the client quotes the URL in its own form.
func TestPostErrorNeverQuotesTheURL(t *testing.T) {
	for _, endpoint := range []string{
		"HTTPS://127.0.0.1:1/services/T/B/SECRETXYZ",
		"https://127.0.0.1:1/services/T/B/SECRETXYZ",
		"http://bob:SECRETXYZ@127.0.0.1:1/hook",
		"https://127.0.0.1:1/hook?token=SECRETXYZ",
		"https://127.0.0.1:1/services/T/B/SECRETXYZ\x7f",
	} {
		var log bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&log, nil))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := siem.Post(ctx, &http.Client{}, "slack destination secops", endpoint, []byte("{}"), http.Header{})
		cancel()
		if err == nil {
			t.Fatalf("%q: no error", endpoint)
		}
		logger.Error("delivery failed", "err", err)
		if strings.Contains(strings.ToLower(log.String()), "secretxyz") {
			t.Errorf("%q: the log holds the secret: %s", endpoint, log.String())
		}
		if !strings.Contains(err.Error(), "slack destination secops") {
			t.Errorf("%q: the error does not name the destination: %v", endpoint, err)
		}
	}
	// A timeout stays one behind the redaction.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := siem.Post(ctx, &http.Client{}, "slack destination secops", "HTTPS://127.0.0.1:1/services/T/B/SECRETXYZ", []byte("{}"), http.Header{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled request is not context.Canceled: %v", err)
	}
}

// A 429 or 503 with Retry-After tells the forwarder how long to wait,
// capped at MaxRetryAfter; without one, or unreadable, the usual backoff.
func TestRetryAfterIsHonouredCapped(t *testing.T) {
	for _, c := range []struct {
		status int
		header string
		want   time.Duration // 0: no RetryAfter
	}{
		{429, "7", 7 * time.Second},
		{429, "86400", siem.MaxRetryAfter},
		{503, "2", 2 * time.Second},
		{429, "", 0},
		{429, "soon", 0},
		{429, "-3", 0},
		{500, "7", 0},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c.header != "" {
				w.Header().Set("Retry-After", c.header)
			}
			w.WriteHeader(c.status)
		}))
		err := siem.Post(context.Background(), srv.Client(), "slack destination secops", srv.URL+"/services/T/B/SECRETXYZ", []byte("{}"), http.Header{})
		srv.Close()
		var ra *siem.RetryAfter
		var rej *siem.Rejection
		switch {
		case err == nil || errors.As(err, &rej):
			t.Errorf("%d %q: %v, want a failure to try again", c.status, c.header, err)
		case c.want == 0 && errors.As(err, &ra):
			t.Errorf("%d %q: retry after %v, want the usual backoff", c.status, c.header, ra.After)
		case c.want != 0 && (!errors.As(err, &ra) || ra.After != c.want):
			t.Errorf("%d %q: %v, want retry after %v", c.status, c.header, err, c.want)
		}
	}
}
