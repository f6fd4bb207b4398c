package kubegateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/test/natstest"
	"github.com/auditledger/auditledger/test/testnet"
)

// kubectl port-forward through the gateway, the API server and the
// kubelet to an echo server on loopback, SPDY tunnelled in WebSocket
// (kubectl's default) and plain SPDY: the bytes pass both ways, and each
// connection is recorded with its port, its byte counts and their keyed
// digests, in a session of its own.
func TestKubectlPortForwardThroughGateway(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	c, up := clusterForGateway(t, ctx)
	f := start(t, up, "")
	k := c.StartKubelet()
	k.CreatePod("team-x", "shell")
	alice := f.kubeconfig(t, "alice", "a")
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			conn, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(conn, conn); conn.Close() }()
		}
	}()
	echoPort := echo.Addr().(*net.TCPAddr).Port

	for _, family := range []struct {
		name, proto string
		env         []string
	}{
		{"websocket", "spdy-websocket", []string{"KUBECTL_PORT_FORWARD_WEBSOCKETS=true"}},
		{"spdy", "spdy", []string{"KUBECTL_PORT_FORWARD_WEBSOCKETS=false"}},
	} {
		t.Run(family.name, func(t *testing.T) {
			local := testnet.Port(t)
			pfCtx, stop := context.WithCancel(ctx)
			defer stop()
			cmd := c.KubectlCmd(pfCtx, alice, "port-forward", "-n", "team-x", "pod/shell", fmt.Sprintf("%d:%d", local, echoPort))
			cmd.Env = append(cmd.Env, family.env...)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var errOut syncBuffer
			cmd.Stderr = &errOut
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string, 64)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			want := fmt.Sprintf("Forwarding from 127.0.0.1:%d", local)
			for started := false; !started; {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("port-forward did not start: %s", errOut.String())
					}
					started = strings.Contains(l, want)
				case <-ctx.Done():
					t.Fatalf("port-forward did not start: %s", errOut.String())
				}
			}
			for i := range 2 {
				conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", local))
				if err != nil {
					t.Fatal(err)
				}
				msg := fmt.Sprintf("ping-%s-%d\n", family.name, i)
				if _, err := conn.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
				got, err := bufio.NewReader(conn).ReadString('\n')
				conn.Close()
				if err != nil || got != msg {
					t.Fatalf("echo through port-forward: %q, %v; kubectl: %s", got, err, errOut.String())
				}
			}
			stop()
			cmd.Wait()

			// The sessions of this protocol (kubectl may open more than
			// one), and the connections recorded in them.
			sessions := map[string]bool{}
			of := func(e natstest.Stored) bool {
				if e.Event.Type == events.SessionStarted && e.Payload["kind"] == "portforward" && e.Payload["client_protocol"] == family.proto {
					sessions[e.Event.SessionID] = true
				}
				return sessions[e.Event.SessionID]
			}
			digests := f.waitFor(t, 2, func(e natstest.Stored) bool {
				return of(e) && e.Event.Type == events.ResponseDigest
			})
			for _, d := range digests {
				p := d.Payload
				wantLen := float64(len("ping-" + family.name + "-0\n"))
				if p["port"] != float64(echoPort) || p["bytes_in"] != wantLen || p["bytes_out"] != wantLen {
					t.Errorf("connection record %v", p)
				}
				hin, _ := p["hmac_in"].(string)
				hout, _ := p["hmac_out"].(string)
				if !strings.HasPrefix(hin, "hmac:") || hin == hout {
					t.Errorf("connection digests %v", p)
				}
			}
			f.waitFor(t, 2, func(e natstest.Stored) bool {
				return of(e) && e.Event.Type == events.CommandExecuted && e.Payload["statement"] == fmt.Sprintf("connect %d", echoPort)
			})
			f.waitFor(t, 1, func(e natstest.Stored) bool {
				return of(e) && e.Event.Type == events.CommandExecuted && e.Payload["subresource"] == "portforward" && e.Payload["verb"] == "create"
			})
			f.waitFor(t, 1, func(e natstest.Stored) bool {
				return of(e) && e.Event.Type == events.SessionEnded && e.Payload["connections"] == float64(2)
			})
		})
	}
}
