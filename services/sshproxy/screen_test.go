package sshproxy_test

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/sshproxy"
	"github.com/auditledger/auditledger/test/kubetest"
	"github.com/auditledger/auditledger/test/natstest"
)

// shellOnTerminal runs Debian's ssh, logged in as alice, in a terminal of
// rows x cols, its shell up; exit ends it and returns the session's
// events.
func shellOnTerminal(t *testing.T, f *fixture, rows, cols int) (*kubetest.Terminal, func() []natstest.Stored) {
	t.Helper()
	c := f.loginAs(t, "alice", "a")
	term, err := kubetest.OpenTerminal(rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(term.Close)
	cmd := exec.Command("ssh", "-F", c.config, f.user("web"))
	cmd.Env = append(os.Environ(), "TERM=xterm")
	if err := term.Start(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	term.Type("echo up-$((40+2))\r")
	if _, err := term.WaitFor(ctx, 0, "up-42"); err != nil {
		t.Fatal(err)
	}
	return term, func() []natstest.Stored {
		term.Type("exit\r")
		if err := cmd.Wait(); err != nil {
			t.Fatalf("ssh: %v; the terminal showed %q", err, term.Output())
		}
		ended := f.waitFor(t, 1, ofType(events.SessionEnded))[0]
		return f.sessionEvents(t, ended.Event.SessionID)
	}
}

// chunks is the recorded data of a session's stream, chunk by chunk
// (a binary chunk: empty), and whether any chunk listed a redaction.
func chunks(t *testing.T, evs []natstest.Stored, name string) ([]string, bool) {
	t.Helper()
	var out []string
	redacted := false
	for _, e := range evs {
		if e.Event.Type != events.SessionOutput || e.Payload["stream"] != name {
			continue
		}
		d, _ := e.Payload["data"].(string)
		raw, err := base64.StdEncoding.DecodeString(d)
		if err != nil {
			raw = []byte(d) // the placeholder itself
		}
		out = append(out, string(raw))
		redacted = redacted || e.Payload["redacted"] != nil
	}
	return out, redacted
}

// A program that writes a card number's parts apart, on a terminal of 10
// rows: the second after a line feed scrolled the rows at the bottom,
// then CUP to the row above — where the first now is. The terminal
// shows them side by side; so does the model of the recording (the size
// from the pty-req), which replaces them.
func TestScrolledRowsJudgedAsShown(t *testing.T) {
	f := start(t, options{})
	term, exit := shellOnTerminal(t, f, 10, 80)
	// The digits are computed on the target: what is typed and echoed
	// holds other numbers.
	term.Type(`printf '\033[10;1HXXXX%s\r\n\033[9;1H%s\r\n' $((851889592157+1)) $((4801+1)); echo done-$((40+2))` + "\r")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if _, err := term.WaitFor(ctx, 0, "done-42"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(term.Output(), "4802") {
		t.Fatalf("the terminal showed %q", term.Output())
	}
	evs := exit()
	out, redacted := chunks(t, evs, "stdout")
	joined := strings.Join(out, "")
	if strings.Contains(joined, "851889592158") || strings.Contains(digits(joined), "4802851889592158") {
		t.Fatalf("stdout recorded %q", joined)
	}
	if !redacted {
		t.Errorf("nothing listed as redacted in stdout: %q", joined)
	}
}

// The same, the cursor placed by an earlier chunk: the row named, then
// 2,000 lines (more than a chunk holds back) that scroll the rows with
// the cursor on the bottom one, recorded before the card's parts are
// written. The model starts the later chunk on the bottom row, where the
// earlier one left the cursor: the row above is the first part's.
func TestCursorCarriedAcrossChunks(t *testing.T) {
	f := start(t, options{})
	term, exit := shellOnTerminal(t, f, 10, 80)
	term.Type(`printf '\033[10;1H'; seq 1 2000; sleep 1; printf 'XXXX%s\r\n\033[9;1H%s\r\n' $((851889592157+1)) $((4801+1)); echo done-$((40+2))` + "\r")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if _, err := term.WaitFor(ctx, 0, "done-42"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(term.Output(), "4802") {
		t.Fatalf("the terminal showed …%q", term.Output()[max(0, len(term.Output())-200):])
	}
	evs := exit()
	out, redacted := chunks(t, evs, "stdout")
	if len(out) < 2 {
		t.Fatalf("stdout recorded in %d chunk(s): the card's parts and the row named were not apart", len(out))
	}
	joined := strings.Join(out, "")
	if strings.Contains(joined, "851889592158") || strings.Contains(digits(joined), "4802851889592158") {
		t.Fatalf("stdout recorded …%q", joined[max(0, len(joined)-200):])
	}
	if !redacted {
		t.Errorf("nothing listed as redacted in stdout: …%q", joined[max(0, len(joined)-200):])
	}
}

// A client that sends window sizes whose digits, joined, make a card
// number (46x62, 42x48, 46x48, 18x62: 4662424846481862) through
// Debian's ssh resizing its terminal: the size that would complete it is
// recorded as withheld; the sizes before and after it as they are.
func TestWindowSizesSealNoValue(t *testing.T) {
	const card = "4662424846481862"
	f := start(t, options{})
	term, exit := shellOnTerminal(t, f, 24, 80)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	at := len(term.Output())
	for _, sz := range [][2]int{{62, 46}, {48, 42}, {48, 46}, {62, 18}, {30, 100}} {
		if err := term.Resize(sz[0], sz[1]); err != nil {
			t.Fatal(err)
		}
		// The target saw the new size: the window-change passed the
		// gateway.
		term.Type("stty size\r")
		var err error
		if at, err = term.WaitFor(ctx, at, strconv.Itoa(sz[0])+" "+strconv.Itoa(sz[1])); err != nil {
			t.Fatal(err)
		}
	}
	evs := exit()
	out, _ := chunks(t, evs, "resize")
	resized := strings.Join(out, "")
	if resized != "46x62\n42x48\n46x48\nwithheld\n100x30\n" {
		t.Errorf("resize recorded %q", resized)
	}
	pty, _ := evs[0].Payload["pty"].(map[string]any)
	if pty["cols"] != 80.0 || pty["rows"] != 24.0 {
		t.Errorf("session.started pty %v", pty)
	}
	if strings.Contains(digits(resized), card) {
		t.Errorf("the window sizes recorded make %s", card)
	}
	// The replay resizes to the sizes recorded; a withheld one changes
	// nothing.
	var all []*events.Event
	for _, e := range evs {
		all = append(all, e.Event)
	}
	cast, err := sshproxy.CastOf(all, evs[0].Event.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	var replayed []string
	for _, fr := range cast.Frames {
		if fr.Kind == "r" {
			replayed = append(replayed, fr.Data)
		}
	}
	if strings.Join(replayed, " ") != "46x62 42x48 46x48 100x30" {
		t.Errorf("the replay resizes to %q", replayed)
	}
}
