package sshproxy

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
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

// A chunk redacted as a whole (its data the placeholder, not base64)
// plays as the placeholder; data that is neither fails the cast.
func TestCastPlaysWholeRedactions(t *testing.T) {
	start := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	ev := func(seq uint64, typ events.Type, payload string) *events.Event {
		return &events.Event{ID: "s." + string(rune('0'+seq)), Type: typ, SessionID: "s", SessionSeq: seq, Time: start.Add(time.Duration(seq) * time.Second), Payload: []byte(payload)}
	}
	c, err := CastOf([]*events.Event{
		ev(1, events.SessionStarted, `{}`),
		ev(2, events.SessionOutput, `{"stream":"stdout","data":"`+base64.StdEncoding.EncodeToString([]byte("before\n"))+`"}`),
		ev(3, events.SessionOutput, `{"stream":"stdout","data":"[REDACTED:credit_card]"}`),
	}, "s")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Frames) != 2 || c.Frames[1].Data != "[REDACTED:credit_card]" {
		t.Fatalf("frames %+v", c.Frames)
	}
	if _, err := CastOf([]*events.Event{ev(1, events.SessionStarted, `{}`), ev(2, events.SessionOutput, `{"stream":"stdout","data":"not base64 [REDACTED:x]"}`)}, "s"); err == nil {
		t.Fatal("data neither base64 nor a placeholder played")
	}
}

// Serials are recorded in decimal; a draw the detectors would take for a
// card number (about one random 19-digit number in ten) would be sealed
// as a placeholder and the certificate could no longer be found by it.
func TestSerialsAreNeverDetectorMatches(t *testing.T) {
	for range 5000 {
		s := randSerial()
		if s == 0 {
			t.Fatal("serial 0 drawn: a KRL can never revoke it")
		}
		if sp := detect.Spans(strconv.FormatUint(s, 10)); len(sp) > 0 {
			t.Fatalf("serial %d drawn, which the %s detector matches", s, sp[0].Detector)
		}
	}
}

// A retired CA is trusted only for the overlap its file name dates; a
// file named without that date stops the gateway instead of being
// trusted without an end.
func TestUndatedRetiredCARefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenKeys(dir, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(dir, UserCAFile+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, UserCAFile+".old.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = OpenKeys(dir, []string{"localhost"})
	if err == nil || !strings.Contains(err.Error(), "user_ca.old.pub") {
		t.Fatalf("OpenKeys with an undated retired CA: %v, want an error naming the file", err)
	}
}

// A configured KRL path with no file refuses (as OpenSSH's RevokedKeys
// does); the default path with no file revokes nothing.
func TestConfiguredKRLMissingFailsClosed(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "revoked_keys")
	if k, err := (&krlFile{path: missing, required: true}).get(); err == nil || k != nil {
		t.Fatalf("configured KRL missing: %v, %v; want an error", k, err)
	}
	if k, err := (&krlFile{path: missing}).get(); err != nil || k != nil {
		t.Fatalf("default KRL missing: %v, %v; want nothing revoked", k, err)
	}
}
