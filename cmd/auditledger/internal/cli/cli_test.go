package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestCode: nil exits 0, a failure the command established 1, anything
// else 2, through any wrapping.
func TestCode(t *testing.T) {
	for err, want := range map[error]int{
		nil:                                   0,
		Failed(errors.New("does not verify")): 1,
		fmt.Errorf("verify: %w", Failed(errors.New("gap"))): 1,
		Usagef("verify: --store is required"):               2,
		errors.New("connect: connection refused"):           2,
	} {
		if got := Code(err); got != want {
			t.Errorf("Code(%v) = %d, want %d", err, got, want)
		}
	}
}

// TestLogger: the command line's flags win over the command's defaults,
// and durations read as durations.
func TestLogger(t *testing.T) {
	var b bytes.Buffer
	ctx := WithLog(context.Background(), Log{Format: "json"})
	log := Logger(ctx, &b, "text", "warn")
	log.Info("not logged: below the command's level")
	log.Warn("waited", "for", 1500*time.Millisecond)
	var line map[string]any
	if err := json.Unmarshal(b.Bytes(), &line); err != nil || line["msg"] != "waited" || line["for"] != "1.5s" {
		t.Fatalf("%q: %v", b.String(), err)
	}
	if err := (Log{Level: "loud"}).Check(); err == nil {
		t.Error("--log-level loud accepted")
	}
}
