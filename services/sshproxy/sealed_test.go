package sshproxy_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
	"github.com/auditledger/auditledger/test/natstest"
)

// digits keeps the decimal digits of s: a value is searched whatever
// separates, quotes or colours its digits.
func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// csi is an escape sequence of the kind grep --color writes.
var csi = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// checkNoValue fails t when the recorded text, as a terminal shows it,
// holds the card's digits in a row or the address's local part.
func checkNoValue(t *testing.T, what, recorded, card, email string) {
	t.Helper()
	var shown []rune
	for _, r := range csi.ReplaceAllString(recorded, "") {
		if r == 0x7f || r == '\b' {
			shown = shown[:max(len(shown)-1, 0)]
			continue
		}
		shown = append(shown, r)
	}
	recorded = string(shown)
	if card != "" && strings.Contains(digits(recorded), digits(card)) {
		t.Errorf("%s holds the card number: %q", what, recorded)
	}
	if email != "" && strings.Contains(recorded, email[:strings.IndexByte(email, '@')]) {
		t.Errorf("%s holds the address: %q", what, recorded)
	}
}

// utf16 is s (ASCII) in UTF-16LE.
func utf16(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteByte(byte(r))
		b.WriteByte(0)
	}
	return b.String()
}

// What passes on an SSH session's streams is recorded as the terminal
// shows it, judged whole: colour escapes (grep --color), erasures (DEL),
// UTF-16, a pause in the middle of a value, and compressed bytes hide no
// value; compressed bytes are recorded as their keyed digest only.
func TestStreamsSealNoValue(t *testing.T) {
	f := start(t, options{})
	c := f.loginAs(t, "alice", "a")
	card, email := gatewaytest.Card(t), gatewaytest.Email(t, "jane")
	g := strings.Fields(card)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	fmt.Fprintf(zw, "id,card,email\n1,%s,%s\n", card, email)
	zw.Close()
	cases := []struct{ name, command, stdin string }{
		{"gzip on stdin", "cat > /dev/null", z.String()},
		{"gzip on stdout", "cat", z.String()},
		{"grep colour", `grep --color=always " "`, card + "\n"},
		{"grep colour email", `grep --color=always "[.@]"`, email + "\n"},
		{"DEL edit", "cat > /dev/null", g[0] + " " + g[1] + "9\x7f " + g[2] + " " + g[3] + "\n"},
		{"UTF-16LE", "cat", utf16(card + " " + email)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.waitFor(t, 0, ofType(events.SessionEnded)))
			out, errOut, err := f.ssh(t, c, tc.stdin, f.user("web"), tc.command)
			if err != nil && tc.name != "grep colour email" {
				t.Fatalf("ssh: %v %s", err, errOut)
			}
			if tc.name == "grep colour" && !strings.Contains(out, "\x1b[") {
				t.Fatalf("grep printed no colour: %q", out)
			}
			ended := f.waitFor(t, before+1, ofType(events.SessionEnded))[before]
			evs := f.sessionEvents(t, ended.Event.SessionID)
			for _, name := range []string{"stdin", "stdout", "stderr"} {
				checkNoValue(t, name, stream(t, evs, name), card, email)
			}
			if strings.HasPrefix(tc.name, "gzip") {
				for _, e := range evs {
					if e.Event.Type == events.SessionOutput && e.Payload["stream"] != "stderr" &&
						(e.Payload["binary"] != true || e.Payload["data"] != nil || !strings.HasPrefix(e.Payload["hmac"].(string), "hmac:")) {
						t.Errorf("compressed stdin recorded as %v", e.Payload)
					}
				}
			}
		})
	}
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, f.js), card, email)
}

// A card number typed with a pause in the middle (read off the card),
// longer than any flush interval, is judged whole.
func TestStreamPauseInValue(t *testing.T) {
	f := start(t, options{})
	c := f.loginAs(t, "alice", "a")
	card := gatewaytest.Card(t)
	g := strings.Fields(card)
	cmd := exec.Command("ssh", "-F", c.config, f.user("web"), "cat > /dev/null")
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "pay "+g[0]+"/"+g[1]+"/")
	time.Sleep(time.Second) // the pause is the input's shape: many flush intervals (50 ms)
	io.WriteString(stdin, g[2]+"/"+g[3]+"\n")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	ended := f.waitFor(t, 1, ofType(events.SessionEnded))[0]
	in := stream(t, f.sessionEvents(t, ended.Event.SessionID), "stdin")
	if !strings.HasPrefix(in, "pay ") {
		t.Fatalf("recorded stdin %q", in)
	}
	checkNoValue(t, "stdin", in, card, "")
}

