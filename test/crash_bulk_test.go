package test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/eventstest"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/test/natstest"
)

// TestCrashKill9Bulk: the ledger process is killed with SIGKILL at random
// moments while a gateway publishes bulk pieces (sealed with
// piikeys.SealBulk, on AUDIT_BULK under its token) and the session.output
// events naming them, between ordinary events — so some kills fall
// between a batch's copies and its segment, and between a segment and the
// deletion of its pieces. Afterwards every acknowledged event is sealed
// exactly once, verify checks every piece in the store, and AUDIT_BULK is
// empty: each piece was deleted once its segment was stored.
// AUDITLEDGER_BULK_CRASH_KILLS sets the number of kills (default 10).
func TestCrashKill9Bulk(t *testing.T) {
	kills := 10
	if v := os.Getenv("AUDITLEDGER_BULK_CRASH_KILLS"); v != "" {
		kills, _ = strconv.Atoi(v)
	}
	srv := natstest.StartSecure(t)
	_, js := srv.Connect(t)
	keys, storeDir := t.TempDir(), t.TempDir()
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	config := serveConfig(t, srv, storeDir, filepath.Join(keys, "ledger.key"))
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	pkeys, err := piikeys.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	em, _ := emitter.New(emitter.Config{JetStream: js})
	defer em.Close()
	unsealed := unsealedEvents(js)
	var mu sync.Mutex
	acked := map[string]bool{}
	ctx, stopProducer := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		var offset int64
		for i := 0; ctx.Err() == nil; i++ {
			ev := eventstest.Command("bulk-crash-"+strconv.Itoa(i), "SELECT 1")
			if i%3 == 0 {
				data := make([]byte, 1+mrand.IntN(64<<10))
				rand.Read(data)
				place := piikeys.BulkPlace{Tenant: "acme", Session: "ssh-crash", Stream: "stdout", Offset: offset}
				object, pseudonym, err := pkeys.SealBulk(ctx, "https://idp.example", "alice", place, data)
				if err != nil {
					continue
				}
				name := piikeys.BulkName(object)
				m := nats.NewMsg(bus.BulkSubject(ev.Source.Instance, name))
				m.Data = object
				m.Header.Set(nats.MsgIdHdr, name)
				if _, err := js.PublishMsg(ctx, m); err != nil {
					continue // as a gateway does: not recorded as bulk
				}
				offset += int64(len(data))
				ev.ID, ev.Type, ev.SessionID, ev.SessionSeq = "bulk-crash-piece-"+strconv.Itoa(i), events.SessionOutput, "ssh-crash", uint64(i+1)
				ev.Payload, _ = json.Marshal(map[string]any{"stream": "stdout", "offset": place.Offset, "bytes": len(data),
					"bulk": map[string]any{"object": name, "pseudonym": pseudonym, "size": len(object)}})
			}
			res, err := em.Emit(ctx, ev)
			if err == nil && res.Stored(false) == nil {
				mu.Lock()
				acked[ev.ID] = true
				mu.Unlock()
			}
			for i%20 == 0 && ctx.Err() == nil && unsealed(ctx) > 300 {
				time.Sleep(10 * time.Millisecond) // until the writer catches up
			}
		}
	})

	seed := uint64(time.Now().UnixNano())
	rng := mrand.New(mrand.NewPCG(seed, 3))
	t.Logf("kill-time seed %d", seed)
	var kv jetstream.KeyValue
	for range kills {
		cmd := startServe(t, config)
		natstest.CheckFor(t, 30*time.Second, 5*time.Millisecond, func() (err error) {
			if kv == nil {
				if kv, err = js.KeyValue(t.Context(), bus.LeaseBucket); err != nil {
					return err
				}
			}
			e, err := kv.Get(t.Context(), "ledger")
			if err != nil {
				return err
			}
			if !strings.Contains(string(e.Value()), fmt.Sprintf("-%d-", cmd.Process.Pid)) {
				return fmt.Errorf("lease held by %s", e.Value())
			}
			return nil
		})
		time.Sleep(time.Duration(rng.IntN(600)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	stopProducer()
	wg.Wait()

	cmd := startServe(t, config)
	waitDrained(t, js, 120*time.Second)
	// The last segment's pieces are deleted once it is stored, after the
	// events are acknowledged: wait for the stream, not the consumer.
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		s, err := js.Stream(t.Context(), bus.BulkStream)
		if err != nil {
			return err
		}
		info, err := s.Info(t.Context())
		if err == nil && info.State.Msgs != 0 {
			err = fmt.Errorf("%s holds %d pieces after every event naming one was sealed", bus.BulkStream, info.State.Msgs)
		}
		return err
	})
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()

	count := sealedOnce(t, storeDir, keys, acked)
	pieces := 0 // the sealed events naming a piece, each its own
	for id := range count {
		if strings.HasPrefix(id, "bulk-crash-piece-") {
			pieces++
		}
	}
	r := mustRun(t, nil, nil, "verify", "--store", storeDir, "--vkey", filepath.Join(keys, "ledger.vkey"))
	if !strings.Contains(r.stdout, fmt.Sprintf("bulk pieces  %d (", pieces)) {
		t.Fatalf("verify does not count the %d pieces:\n%s", pieces, r.stdout)
	}
	t.Logf("%d kills; %d events acknowledged (%d naming a bulk piece), %d sealed exactly once", kills, len(acked), pieces, len(count))
}
