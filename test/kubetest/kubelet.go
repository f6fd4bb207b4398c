package kubetest

import (
	"github.com/auditledger/auditledger/test/testnet"

	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// KubeletClientName is the common name of the API server's client
// certificate toward kubelets; the test kubelet refuses any other.
const KubeletClientName = "kube-apiserver-kubelet-client"

// NodeName is the name of the test kubelet's Node.
const NodeName = "auditledger-node"

// Kubelet is the test kubelet of a cluster: a Node that the API server
// sends the streaming requests of its pods to (exec, attach,
// port-forward, logs), served by the kubelet's own streaming server code
// over processes on this host. It runs no containers: a pod's containers
// are processes run as the test's user with the pod's directory (Pod.Dir)
// as their working directory, and a port-forward reaches 127.0.0.1.
type Kubelet struct {
	NodeName string
	Port     int    // its HTTPS port on 127.0.0.1 (the Node's kubelet endpoint)
	Root     string // pods' directories (Root/pods/NS/POD) and logs (Root/logs/NS/POD/CONTAINER.log)

	c *Cluster
}

// StartKubelet starts the test kubelet (once per cluster; later calls
// return the same one) and waits until its Node is Ready at its port.
func (c *Cluster) StartKubelet() *Kubelet {
	c.t.Helper()
	if c.kubelet != nil {
		return c.kubelet
	}
	k := &Kubelet{NodeName: NodeName, Port: testnet.Port(c.t), Root: c.path("kubelet"), c: c}
	cert, key := c.issue(NodeName, nil, func(t *x509.Certificate) {
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		t.DNSNames = []string{"localhost", NodeName}
		t.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	})
	c.write("kubelet.crt", cert)
	c.write("kubelet.key", key)
	// The kubelet's own credential toward the API server (register the
	// node, report pod status); a node's name, with rights to match.
	kubeconfig := c.Kubeconfig("system:node:"+NodeName, "system:masters")
	p := c.run("kubelet", c.Tools.Kubelet,
		"--kubeconfig="+kubeconfig,
		"--node-name="+NodeName,
		"--address=127.0.0.1",
		fmt.Sprintf("--port=%d", k.Port),
		"--tls-cert-file="+c.path("kubelet.crt"),
		"--tls-private-key-file="+c.path("kubelet.key"),
		"--client-ca-file="+c.path("ca.crt"),
		"--apiserver-client-name="+KubeletClientName,
		"--root-dir="+k.Root,
	)
	p.term = true
	admin := c.httpClient("auditledger-admin", "system:masters")
	c.waitFor("kubelet", func() error {
		var node struct {
			Status struct {
				Conditions []struct {
					Type, Status string
				}
				DaemonEndpoints struct {
					KubeletEndpoint struct{ Port int }
				}
			}
		}
		if err := getJSON(admin, c.URL+"/api/v1/nodes/"+NodeName, &node); err != nil {
			return err
		}
		if node.Status.DaemonEndpoints.KubeletEndpoint.Port != k.Port {
			return fmt.Errorf("node %s: kubelet port %d, want %d", NodeName, node.Status.DaemonEndpoints.KubeletEndpoint.Port, k.Port)
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == "Ready" && cond.Status == "True" {
				return nil
			}
		}
		return fmt.Errorf("node %s not Ready", NodeName)
	})
	c.kubelet = k
	return k
}

// Container is a container of a test pod. Its main process is Command
// (with the pod's directory as working directory), or sh when Command is
// empty; its standard input stays open (sh waits for commands), and what
// it prints is its log and goes to whoever is attached.
type Container struct {
	Name    string
	Command []string
	// Stdin lets attach write to the main process; StdinOnce closes its
	// input when the first attached client closes theirs; TTY runs it
	// under a pseudo-terminal.
	Stdin, StdinOnce, TTY bool
	Env                   map[string]string
}

// Pod is a pod bound to the test kubelet's node and running there.
type Pod struct {
	Namespace, Name string
	Dir             string // the pod's directory: its containers' working directory, where kubectl cp's relative paths land

	k *Kubelet
}

// CreatePod creates a pod bound to the kubelet's node (spec.nodeName; no
// scheduler runs), with the namespace and its default service account if
// they are missing (no controller makes them), and waits until the
// kubelet reports it Running. Without containers it has one, "main",
// running sh with Stdin.
func (k *Kubelet) CreatePod(namespace, name string, containers ...Container) *Pod {
	c := k.c
	c.t.Helper()
	if len(containers) == 0 {
		containers = []Container{{Name: "main", Stdin: true}}
	}
	admin := c.httpClient("auditledger-admin", "system:masters")
	create := func(path string, obj any) {
		c.t.Helper()
		body, err := json.Marshal(obj)
		if err != nil {
			c.t.Fatal(err)
		}
		resp, err := admin.Post(c.URL+path, "application/json", bytes.NewReader(body))
		if err != nil {
			c.t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusConflict {
			c.t.Fatalf("POST %s: %s: %s", path, resp.Status, msg)
		}
	}
	create("/api/v1/namespaces", map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": namespace},
	})
	create("/api/v1/namespaces/"+namespace+"/serviceaccounts", map[string]any{
		"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": "default"},
	})
	var specs []map[string]any
	for _, ct := range containers {
		spec := map[string]any{
			"name":  ct.Name,
			"image": "auditledger.test/host-process:latest",
		}
		if len(ct.Command) > 0 {
			spec["command"] = ct.Command
		}
		if ct.Stdin {
			spec["stdin"] = true
		}
		if ct.StdinOnce {
			spec["stdinOnce"] = true
		}
		if ct.TTY {
			spec["tty"] = true
		}
		var env []map[string]string
		for n, v := range ct.Env {
			env = append(env, map[string]string{"name": n, "value": v})
		}
		if len(env) > 0 {
			spec["env"] = env
		}
		specs = append(specs, spec)
	}
	create("/api/v1/namespaces/"+namespace+"/pods", map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"nodeName":                     k.NodeName,
			"containers":                   specs,
			"automountServiceAccountToken": false,
		},
	})
	c.waitForProc("kubelet", "pod "+namespace+"/"+name+" Running", func() error {
		var pod struct {
			Status struct{ Phase string }
		}
		if err := getJSON(admin, c.URL+"/api/v1/namespaces/"+namespace+"/pods/"+name, &pod); err != nil {
			return err
		}
		if pod.Status.Phase != "Running" {
			return fmt.Errorf("phase %q", pod.Status.Phase)
		}
		return nil
	})
	return &Pod{Namespace: namespace, Name: name, Dir: filepath.Join(k.Root, "pods", namespace, name), k: k}
}

