package kubetest

import (
	"github.com/auditledger/auditledger/test/testnet"

	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The stock kubectl through the real API server to the test kubelet, in
// both protocol families: WebSocket (kubectl's default: v5.channel.k8s.io
// for exec and attach, SPDY tunnelled in WebSocket for port-forward) and
// SPDY/3.1 (kubectl's fallback, forced by its environment toggles). Each
// stream has a real process or socket behind it.
func TestKubeletStreams(t *testing.T) {
	c := Start(t)
	started := time.Now()
	k := c.StartKubelet()
	t.Logf("kubelet Ready in %v", time.Since(started)) // a figure for the docs, not a check
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	admin := c.AdminKubeconfig
	const ns = "streams"
	started = time.Now()
	pod := k.CreatePod(ns, "shell")
	t.Logf("pod Running in %v", time.Since(started))
	t.Run("refuses-other-clients", func(t *testing.T) { refusesOtherClients(t, c, k, pod) })

	// A loopback echo server: the pod's network is the host's loopback.
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
		name string
		env  []string
	}{
		{"websocket", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true", "KUBECTL_PORT_FORWARD_WEBSOCKETS=true"}},
		{"spdy", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false", "KUBECTL_PORT_FORWARD_WEBSOCKETS=false"}},
	} {
		kubectl := func(args ...string) *exec.Cmd {
			cmd := c.KubectlCmd(ctx, admin, args...)
			cmd.Env = append(cmd.Env, family.env...)
			return cmd
		}
		run := func(stdin string, args ...string) (stdout, stderr string, code int) {
			t.Helper()
			cmd := kubectl(args...)
			var o, e strings.Builder
			cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &o, &e
			err := cmd.Run()
			var exitErr *exec.ExitError
			switch {
			case errors.As(err, &exitErr):
				code = exitErr.ExitCode()
			case err != nil:
				t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
			}
			return o.String(), e.String(), code
		}
		mark := family.name

		t.Run(family.name+"/exec", func(t *testing.T) {
			out, errOut, code := run("", "exec", "-n", ns, "shell", "-c", "main", "--", "sh", "-c", "pwd; echo out-$((1+1)); echo err-$((2+1)) >&2; exit 3")
			if code != 3 {
				t.Fatalf("exit code %d, want 3 (stdout %q, stderr %q)", code, out, errOut)
			}
			if want := pod.Dir + "\nout-2\n"; out != want {
				t.Fatalf("stdout %q, want %q", out, want)
			}
			if !strings.Contains(errOut, "err-3") {
				t.Fatalf("stderr %q", errOut)
			}
			// Standard input reaches the process, whose exit 0 is kubectl's.
			out, errOut, code = run("hello "+mark+"\n", "exec", "-i", "-n", ns, "shell", "-c", "main", "--", "sh", "-c", "cat > stdin-"+mark+".txt; wc -c < stdin-"+mark+".txt")
			if code != 0 || strings.TrimSpace(out) != fmt.Sprint(len("hello "+mark+"\n")) {
				t.Fatalf("exec -i: code %d, stdout %q, stderr %q", code, out, errOut)
			}
			if got, _ := os.ReadFile(pod.Path("stdin-" + mark + ".txt")); string(got) != "hello "+mark+"\n" {
				t.Fatalf("the process got %q", got)
			}
		})

		t.Run(family.name+"/exec-tty", func(t *testing.T) {
			term, err := OpenTerminal(40, 100)
			if err != nil {
				t.Fatal(err)
			}
			defer term.Close()
			cmd := kubectl("exec", "-it", "-n", ns, "shell", "-c", "main", "--", "sh")
			if err := term.Start(cmd); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			// The remote terminal has the local one's size, and is resized
			// with it.
			term.Type("stty size; tty; echo mark-$((6*7))\r")
			off, err := term.WaitFor(ctx, 0, "40 100")
			if err != nil {
				t.Fatal(err)
			}
			if off, err = term.WaitFor(ctx, off, "/dev/pts/"); err != nil {
				t.Fatal(err)
			}
			if off, err = term.WaitFor(ctx, off, "mark-42"); err != nil {
				t.Fatal(err)
			}
			if err := term.Resize(50, 120); err != nil {
				t.Fatal(err)
			}
			// The resize travels on its own stream; ask until it has arrived.
			for {
				term.Type("stty size\r")
				wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
				next, err := term.WaitFor(wctx, off, "50 120")
				wcancel()
				if err == nil {
					off = next
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("no resize: %v", err)
				}
			}
			term.Type("exit 7\r")
			err = cmd.Wait()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != 7 {
				t.Fatalf("kubectl exec -it: %v, want exit status 7; terminal: %q", err, term.Output())
			}
		})

		t.Run(family.name+"/attach", func(t *testing.T) {
			cmd := kubectl("attach", "-i", "-n", ns, "shell", "-c", "main")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var errOut strings.Builder
			cmd.Stderr = &errOut
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			lines := scanLines(stdout)
			// The container's sh runs what is typed; the attach may start
			// after the first line, so type until the answer comes.
			want := "attached-" + mark + "-23"
			for seen := false; !seen; {
				fmt.Fprintf(stdin, "echo attached-%s-$((20+3))\n", mark)
				seen = waitLine(ctx, lines, want, 2*time.Second)
				if ctx.Err() != nil {
					t.Fatalf("attach: no %q; stderr %q", want, errOut.String())
				}
			}
			// Closing input detaches; the container's sh keeps running.
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("kubectl attach: %v: %s", err, errOut.String())
			}
			if !contains(pod.Log("main"), want) {
				t.Fatalf("the container's log lacks %q: %q", want, pod.Log("main"))
			}
			out, _, code := run("", "exec", "-n", ns, "shell", "-c", "main", "--", "echo", "still-there")
			if code != 0 || out != "still-there\n" {
				t.Fatalf("exec after attach: %d %q", code, out)
			}
		})

		t.Run(family.name+"/port-forward", func(t *testing.T) {
			local := testnet.Port(t)
			pfCtx, stop := context.WithCancel(ctx)
			defer stop()
			cmd := c.KubectlCmd(pfCtx, admin, "port-forward", "-n", ns, "pod/shell", fmt.Sprintf("%d:%d", local, echoPort))
			cmd.Env = append(cmd.Env, family.env...)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var errOut strings.Builder
			cmd.Stderr = &errOut
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { stop(); cmd.Wait() }()
			if !waitLine(ctx, scanLines(stdout), fmt.Sprintf("Forwarding from 127.0.0.1:%d", local), 3*time.Minute) {
				t.Fatalf("port-forward did not start: %s", errOut.String())
			}
			for i := range 2 {
				conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", local))
				if err != nil {
					t.Fatal(err)
				}
				msg := fmt.Sprintf("ping-%s-%d\n", mark, i)
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
		})

		t.Run(family.name+"/logs", func(t *testing.T) {
			pod.AppendLog("main", "before-"+mark)
			out, errOut, code := run("", "logs", "-n", ns, "shell", "-c", "main", "--tail=1", "--timestamps")
			if code != 0 || !strings.HasSuffix(out, " before-"+mark+"\n") || strings.Count(out, "\n") != 1 {
				t.Fatalf("logs --tail=1 --timestamps: %d %q %q", code, out, errOut)
			}
			if _, err := time.Parse(time.RFC3339Nano, strings.Fields(out)[0]); err != nil {
				t.Fatalf("logs --timestamps: %q: %v", out, err)
			}
			fctx, stop := context.WithCancel(ctx)
			defer stop()
			cmd := c.KubectlCmd(fctx, admin, "logs", "-f", "-n", ns, "shell", "-c", "main")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { stop(); cmd.Wait() }()
			lines := scanLines(stdout)
			if !waitLine(ctx, lines, "before-"+mark, 3*time.Minute) {
				t.Fatal("logs -f: no earlier line")
			}
			for _, l := range []string{"appended-1-" + mark, "appended-2-" + mark} {
				pod.AppendLog("main", l)
				if !waitLine(ctx, lines, l, 3*time.Minute) {
					t.Fatalf("logs -f: no %q", l)
				}
			}
			// What the container's process prints is its log too.
			if _, _, code := run("echo printed-"+mark+"\n", "attach", "-i", "-n", ns, "shell", "-c", "main"); code != 0 {
				t.Fatalf("attach: %d", code)
			}
			if !waitLine(ctx, lines, "printed-"+mark, 3*time.Minute) {
				t.Fatal("logs -f: no output of the container's process")
			}
		})

		t.Run(family.name+"/cp", func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "upload.txt")
			body := strings.Repeat("kubectl cp "+mark+"\n", 5000)
			if err := os.WriteFile(src, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			remote := "upload-" + mark + ".txt"
			if _, errOut, code := run("", "cp", src, ns+"/shell:"+remote, "-c", "main"); code != 0 {
				t.Fatalf("cp to the pod: %d %s", code, errOut)
			}
			if got, err := os.ReadFile(pod.Path(remote)); err != nil || string(got) != body {
				t.Fatalf("cp to the pod: %d bytes, %v", len(got), err)
			}
			if err := os.WriteFile(pod.Path("download-"+mark+".txt"), []byte("from the pod "+mark+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, "download.txt")
			if _, errOut, code := run("", "cp", ns+"/shell:download-"+mark+".txt", dst, "-c", "main"); code != 0 {
				t.Fatalf("cp from the pod: %d %s", code, errOut)
			}
			if got, err := os.ReadFile(dst); err != nil || string(got) != "from the pod "+mark+"\n" {
				t.Fatalf("cp from the pod: %q, %v", got, err)
			}
		})
	}

	// A deleted pod goes away (the kubelet stops it and removes it), and
	// its streams are refused.
	if _, err := c.Kubectl(ctx, admin, "delete", "pod", "-n", ns, "shell", "--wait=true"); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Kubectl(ctx, admin, "get", "pods", "-n", ns, "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("after delete: %q, %v", out, err)
	}
}

// The kubelet lets in only the API server: a certificate of the same CA
// with another name is refused, and so is a client without one.
func refusesOtherClients(t *testing.T, c *Cluster, k *Kubelet, pod *Pod) {
	url := fmt.Sprintf("https://127.0.0.1:%d/containerLogs/%s/%s/main", k.Port, pod.Namespace, pod.Name)

	user := c.httpClient("auditledger-admin", "system:masters")
	resp, err := user.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another name of the CA: %s, want 403", resp.Status)
	}

	pool := x509.NewCertPool()
	pool.AddCert(c.caCert)
	anon := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if resp, err := anon.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("no client certificate: %s, want a refused handshake", resp.Status)
	}

	// The API server's own certificate is let in (the path kubectl logs
	// takes goes through it).
	kc, kk := c.issue(KubeletClientName, nil, nil)
	cert, err := tls.X509KeyPair(kc, kk)
	if err != nil {
		t.Fatal(err)
	}
	apiserver := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	resp, err = apiserver.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the API server's name: %s", resp.Status)
	}
	// A pod the kubelet does not run, and a name that is not one.
	for _, path := range []string{"/containerLogs/" + pod.Namespace + "/nosuch/main", "/containerLogs/" + pod.Namespace + "/" + pod.Name + "/nosuch", "/containerLogs/" + pod.Namespace + "/..%2f..%2fetc/main"} {
		resp, err := apiserver.Get(fmt.Sprintf("https://127.0.0.1:%d%s", k.Port, path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: %s, want 404", path, resp.Status)
		}
	}
}

func scanLines(r io.Reader) <-chan string {
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines
}

// waitLine reads lines until one contains want, for at most wait.
func waitLine(ctx context.Context, lines <-chan string, want string, wait time.Duration) bool {
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return false
			}
			if strings.Contains(l, want) {
				return true
			}
		case <-timeout.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if strings.Contains(l, want) {
			return true
		}
	}
	return false
}
