package evidence_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/ledger/file"
)

// A record larger than the verifier's first buffer (a terminal chunk of
// 12 KB, as the SSH gateway records) verifies: verify read such records
// into a 4 KiB buffer and panicked.
func TestBundleWithLargeRecords(t *testing.T) {
	store, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("total 48 drwxr-xr-x 2 root root 4096 .\n", 300) // 12,000 bytes
	data := base64.StdEncoding.EncodeToString([]byte(text))
	r := newRunWith(t, store, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), 0, func(seg int) [][]byte {
		return [][]byte{fmt.Appendf(nil, `{"version":1,"id":"big-%d","type":"session.output","time":"2026-11-26T09:00:05Z","tenant":"acme","source":{"kind":"ssh-proxy","instance":"ssh-1"},"actor":{"issuer":"https://idp.example.com","subject":"u-1042","kind":"human"},"target":{"kind":"ssh","name":"web-1"},"session_id":"ssh-%d","session_seq":1,"payload":{"stream":"stdout","offset":0,"bytes":%d,"data":%q}}`,
			seg, seg, len(text), data)}
	})
	r.build(t, "acme", r.t0.Add(-time.Hour), r.t0.Add(10*time.Hour))
	if _, err := r.verify(r.bundle); err != nil {
		t.Fatal(err)
	}
}
