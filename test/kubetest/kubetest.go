// Package kubetest starts a real Kubernetes control plane for tests: the
// stock etcd and kube-apiserver on free loopback ports, with certificates
// made for the run, RBAC authorization and service-account tokens, and
// drives it with the stock kubectl. The API (storage, admission, RBAC,
// impersonation, watches, discovery, token requests) is real. There is no
// scheduler and no controller manager; StartKubelet adds a test kubelet
// (the kubelet's streaming server over processes on this host) for exec,
// attach, port-forward and logs.
//
// The programs are built from the pinned modules of test/kubetools (a module
// of its own, so the product's module graph does not carry them) by its
// install.sh (go install) into a directory of the Go path, once per test
// process; the Go build cache makes later installs cheap. A test that cannot get them fails:
// a skipped cluster test would hide a broken gateway.
package kubetest

import (
	"github.com/auditledger/auditledger/test/testnet"

	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Version is the Kubernetes release the tests run against (kube-apiserver
// and kubectl; etcd is the release test/kubetools/go.mod names).
const Version = "v1.37.2"

// Tools are the paths of the installed programs.
type Tools struct {
	APIServer, Etcd, Kubectl, Kubelet string
}

var (
	toolsOnce sync.Once
	tools     Tools
	toolsErr  error
)

// Install builds and installs the programs (once per process) and returns
// their paths. They go to $AUDITLEDGER_KUBETOOLS, or else to
// $(go env GOPATH)/kubetools/VERSION, a directory of their own so that a
// kubectl already on $PATH is neither used nor shadowed.
func Install() (Tools, error) {
	toolsOnce.Do(func() { tools, toolsErr = install() })
	return tools, toolsErr
}

func install() (Tools, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return Tools{}, fmt.Errorf("kubetest: cannot locate test/kubetools")
	}
	src := filepath.Join(filepath.Dir(self), "..", "kubetools")
	dir := os.Getenv("AUDITLEDGER_KUBETOOLS")
	if dir == "" {
		gopath, err := exec.Command("go", "env", "GOPATH").Output()
		if err != nil {
			return Tools{}, fmt.Errorf("kubetest: go env GOPATH: %v", err)
		}
		dir = filepath.Join(strings.TrimSpace(string(gopath)), "kubetools", Version)
	}
	// One install script for the tests and .ci/run, so that the build the
	// one makes is the build the other finds up to date.
	if out, err := exec.Command("bash", filepath.Join(src, "install.sh"), dir).CombinedOutput(); err != nil {
		return Tools{}, fmt.Errorf("kubetest: %s %s: %v\n%s", filepath.Join(src, "install.sh"), dir, err, out)
	}
	return Tools{
		APIServer: filepath.Join(dir, "kube-apiserver"),
		Etcd:      filepath.Join(dir, "etcd"),
		Kubectl:   filepath.Join(dir, "kubectl"),
		Kubelet:   filepath.Join(dir, "kubelet"),
	}, nil
}

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	URL             string // https://127.0.0.1:PORT
	CAPEM           []byte // the CA that signed the serving and client certificates
	AdminKubeconfig string // path of a kubeconfig for a member of system:masters
	Tools           Tools

	t      testing.TB
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	procs  []*proc

	kubelet *Kubelet
}

type proc struct {
	name, log string
	cmd       *exec.Cmd
	exited    chan struct{}
	// term: stopped with SIGTERM first (the kubelet stops the processes it
	// started), killed if it has not exited after a while.
	term bool
}

// Start runs a control plane for the duration of the test.
func Start(t testing.TB) *Cluster {
	t.Helper()
	tl, err := Install()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Tools: tl, t: t, dir: t.TempDir()}
	t.Cleanup(c.stop)
	c.makePKI()

	etcdClient := fmt.Sprintf("http://127.0.0.1:%d", testnet.Port(t))
	etcdPeer := fmt.Sprintf("http://127.0.0.1:%d", testnet.Port(t))
	c.run("etcd", tl.Etcd,
		"--name=default",
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+etcdClient,
		"--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer,
		"--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=default="+etcdPeer,
		// A throwaway store: no fsync spares the shared disk and cores.
		"--unsafe-no-fsync",
	)
	c.waitFor("etcd", func() error {
		resp, err := http.Get(etcdClient + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("etcd /health: %s", resp.Status)
		}
		return nil
	})

	port := testnet.Port(t)
	c.URL = fmt.Sprintf("https://127.0.0.1:%d", port)
	c.run("kube-apiserver", tl.APIServer,
		"--etcd-servers="+etcdClient,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// The kubernetes Service's endpoints may not be loopback addresses;
		// nothing here routes to that Service, so it gets none.
		"--endpoint-reconciler-type=none",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir="+filepath.Join(c.dir, "apiserver-certs"),
		"--tls-cert-file="+c.path("serving.crt"),
		"--tls-private-key-file="+c.path("serving.key"),
		"--client-ca-file="+c.path("ca.crt"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+c.path("sa.pub"),
		"--service-account-signing-key-file="+c.path("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		"--profiling=false",
		// The kubelet's streaming endpoints (exec, attach, port-forward,
		// logs): the API server presents its client certificate, and
		// verifies the kubelet's serving certificate against the run's CA
		// at the node's InternalIP (see StartKubelet).
		"--kubelet-client-certificate="+c.path("kubelet-client.crt"),
		"--kubelet-client-key="+c.path("kubelet-client.key"),
		"--kubelet-certificate-authority="+c.path("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP",
	)
	c.AdminKubeconfig = c.Kubeconfig("auditledger-admin", "system:masters")
	admin := c.httpClient("auditledger-admin", "system:masters")
	c.waitFor("kube-apiserver", func() error {
		resp, err := admin.Get(c.URL + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
	return c
}

func (c *Cluster) path(name string) string { return filepath.Join(c.dir, name) }

func (c *Cluster) run(name, bin string, args ...string) *proc {
	c.t.Helper()
	p := &proc{name: name, log: c.path(name + ".log"), exited: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		c.t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); logf.Close(); close(p.exited) }()
	c.procs = append(c.procs, p)
	return p
}

// waitFor polls ready with a deadline (generous: the first start of the API
// server on two busy cores takes tens of seconds), failing early if the
// process exits; the logs are printed when a test fails.
func (c *Cluster) waitFor(name string, ready func() error) {
	c.t.Helper()
	c.waitForProc(name, name, ready)
}

// waitForProc waits for what (polling ready) while the process named
// name runs.
func (c *Cluster) waitForProc(name, what string, ready func() error) {
	c.t.Helper()
	var p *proc
	for _, q := range c.procs {
		if q.name == name {
			p = q
		}
	}
	if p == nil {
		c.t.Fatalf("kubetest: no process %s", name)
	}
	const total = 3 * time.Minute
	deadline := time.Now().Add(total)
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-p.exited:
			c.t.Fatalf("%s exited before %s was ready (%v); its log follows", name, what, p.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not ready after %v: %v; the logs follow", what, total, err)
		}
		time.Sleep(100 * time.Millisecond) // polling with a deadline, not waiting a fixed time
	}
}

func (c *Cluster) tail(p *proc) string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

func (c *Cluster) stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		if p.term {
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
			}
		}
		p.cmd.Process.Kill()
		<-p.exited
	}
	if c.t.Failed() {
		for _, p := range c.procs {
			c.t.Logf("%s log:\n%s", p.name, c.tail(p))
		}
	}
	c.procs = nil
}

