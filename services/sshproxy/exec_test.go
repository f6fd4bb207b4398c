package sshproxy_test

import (
	"strings"
	"testing"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/gateway"
)

// The stock ssh client, with a certificate from the login endpoint,
// runs a command on the target through the gateway: the target logs the
// person's subject as the certificate's key id, and the ledger holds the
// session, the command, its output and its end.
func TestExecThroughGateway(t *testing.T) {
	f := start(t, options{})
	c := f.loginAs(t, "alice", "a")
	out, errOut, err := f.ssh(t, c, "", f.user("web"), "echo hello from $(hostname -s) >/dev/null; echo hello; id -un")
	if err != nil {
		t.Fatalf("ssh: %v\n%s\nsshd:\n%s", err, errOut, f.target.Log())
	}
	if out != "hello\n"+f.login+"\n" {
		t.Fatalf("ssh printed %q", out)
	}
	if !strings.Contains(f.target.Log(), "ID alice (serial") {
		t.Errorf("the target's log does not name alice as the certificate's key id:\n%s", f.target.Log())
	}
	issued := f.waitFor(t, 1, ofType(events.SSHCertificateIssued))[0]
	if issued.Event.Actor.Subject != "alice" || issued.Payload["key_id"] != "alice" || issued.Payload["grant"] != nil {
		t.Errorf("ssh.certificate.issued %+v %v", issued.Event.Actor, issued.Payload)
	}
	if n := len(f.waitFor(t, 0, ofType(events.AccessGranted))); n != 0 {
		t.Errorf("%d access.granted records for a certificate: the issuance has its own type", n)
	}
	ended := f.waitFor(t, 1, ofType(events.SessionEnded))[0]
	evs := f.sessionEvents(t, ended.Event.SessionID)
	var types []events.Type
	for _, e := range evs {
		types = append(types, e.Event.Type)
	}
	if types[0] != events.SessionStarted || types[1] != events.CommandExecuted || types[len(types)-1] != events.SessionEnded {
		t.Fatalf("session events %v", types)
	}
	st := evs[0]
	if st.Payload["auth_method"] != string(gateway.SSHCertificate) || st.Payload["login"] != f.login || st.Event.Target.Name != "web" ||
		!strings.HasPrefix(st.Payload["client_version"].(string), "SSH-2.0-OpenSSH") || st.Event.Actor.Subject != "alice" {
		t.Errorf("session.started %+v %v", st.Event.Target, st.Payload)
	}
	if cmd := evs[1].Payload; !strings.Contains(cmd["statement"].(string), "id -un") || cmd["kind"] != "exec" {
		t.Errorf("command.executed %v", cmd)
	}
	if got := stream(t, evs, "stdout"); got != out {
		t.Errorf("recorded stdout %q, the client saw %q", got, out)
	}
	// stderr may hold what the login's shell start-up files print.
	if end := ended.Payload; end["exit_status"] != 0.0 || end["bytes_out"] != float64(len(out)+len(stream(t, evs, "stderr"))) || !strings.HasPrefix(end["output_hmac"].(string), "hmac:") {
		t.Errorf("session.ended %v", end)
	}
}