// A command is recorded with each word judged as bash resolves it:
// quotes, backslashes, braces, $'…' and printf escapes, and arguments
// joined, hide no value; a held command's approval request, and the
// approvals bucket, hold none either.
func TestCommandWordsResolved(t *testing.T) {
	f := start(t, options{policy: denyTouch})
	c := f.loginAs(t, "alice", "a")
	card, email := gatewaytest.Card(t), gatewaytest.Email(t, "jane")
	d := digits(card)
	local, domain, _ := strings.Cut(email, "@")
	octal := ""
	for _, ch := range d {
		octal += fmt.Sprintf(`\%03o`, ch)
	}
	commands := []string{
		"echo " + d[:4] + "''" + d[4:8] + "''" + d[8:12] + "''" + d[12:] + " >/dev/null",
		"echo " + d[:4] + `\ ` + d[4:8] + `\ ` + d[8:12] + `\ ` + d[12:] + " >/dev/null",
		"echo '" + local + "'@'" + domain + "' >/dev/null",
		"echo " + local + `\@` + domain + " >/dev/null",
		"echo " + d[:4] + "{,}" + d[4:] + " >/dev/null",
		"printf '" + octal + "' >/dev/null",
		"X=" + d[:8] + "; echo ${X}" + d[8:] + " >/dev/null",
		"printf %s " + card + " >/dev/null",
		"touch /tmp/" + d[:8] + "''" + d[8:],
		"echo " + base64.StdEncoding.EncodeToString([]byte(utf16(email))) + " >/dev/null", // PowerShell's -EncodedCommand form
	}
	for _, cmd := range commands {
		f.ssh(t, c, "", f.user("web"), cmd)
	}
	held := "mkdir /tmp/" + local + "''@''" + domain
	done := make(chan struct{})
	go func() { f.ssh(t, c, "", f.user("web"), held); close(done) }()
	var id string
	natstest.CheckFor(t, 3*time.Minute, 50*time.Millisecond, func() error {
		for _, e := range f.events(t) {
			if e.Event.Type == events.ApprovalRequested {
				id = e.Payload["approval_id"].(string)
				checkNoValue(t, "approval.requested", fmt.Sprint(e.Payload["statement"]), "", email)
				return nil
			}
		}
		return fmt.Errorf("no approval.requested")
	})
	f.decide(t, id, false)
	<-done
	recorded := f.waitFor(t, len(commands)+1, func(e natstest.Stored) bool {
		return e.Event.Type == events.CommandExecuted || e.Event.Type == events.CommandBlocked
	})
	for _, e := range recorded {
		st := fmt.Sprint(e.Payload["statement"])
		checkNoValue(t, "statement", st, card, email)
		if !strings.Contains(st, "[REDACTED:") || e.Payload["redacted"] == nil {
			t.Errorf("statement %q recorded without a redaction: %v", st, e.Payload)
		}
	}
	bus := gatewaytest.BusBytes(t, f.js)
	gatewaytest.CheckAbsent(t, bus, card, email, d[:4]+"''"+d[4:8], local+"''@", local+`\@`)
}

// An SFTP path is judged with its quotes and backslashes removed, as a
// shell reads the name when it is typed (jane\@example.org), and scp -O
// of a compressed file records its bytes as a keyed digest only.
func TestFileNamesAndScpSealNoValue(t *testing.T) {
	f := start(t, options{})
	c := f.loginAs(t, "alice", "a")
	card, email := gatewaytest.Card(t), gatewaytest.Email(t, "jane")
	local, domain, _ := strings.Cut(email, "@")
	remote := t.TempDir()
	os.Chmod(remote, 0o777)
	file := filepath.Join(t.TempDir(), "cards.csv.gz")
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	fmt.Fprintf(zw, "id,card,email\n1,%s,%s\n", card, email)
	zw.Close()
	os.WriteFile(file, z.Bytes(), 0o644)
	batch := fmt.Sprintf("put %s \"%s/%s\\@%s\"\n", file, remote, local, domain)
	if _, errOut, err := f.run(t, batch, "sftp", "-F", c.config, "-b", "-", f.user("web")); err != nil {
		t.Fatalf("sftp: %v %s", err, errOut)
	}
	if _, errOut, err := f.run(t, "", "scp", "-O", "-q", "-F", c.config, file, f.user("web")+":"+remote+"/legacy.gz"); err != nil {
		t.Fatalf("scp -O: %v %s", err, errOut)
	}
	ended := f.waitFor(t, 2, ofType(events.SessionEnded))
	for _, end := range ended {
		evs := f.sessionEvents(t, end.Event.SessionID)
		for _, e := range evs {
			if e.Event.Type == events.CommandExecuted && e.Payload["protocol"] == "sftp" && e.Payload["kind"] == "sftp-write" {
				checkNoValue(t, "sftp path", fmt.Sprint(e.Payload["path"], " ", e.Payload["statement"]), "", email)
				if !strings.Contains(fmt.Sprint(e.Payload["path"]), "[REDACTED:email]") {
					t.Errorf("sftp path recorded as %v", e.Payload["path"])
				}
			}
			if e.Event.Type == events.SessionOutput && e.Payload["stream"] == "stdin" && e.Payload["binary"] != true {
				t.Errorf("scp -O stdin recorded as text: %v", e.Payload)
			}
		}
	}
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, f.js), card, email, local)
}

// A value written in parts over environment variables the client sends
// (SetEnv A=… B=…, which a program reads as $A$B) is judged joined: the
// variables are recorded as the placeholder, the value searchable.
func TestEnvSplitSealsNoValue(t *testing.T) {
	f := start(t, options{})
	c := f.loginAs(t, "alice", "a")
	card := digits(gatewaytest.Card(t))
	env := fmt.Sprintf("SetEnv=CARD_A=%s CARD_B=%s LANG=C.UTF-8", card[:8], card[8:])
	if _, errOut, err := f.ssh(t, c, "", "-o", env, f.user("web"), "true"); err != nil {
		t.Fatalf("ssh: %v %s", err, errOut)
	}
	ended := f.waitFor(t, 1, ofType(events.SessionEnded))[0]
	st := f.sessionEvents(t, ended.Event.SessionID)[0].Payload
	recorded := fmt.Sprint(st["env"])
	if strings.Contains(recorded, card[:8]) || strings.Contains(recorded, card[8:]) || !strings.Contains(fmt.Sprint(st["redacted"]), "credit_card") {
		t.Fatalf("env recorded as %v, redacted %v", st["env"], st["redacted"])
	}
	if env, _ := st["env"].(map[string]any); env["LANG"] != "C.UTF-8" {
		t.Errorf("LANG recorded as %v", env["LANG"])
	}
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, f.js), card)
}