// Log returns the end of a process's log ("etcd", "kube-apiserver" or
// "kubelet").
func (c *Cluster) Log(name string) string {
	for _, p := range c.procs {
		if p.name == name {
			return c.tail(p)
		}
	}
	return ""
}

// Kubectl runs the stock kubectl with a kubeconfig and returns its
// standard output; a non-zero exit is an error that carries its standard
// error.
func (c *Cluster) Kubectl(ctx context.Context, kubeconfig string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Tools.Kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+c.dir, "KUBECACHEDIR="+c.path("kubecache"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// KubectlCmd is an unstarted kubectl command with a kubeconfig, for
// streaming uses (watches).
func (c *Cluster) KubectlCmd(ctx context.Context, kubeconfig string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Tools.Kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+c.dir, "KUBECACHEDIR="+c.path("kubecache"))
	return cmd
}

// Kubeconfig writes a kubeconfig for a client certificate naming user and
// groups (the API server's x509 authenticator reads the user from the
// common name and the groups from the organizations), and returns its path.
func (c *Cluster) Kubeconfig(user string, groups ...string) string {
	c.t.Helper()
	certPEM, keyPEM := c.issue(user, groups, nil)
	return c.writeKubeconfig(user, fmt.Sprintf(`    client-certificate-data: %s
    client-key-data: %s
`, b64(certPEM), b64(keyPEM)))
}

// TokenKubeconfig writes a kubeconfig that presents a bearer token (a
// service account's, from TokenRequest) and returns its path.
func (c *Cluster) TokenKubeconfig(name, token string) string {
	c.t.Helper()
	return c.writeKubeconfig(name, fmt.Sprintf("    token: %s\n", token))
}

func (c *Cluster) writeKubeconfig(name, userFields string) string {
	c.t.Helper()
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
%scontexts:
- name: test
  context:
    cluster: test
    user: %s
current-context: test
`, c.URL, b64(c.CAPEM), name, userFields, name)
	f, err := os.CreateTemp(c.dir, "kubeconfig-*")
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(cfg); err != nil {
		c.t.Fatal(err)
	}
	return f.Name()
}

func (c *Cluster) httpClient(user string, groups ...string) *http.Client {
	certPEM, keyPEM := c.issue(user, groups, nil)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		c.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.caCert)
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}},
	}
}

// makePKI writes the CA, the API server's serving certificate and the
// service-account signing key.
func (c *Cluster) makePKI() {
	c.t.Helper()
	key := newKey(c.t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(c.t),
		Subject:               pkix.Name{CommonName: "auditledger-test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		c.t.Fatal(err)
	}
	c.caCert, _ = x509.ParseCertificate(der)
	c.caKey = key
	c.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	c.write("ca.crt", c.CAPEM)

	serving, servingKey := c.issue("kube-apiserver", nil, func(t *x509.Certificate) {
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		t.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}
		t.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 0, 0, 1)}
	})
	c.write("serving.crt", serving)
	c.write("serving.key", servingKey)
	// The API server's client certificate toward kubelets; the test
	// kubelet lets in no other name.
	kc, kk := c.issue(KubeletClientName, nil, nil)
	c.write("kubelet-client.crt", kc)
	c.write("kubelet-client.key", kk)
	sa := newKey(c.t)
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write("sa.key", keyPEM(c.t, sa))
	c.write("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}

// issue signs a certificate; by default a client certificate for user
// with groups as organizations.
func (c *Cluster) issue(user string, groups []string, edit func(*x509.Certificate)) (certPEM, privPEM []byte) {
	c.t.Helper()
	key := newKey(c.t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(c.t),
		Subject:      pkix.Name{CommonName: user, Organization: groups},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.caCert, &key.PublicKey, c.caKey)
	if err != nil {
		c.t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM(c.t, key)
}

func (c *Cluster) write(name string, b []byte) {
	c.t.Helper()
	if err := os.WriteFile(c.path(name), b, 0o600); err != nil {
		c.t.Fatal(err)
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyPEM(t testing.TB, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
