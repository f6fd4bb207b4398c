package sshproxy

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
)

// Rotating the user CA: the new one signs from then on, the old one's
// certificates are accepted for the overlap (MaxUserCertValidity) and no
// longer; the old private key is gone; the host CA and host key persist
// across starts.
func TestUserCARotation(t *testing.T) {
	dir := t.TempDir()
	k1, err := OpenKeys(dir, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	old := k1.UserCA.PublicKey()
	at := time.Date(2026, 12, 7, 3, 12, 0, 0, time.UTC)
	retired, err := RotateUserCA(dir, at)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(retired) != "user_ca.20261207T031200Z.pub" {
		t.Errorf("retired as %s", retired)
	}
	if _, err := os.Stat(filepath.Join(dir, "user_ca.20261207T031200Z")); err == nil {
		t.Error("the retired CA's private key was kept")
	}
	k2, err := OpenKeys(dir, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if keysEqual(k2.UserCA.PublicKey(), old) {
		t.Fatal("no new user CA")
	}
	if !k2.isUserAuthority(old, at.Add(MaxUserCertValidity-time.Second)) || !k2.isUserAuthority(k2.UserCA.PublicKey(), at.Add(time.Hour)) {
		t.Error("during the overlap, the old and the new user CA must both be trusted")
	}
	if k2.isUserAuthority(old, at.Add(MaxUserCertValidity)) {
		t.Error("the old user CA is trusted after the overlap")
	}
	if !keysEqual(k1.HostCA.PublicKey(), k2.HostCA.PublicKey()) || !keysEqual(k1.Host.PublicKey(), k2.Host.PublicKey()) {
		t.Error("the host CA or host key changed across starts")
	}
	if _, err := ActivateTargetCA(dir, at); err == nil {
		t.Error("a target CA was activated without being staged")
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
