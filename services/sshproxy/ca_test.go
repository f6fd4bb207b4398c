package sshproxy

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
)

// Rotating the user CA: the old one, moved aside with its public key
// kept, still admits its certificates; the new one signs from then on;
// the host CA and host key persist across starts.
func TestUserCARotation(t *testing.T) {
	dir := t.TempDir()
	k1, err := OpenKeys(dir, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	old := k1.UserCA.PublicKey()
	for _, f := range []string{UserCAFile, UserCAFile + ".pub"} {
		to := filepath.Join(dir, UserCAFile+".2026-12")
		if f != UserCAFile {
			to += ".pub"
		}
		if err := os.Rename(filepath.Join(dir, f), to); err != nil {
			t.Fatal(err)
		}
	}
	k2, err := OpenKeys(dir, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if keysEqual(k2.UserCA.PublicKey(), old) {
		t.Fatal("no new user CA")
	}
	if !k2.isUserAuthority(old) || !k2.isUserAuthority(k2.UserCA.PublicKey()) {
		t.Error("after the rotation, the old and the new user CA must both be trusted")
	}
	if !keysEqual(k1.HostCA.PublicKey(), k2.HostCA.PublicKey()) || !keysEqual(k1.Host.PublicKey(), k2.Host.PublicKey()) {
		t.Error("the host CA or host key changed across starts")
	}
}

// A character split between two chunks is held for the next frame, so
// each frame is valid UTF-8 and together they are the stream's bytes.
func TestCastSplitsCharactersWhole(t *testing.T) {
	start := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	text := []byte("grüße → ok\n")
	cut := 3 // inside ü
	ev := func(seq uint64, typ events.Type, payload string, at time.Duration) *events.Event {
		return &events.Event{ID: "s." + string(rune('0'+seq)), Type: typ, SessionID: "s", SessionSeq: seq, Time: start.Add(at), Payload: []byte(payload)}
	}
	chunk := func(b []byte) string {
		return `{"stream":"stdout","data":"` + base64.StdEncoding.EncodeToString(b) + `"}`
	}
	c, err := CastOf([]*events.Event{
		ev(3, events.SessionOutput, chunk(text[cut:]), 2*time.Second),
		ev(1, events.SessionStarted, `{"pty":{"term":"xterm","cols":100,"rows":30}}`, 0),
		ev(2, events.SessionOutput, chunk(text[:cut]), time.Second),
	}, "s")
	if err != nil {
		t.Fatal(err)
	}
	if c.Width != 100 || c.Height != 30 || len(c.Frames) != 2 {
		t.Fatalf("cast %+v", c)
	}
	if c.Frames[0].Data != "gr" || c.Frames[0].Data+c.Frames[1].Data != string(text) || c.Frames[1].Time != 2 {
		t.Errorf("frames %+v", c.Frames)
	}
}
