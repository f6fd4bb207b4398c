// Package gatewaytest helps test the recording rule of every gateway:
// canary values unique to one test (Luhn-valid card numbers, e-mail
// addresses) and a byte search of everything the bus stores, in every
// stream (the approvals bucket's included), so a test can show that a
// value sent through a gateway reached no copy in any written form.
package gatewaytest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
	"github.com/auditledger/auditledger/ledger/piikeys"
)

// Card is a Luhn-valid card number unique to one test, written in groups
// of four ("4xxx xxxx xxxx xxxx").
func Card(t testing.TB) string {
	t.Helper()
	d := make([]int, 15)
	d[0] = 4
	for i := 1; i < 15; i++ {
		n, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			t.Fatal(err)
		}
		d[i] = int(n.Int64())
	}
	sum := 0
	for i := range d { // from the right, the check digit's neighbour doubles
		v := d[14-i]
		if i%2 == 0 {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	d = append(d, (10-sum%10)%10)
	var b strings.Builder
	for i, v := range d {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, v)
	}
	return b.String()
}

// Email is an e-mail address unique to one test.
func Email(t testing.TB, name string) string {
	var b [6]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s.%x@example.org", name, b)
}

// Forms are the written forms a value is searched in: as typed, digits
// only (no spaces), and with dashes for spaces.
func Forms(v string) []string {
	return []string{v, strings.ReplaceAll(v, " ", ""), strings.ReplaceAll(v, " ", "-")}
}

// BusBytes is every message of every stream the bus holds, raw.
func BusBytes(t testing.TB, js jetstream.JetStream) []byte {
	t.Helper()
	var all []byte
	// The names first: a lister left waiting while a large stream is
	// read times out.
	var streams []string
	names := js.StreamNames(t.Context())
	for name := range names.Name() {
		streams = append(streams, name)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	for _, name := range streams {
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
			m, err := s.GetMsg(t.Context(), seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue // deleted
			}
			if err != nil {
				// A message skipped would be a message not searched.
				t.Fatalf("reading %s message %d: %v", name, seq, err)
			}
			all = append(append(all, m.Data...), '\n')
		}
	}
	return all
}

// CheckAbsent fails t for each form of each value found in stored.
func CheckAbsent(t testing.TB, stored []byte, values ...string) {
	t.Helper()
	for _, v := range values {
		for _, form := range Forms(v) {
			if i := bytes.Index(stored, []byte(form)); i >= 0 {
				t.Errorf("the bus stores %q: …%s…", form, stored[max(0, i-200):min(len(stored), i+100)])
			}
		}
	}
}

// ChunkBytes is what a session.output chunk recorded of its stream: the
// bytes of its data, or of its bulk piece (docs/FORMAT.md §1.7), opened
// from the bus with keys; nil for a chunk recorded as its digest only.
func ChunkBytes(t testing.TB, js jetstream.JetStream, keys *piikeys.Store, ev *events.Event, payload map[string]any) []byte {
	t.Helper()
	if payload["binary"] == true {
		return nil
	}
	ref, ok := payload["bulk"].(map[string]any)
	if !ok {
		b, err := base64.StdEncoding.DecodeString(payload["data"].(string))
		if err != nil {
			t.Fatalf("event %s: data: %v", ev.ID, err)
		}
		return b
	}
	if keys == nil {
		t.Fatalf("event %s: a bulk piece, and no key store to open it", ev.ID)
	}
	name := ref["object"].(string)
	st, err := js.Stream(t.Context(), bus.BulkStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(t.Context(), bus.BulkSubject(ev.Source.Instance, name))
	if err != nil {
		t.Fatalf("event %s: piece %s: %v", ev.ID, name, err)
	}
	if piikeys.BulkName(m.Data) != name || float64(len(m.Data)) != ref["size"] {
		t.Fatalf("event %s: piece %s is %d bytes named %s", ev.ID, name, len(m.Data), piikeys.BulkName(m.Data))
	}
	stream, _ := payload["stream"].(string)
	offset, _ := payload["offset"].(float64)
	b, err := keys.OpenBulk(t.Context(), ref["pseudonym"].(string),
		piikeys.BulkPlace{Tenant: ev.Tenant, Session: ev.SessionID, Stream: stream, Offset: int64(offset)}, m.Data)
	if err != nil {
		t.Fatalf("event %s: %v", ev.ID, err)
	}
	if float64(len(b)) != payload["bytes"] {
		t.Fatalf("event %s: piece %s holds %d bytes, the event says %v", ev.ID, name, len(b), payload["bytes"])
	}
	return b
}
