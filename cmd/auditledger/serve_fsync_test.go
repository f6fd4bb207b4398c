package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// serve reads the NATS server's fsync setting from its monitoring port and
// warns when it acknowledges before the disk has the message.
func TestServeWarnsWhenNATSDoesNotFsync(t *testing.T) {
	for _, always := range []bool{false, true} {
		s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, HTTPHost: "127.0.0.1", HTTPPort: -1,
			JetStream: true, StoreDir: t.TempDir(), SyncAlways: always, NoSigs: true, NoLog: true})
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats server not ready")
		}
		defer s.Shutdown()
		var buf bytes.Buffer
		warnUnlessFsync(context.Background(), "http://"+s.MonitorAddr().String(), slog.New(slog.NewTextHandler(&buf, nil)))
		out := buf.String()
		warned := strings.Contains(out, "level=WARN") && strings.Contains(out, "acknowledges events before they are on disk") && strings.Contains(out, "sync_interval=2m0s")
		if warned == always || always && !strings.Contains(out, "fsyncs every message") {
			t.Errorf("sync always %v: logged %q", always, out)
		}
	}
	var buf bytes.Buffer
	warnUnlessFsync(context.Background(), "", slog.New(slog.NewTextHandler(&buf, nil)))
	if !strings.Contains(buf.String(), "cannot tell whether the NATS server fsyncs") || !strings.Contains(buf.String(), "nats.monitor") {
		t.Errorf("without nats.monitor: logged %q", buf.String())
	}
}
