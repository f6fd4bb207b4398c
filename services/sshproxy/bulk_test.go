package sshproxy_test

import (
	"bytes"
	"fmt"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/test/natstest"
)

// playStream joins a session's recorded chunks of one stream, opening
// its bulk pieces from the bus with the key store: the text chunks'
// bytes and the pieces' bytes, and how many of each.
func (f *fixture) playStream(t *testing.T, evs []natstest.Stored, name string) (out []byte, text, pieces int) {
	t.Helper()
	var chunks []natstest.Stored
	for _, e := range evs {
		if e.Event.Type == events.SessionOutput && e.Payload["stream"] == name {
			chunks = append(chunks, e)
		}
	}
	slices.SortFunc(chunks, func(a, b natstest.Stored) int {
		return int(a.Payload["offset"].(float64) - b.Payload["offset"].(float64))
	})
	for _, c := range chunks {
		if int(c.Payload["offset"].(float64)) != len(out) {
			t.Fatalf("stream %s: a chunk at %v after %d bytes", name, c.Payload["offset"], len(out))
		}
		out = append(out, gatewaytest.ChunkBytes(t, f.js, f.pii, c.Event, c.Payload)...)
		if c.Payload["bulk"] != nil {
			pieces++
		} else {
			text++
		}
	}
	return out, text, pieces
}

// Output in bulk — cat of a 6 MiB file — is sealed as encrypted pieces:
// the client gets every byte, the pieces with the text chunks before them
// are the stream, and a card number inside the bulk is on no copy on the
// bus in clear.
func TestBulkOutputSealedAsPieces(t *testing.T) {
	f := start(t, options{})
	c := f.loginAs(t, "alice", "a")
	card := gatewaytest.Card(t)
	var file bytes.Buffer
	for file.Len() < 6<<20 {
		line := make([]byte, 60)
		for i := range line {
			line[i] = "abcdefghijklmnopqrstuvwxyz  "[mathrand.IntN(28)]
		}
		fmt.Fprintf(&file, "%07d %s\n", file.Len()/61, line)
		if file.Len() > 4<<20 && !bytes.Contains(file.Bytes(), []byte(card)) {
			fmt.Fprintf(&file, "card %s\n", card)
		}
	}
	path := filepath.Join(t.TempDir(), "big.txt")
	if err := os.WriteFile(path, file.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(path), 0o755)
	out, errOut, err := f.ssh(t, c, "", f.user("web"), "cat "+path)
	if err != nil {
		t.Fatalf("ssh: %v %s", err, errOut)
	}
	if out != file.String() {
		t.Fatalf("the client got %d bytes of the %d catted", len(out), file.Len())
	}
	ended := f.waitFor(t, 1, ofType(events.SessionEnded))[0]
	evs := f.sessionEvents(t, ended.Event.SessionID)
	played, text, pieces := f.playStream(t, evs, "stdout")
	if !bytes.Equal(played, file.Bytes()) {
		t.Fatalf("the recorded stdout plays %d bytes, not the %d the client saw", len(played), file.Len())
	}
	// How much was bulk depends on the machine's pauses (a busy one may
	// stall a second); that some was, does not.
	if pieces == 0 {
		t.Errorf("stdout recorded as %d text chunks and no piece", text)
	}
	t.Logf("stdout: %d text chunks, %d pieces", text, pieces)
	bytesOnBus := gatewaytest.BusBytes(t, f.js)
	gatewaytest.CheckAbsent(t, bytesOnBus, card)
	if strings.Contains(string(bytesOnBus), "0065536 ") {
		t.Error("the bus holds a line of the bulk in clear")
	}
}
