package siem_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
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
