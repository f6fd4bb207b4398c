package kubegateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/services/access/accesstest"
	"github.com/auditledger/auditledger/services/kubegateway"
	"github.com/auditledger/auditledger/test/natstest"
)

const kubeAccessPolicy = `version: 2
access:
  - id: test-cluster
    targets: [test]
    approvers: {groups: [sre]}
    max_duration: 4h
`

// lockedBuffer is an output buffer a running kubectl writes to while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// The stock kubectl through a gateway whose cluster needs an access
// grant: a get refused without one (a 403 Status naming why, recorded),
// admitted inside; a watch cut when the grant's end passes on the
// watcher's clock, and an exec (WebSocket and SPDY) cut at revocation,
// each stream closed and its session ended with the reason.
func TestKubectlAccessGrant(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	c, up := clusterForGateway(t, ctx)
	var rig *accesstest.Rig
	f := startWith(t, up, kubeAccessPolicy, func(f *fixture, em *emitter.Emitter, cfg *kubegateway.Config) {
		rig = accesstest.Start(t, f.js, em, kubeAccessPolicy, time.Minute)
		cfg.Access, cfg.AccessTick = rig.Watcher, 20*time.Millisecond
	})
	k := c.StartKubelet()
	k.CreatePod("team-x", "shell")
	alice := f.kubeconfig(t, "alice", "a")
	aliceActor := events.Actor{Issuer: f.issuer, Subject: "alice", Kind: events.Human}
	reviewer := events.Actor{Issuer: f.issuer, Subject: "carol", Kind: events.Human, Groups: []string{"sre"}}

	// Without a grant every request is refused, discovery included (so
	// kubectl get says only Forbidden); the Status names why.
	out, err := c.KubectlCmd(ctx, alice, "get", "pods", "-n", "team-x", "-o", "name").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Forbidden") {
		t.Fatalf("get without a grant: %v\n%s", err, out)
	}
	out, err = c.KubectlCmd(ctx, alice, "get", "--raw", "/api/v1/namespaces/team-x/pods").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "access refused") || !strings.Contains(string(out), "auditledger access request --target test") {
		t.Fatalf("get --raw without a grant: %v\n%s", err, out)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", f.url+"/api/v1/namespaces/team-x/pods", nil)
	req.Header.Set("Authorization", "Bearer "+f.token(t, "alice", "a"))
	resp, err := f.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if st := status(t, resp); resp.StatusCode != http.StatusForbidden || st["reason"] != "Forbidden" || !strings.Contains(st["message"].(string), "access refused") {
		t.Fatalf("without a grant: %s %v", resp.Status, st)
	}
	f.waitFor(t, 1, func(e natstest.Stored) bool {
		return e.Event.Type == events.CommandBlocked && e.Payload["access_required"] == true
	})

	g := rig.Grant(t, "acme", aliceActor, reviewer, "test", time.Hour)
	if out, err := c.KubectlCmd(ctx, alice, "get", "pods", "-n", "team-x", "-o", "name").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "pod/shell" {
		t.Fatalf("get inside the grant: %v\n%s", err, out)
	}

	// A watch open at the grant's end is closed, and its session ended
	// with the reason.
	watch := c.KubectlCmd(ctx, alice, "get", "configmaps", "-n", "team-x", "--watch", "-o", "name")
	var watchOut lockedBuffer
	watch.Stdout, watch.Stderr = &watchOut, &watchOut
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	watched := make(chan error, 1)
	go func() { watched <- watch.Wait() }()
	f.waitFor(t, 1, request(events.SessionStarted, map[string]string{"kind": "watch", "access_id": g.ID}))
	rig.Clock.Set(g.NotAfter)
	moved := time.Now()
	select {
	case err := <-watched:
		t.Logf("grant end → kubectl watch exited after %s (%v)", time.Since(moved), err)
	case <-time.After(30 * time.Second):
		t.Fatalf("the watch outlived its grant\n%s", watchOut.String())
	}
	ended := f.waitFor(t, 1, func(e natstest.Stored) bool {
		r, _ := e.Payload["end_reason"].(string)
		return e.Event.Type == events.SessionEnded && e.Payload["access_id"] == g.ID && strings.Contains(r, "ended at")
	})
	t.Logf("watch session.ended %v", ended[0].Payload)
	if out, err := c.KubectlCmd(ctx, alice, "get", "--raw", "/api/v1/namespaces/team-x/pods").CombinedOutput(); err == nil || !strings.Contains(string(out), "access refused") {
		t.Fatalf("get after the grant's end: %v\n%s", err, out)
	}

	// A port-forward open at revocation is closed, and its session ended
	// with the reason.
	t.Run("port-forward", func(t *testing.T) {
		g := rig.Grant(t, "acme", aliceActor, reviewer, "test", time.Hour)
		cmd := c.KubectlCmd(ctx, alice, "port-forward", "-n", "team-x", "pod/shell", "0:9")
		var o lockedBuffer
		cmd.Stdout, cmd.Stderr = &o, &o
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		f.waitFor(t, 1, request(events.SessionStarted, map[string]string{"kind": "portforward", "access_id": g.ID}))
		natstest.CheckFor(t, time.Minute, 20*time.Millisecond, func() error {
			if !strings.Contains(o.String(), "Forwarding from") {
				return fmt.Errorf("port-forward output so far %q", o.String())
			}
			return nil
		})
		if _, err := rig.Broker.Revoke(t.Context(), g.ID, reviewer, "done"); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			t.Logf("revocation → kubectl port-forward exited (%v)", err)
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("the port-forward outlived its revoked grant\n%s", o.String())
		}
		f.waitFor(t, 1, func(e natstest.Stored) bool {
			r, _ := e.Payload["end_reason"].(string)
			return e.Event.Type == events.SessionEnded && e.Payload["access_id"] == g.ID && strings.Contains(r, "revoked")
		})
	})

	// An exec open at revocation, or at the grant's end, is closed,
	// kubectl told why, and its session ended with the reason; over both
	// stream protocols.
	for _, family := range []struct {
		name string
		env  []string
		end  bool // the grant ends (the clock passes it) rather than being revoked
		why  string
	}{
		{"websocket", nil, false, "revoked"},
		{"spdy", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"}, false, "revoked"},
		{"websocket-end", nil, true, "ended at"},
	} {
		t.Run("exec-"+family.name, func(t *testing.T) {
			g := rig.Grant(t, "acme", aliceActor, reviewer, "test", time.Hour)
			mark := "held-" + family.name
			cmd := c.KubectlCmd(ctx, alice, "exec", "-i", "-n", "team-x", "shell", "-c", "main", "--", "sh", "-c", "echo "+mark+"; cat")
			cmd.Env = append(cmd.Env, family.env...)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			var o lockedBuffer
			cmd.Stdout, cmd.Stderr = &o, &o
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			natstest.CheckFor(t, time.Minute, 20*time.Millisecond, func() error {
				if !strings.Contains(o.String(), mark) {
					return fmt.Errorf("exec output so far %q", o.String())
				}
				return nil
			})
			revoked := time.Now()
			if family.end {
				rig.Clock.Set(g.NotAfter)
			} else if _, err := rig.Broker.Revoke(t.Context(), g.ID, reviewer, "done"); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				t.Logf("%s → kubectl exec (%s) exited after %s", family.why, family.name, time.Since(revoked))
				var ee *exec.ExitError
				if !errors.As(err, &ee) || !strings.Contains(o.String(), family.why) {
					t.Fatalf("kubectl exec when the grant %s: %v\n%s", family.why, err, o.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("the exec outlived its grant (%s)\n%s", family.why, o.String())
			}
			s := f.execSession(t, mark)
			if s.start.Payload["access_id"] != g.ID || s.end.Payload["access_id"] != g.ID {
				t.Errorf("access_id: start %v, end %v, want %s", s.start.Payload["access_id"], s.end.Payload["access_id"], g.ID)
			}
			if r, _ := s.end.Payload["end_reason"].(string); !strings.Contains(r, family.why) {
				t.Errorf("session.ended %v, want an end_reason saying the grant %s", s.end.Payload, family.why)
			}
		})
	}
}