// Path is the host path of a path relative to the pod's directory.
func (p *Pod) Path(rel string) string { return filepath.Join(p.Dir, rel) }

// LogPath is the host path of a container's log, in the CRI log format
// ("TIMESTAMP STREAM F TEXT" a line) that the kubelet serves to kubectl
// logs.
func (p *Pod) LogPath(container string) string {
	return filepath.Join(p.k.Root, "logs", p.Namespace, p.Name, container+".log")
}

// AppendLog appends lines to a container's log, as if its process had
// printed them on its standard output; kubectl logs -f sees them.
func (p *Pod) AppendLog(container string, lines ...string) {
	p.k.c.t.Helper()
	var b strings.Builder
	for _, l := range lines {
		if strings.ContainsAny(l, "\n") {
			p.k.c.t.Fatalf("AppendLog: %q holds a line break; pass lines one by one", l)
		}
		b.WriteString(time.Now().UTC().Format(time.RFC3339Nano) + " stdout F " + l + "\n")
	}
	f, err := os.OpenFile(p.LogPath(container), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		p.k.c.t.Fatalf("AppendLog: %v", err)
	}
	defer f.Close()
	// One write: the kubelet appends the process's lines to the same file.
	if _, err := f.WriteString(b.String()); err != nil {
		p.k.c.t.Fatalf("AppendLog: %v", err)
	}
}

// Log returns the text of a container's log so far, a line each: what its
// main process printed (standard output and error) and what AppendLog
// added.
func (p *Pod) Log(container string) []string {
	p.k.c.t.Helper()
	f, err := os.Open(p.LogPath(container))
	if err != nil {
		p.k.c.t.Fatalf("Log: %v", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) == 4 {
			lines = append(lines, parts[3])
		} else if len(parts) == 3 {
			lines = append(lines, "")
		}
	}
	return lines
}

func getJSON(client *http.Client, url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}
