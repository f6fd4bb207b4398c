package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/internal/oidcdev"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/identity"
	"github.com/auditledger/auditledger/services/kubegateway"
)

// kubeBench is what `auditledger bench kube` runs against: an existing
// cluster, reached directly with an administrator's kubeconfig, and the
// gateway's own credential there.
type kubeBench struct {
	upstream, caFile, tokenFile, kubeconfig, kubectl string
	namespace, pod, container                        string
	gets, lists, pods                                int
	size                                             int64
}

// Kube is `auditledger bench kube`: the stock kubectl against an API
// server directly and through the Kubernetes gateway (in this process,
// recording to an embedded bus sealed by the ledger writer).
func Kube(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "bench kube --kube-upstream URL --kube-ca FILE --kube-token-file FILE --kubeconfig FILE --pod NAMESPACE/NAME [--container C] [--kubectl PATH] [--gets N] [--pods N] [--lists N] [--bytes N]",
		"Starts an embedded NATS server, the ledger writer, a development identity\nprovider and the Kubernetes gateway in front of the API server at\n--kube-upstream (the gateway presents --kube-token-file, a credential allowed\nto impersonate; the bench binds the gateway's user's group oidc:bench to\ncluster-admin with --kubeconfig), then measures with the stock kubectl,\ndirectly (--kubeconfig) and through the gateway: `kubectl get pod` of --pod\n(p50/p99 of --gets runs, each a kubectl process), a list of --pods pods\n(created in namespace auditledger-bench-list when it holds fewer), and the\nthroughput of an exec's stdout (cat of --bytes of base64 text in --pod).")
	b := &kubeBench{}
	fs.StringVar(&b.upstream, "kube-upstream", "", "the API server's https:// URL")
	fs.StringVar(&b.caFile, "kube-ca", "", "PEM file of the CA the API server's certificate chains to")
	fs.StringVar(&b.tokenFile, "kube-token-file", "", "the gateway's bearer token at the API server (allowed to impersonate users, groups and uids)")
	fs.StringVar(&b.kubeconfig, "kubeconfig", "", "an administrator's kubeconfig for the same API server (the direct runs)")
	fs.StringVar(&b.kubectl, "kubectl", "kubectl", "the kubectl to run")
	podRef := fs.String("pod", "", "NAMESPACE/NAME of a running pod with sh, head, base64 and cat")
	fs.StringVar(&b.container, "container", "", "the pod's container to exec in (empty: its default)")
	fs.IntVar(&b.gets, "gets", 100, "kubectl get pod runs each way")
	fs.IntVar(&b.lists, "lists", 5, "list runs each way")
	fs.IntVar(&b.pods, "pods", 5000, "pods in the listed namespace")
	fs.Int64Var(&b.size, "bytes", 64<<20, "bytes of random data the exec prints as base64 text")
	return func(ctx context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
		ns, name, ok := strings.Cut(*podRef, "/")
		switch {
		case b.upstream == "" || b.caFile == "" || b.tokenFile == "" || b.kubeconfig == "":
			return cli.Usagef("--kube-upstream, --kube-ca, --kube-token-file and --kubeconfig are required")
		case !ok || ns == "" || name == "":
			return cli.Usagef("--pod %q: want NAMESPACE/NAME", *podRef)
		case b.gets < 2 || b.lists < 1 || b.pods < 1 || b.size < 1:
			return cli.Usagef("--gets at least 2, --lists, --pods and --bytes at least 1")
		}
		b.namespace, b.pod = ns, name
		dir, err := os.MkdirTemp("", "auditledger-bench-kube-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		return withBenchLedger(ctx, dir, false, true, 50*time.Millisecond, "", func(em *emitter.Emitter) error {
			return b.run(ctx, stdout, dir, em)
		})
	}
}

func (b *kubeBench) run(ctx context.Context, w io.Writer, dir string, em *emitter.Emitter) error {
	ca, err := os.ReadFile(b.caFile)
	if err != nil {
		return fmt.Errorf("--kube-ca: %w", err)
	}
	idp, err := oidcdev.Listen("127.0.0.1:0", oidcdev.Config{Audience: "auditledger-kube", Users: []oidcdev.User{
		{Name: "bench", Secret: "bench-secret", Groups: []string{"bench"}}}})
	if err != nil {
		return err
	}
	defer idp.Close()
	auth, err := identity.NewOIDC(ctx, identity.OIDCConfig{Issuer: idp.Issuer, Audience: "auditledger-kube"})
	if err != nil {
		return err
	}
	serving, err := kubegateway.OpenKeys(filepath.Join(dir, "kube-keys"), []string{"127.0.0.1"})
	if err != nil {
		return err
	}
	rec := &countingRecorder{em: em}
	// The personal-data keys, as serve and dev give the gateway: exec
	// output in bulk is sealed under the subject's key.
	pii, err := piikeys.Open(ctx, em.JetStream(), 1)
	if err != nil {
		return err
	}
	px, err := kubegateway.New(kubegateway.Config{Upstream: b.upstream, UpstreamCA: ca, TokenFile: b.tokenFile, Serving: serving, Auth: auth,
		Cluster: "bench", Emitter: rec, Tenant: "bench", StateDir: filepath.Join(dir, "kube-state"), PII: pii,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- px.Serve(sctx, ln) }()
	defer func() { stop(); <-served }()
	tok, err := identity.ClientCredentialsToken(ctx, idp.Issuer, "bench", "bench-secret")
	if err != nil {
		return err
	}
	viaConfig := filepath.Join(dir, "kubeconfig")
	os.WriteFile(viaConfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: gw
  cluster: {server: "https://%s", certificate-authority-data: %s}
users:
- name: bench
  user: {token: %s}
contexts:
- name: gw
  context: {cluster: gw, user: bench}
current-context: gw
`, ln.Addr(), base64.StdEncoding.EncodeToString(serving.CAPEM), tok)), 0o600)

	// kubectl keeps its discovery cache under $HOME/.kube: one of the
	// bench's own, filled by a first run each way.
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o700)
	kubectl := func(kubeconfig string, out io.Writer, args ...string) error {
		cmd := exec.CommandContext(ctx, b.kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = out, &errb
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
		}
		return nil
	}
	if err := kubectl(b.kubeconfig, io.Discard, "create", "clusterrolebinding", "auditledger-bench-kube", "--clusterrole=cluster-admin", "--group=oidc:bench"); err != nil &&
		!strings.Contains(err.Error(), "AlreadyExists") {
		return err
	}
	ways := []struct{ name, kubeconfig string }{{"direct", b.kubeconfig}, {"through the gateway", viaConfig}}
	getArgs := []string{"get", "pod", "-n", b.namespace, b.pod}
	for _, way := range ways {
		if err := kubectl(way.kubeconfig, io.Discard, getArgs...); err != nil {
			return fmt.Errorf("%s: %w", way.name, err)
		}
	}
	fmt.Fprintf(w, "Kubernetes gateway, %s, ledger writer sealing; kube-apiserver %s; each figure a kubectl process\n\n", cpuModel(), b.upstream)

	// kubectl get pod: one object, the runs of each way interleaved.
	gets := make([][]time.Duration, 2)
	for range b.gets {
		for i, way := range ways {
			began := time.Now()
			if err := kubectl(way.kubeconfig, io.Discard, getArgs...); err != nil {
				return fmt.Errorf("%s: %w", way.name, err)
			}
			gets[i] = append(gets[i], time.Since(began))
		}
	}

	// A list of many pods: made directly (with client-go), listed with the
	// stock kubectl (its default table, in chunks of 500).
	const listNS = "auditledger-bench-list"
	made, err := b.ensurePods(ctx, listNS)
	if err != nil {
		return err
	}
	lists := make([][]time.Duration, 2)
	for range b.lists {
		for i, way := range ways {
			var out countLines
			began := time.Now()
			if err := kubectl(way.kubeconfig, &out, "get", "pods", "-n", listNS, "--no-headers"); err != nil {
				return fmt.Errorf("%s: %w", way.name, err)
			}
			lists[i] = append(lists[i], time.Since(began))
			if out.n < b.pods {
				return fmt.Errorf("%s: kubectl get pods listed %d pods, want %d", way.name, out.n, b.pods)
			}
		}
	}

	// Exec throughput: a file of base64 text made in the pod, then cat of
	// it, first byte to last.
	execArgs := func(cmd ...string) []string {
		a := []string{"exec", "-n", b.namespace, b.pod}
		if b.container != "" {
			a = append(a, "-c", b.container)
		}
		return append(append(a, "--"), cmd...)
	}
	const textFile = "auditledger-bench-kube.txt"
	if err := kubectl(b.kubeconfig, io.Discard, execArgs("sh", "-c", fmt.Sprintf("head -c %d /dev/urandom | base64 > %s", b.size, textFile))...); err != nil {
		return err
	}
	defer kubectl(b.kubeconfig, io.Discard, execArgs("rm", "-f", textFile)...)
	var rates [2]float64
	var textBytes int64
	before := rec.events.Load()
	for i, way := range ways {
		var n countWriter
		if err := kubectl(way.kubeconfig, &n, execArgs("cat", textFile)...); err != nil {
			return fmt.Errorf("%s: %w", way.name, err)
		}
		if textBytes == 0 {
			textBytes = n.n
		}
		if n.n != textBytes || n.n == 0 {
			return fmt.Errorf("%s: exec printed %d bytes, want %d", way.name, n.n, textBytes)
		}
		rates[i] = float64(n.n) / (1 << 20) / n.last.Sub(n.first).Seconds()
	}
	settle(rec)
	execEvents := rec.events.Load() - before

	for _, d := range append(gets, lists...) {
		slices.Sort(d)
	}
	fmt.Fprintf(w, "%-44s %12s %20s %14s\n", "", "direct", "through the gateway", "added")
	row := func(what string, d, v time.Duration) {
		fmt.Fprintf(w, "%-44s %9.1f ms %17.1f ms %+11.1f ms\n", what, ms(d), ms(v), ms(v-d))
	}
	row(fmt.Sprintf("kubectl get pod, p50 of %d", b.gets), pct(gets[0], 0.50), pct(gets[1], 0.50))
	row(fmt.Sprintf("kubectl get pod, p99 of %d", b.gets), pct(gets[0], 0.99), pct(gets[1], 0.99))
	row(fmt.Sprintf("kubectl get pods, %d pods, median of %d", b.pods, b.lists), pct(lists[0], 0.50), pct(lists[1], 0.50))
	row(fmt.Sprintf("kubectl get pods, %d pods, slowest of %d", b.pods, b.lists), slices.Max(lists[0]), slices.Max(lists[1]))
	fmt.Fprintf(w, "%-44s %7.1f MiB/s %14.1f MiB/s %12.0f%%\n", fmt.Sprintf("exec stdout, cat of %.0f MiB of base64 text", float64(textBytes)/(1<<20)),
		rates[0], rates[1], 100*rates[1]/rates[0])
	fmt.Fprintf(w, "\n(added: through the gateway minus direct; the exec row: through the gateway as %% of direct, first byte to last;\n %d pods created for the list, %d events recorded for the exec through the gateway)\n", made, execEvents)
	return nil
}

// ensurePods makes the namespace hold b.pods pods (created, never
// scheduled: they are objects to list) and says how many it created.
func (b *kubeBench) ensurePods(ctx context.Context, ns string) (int, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", b.kubeconfig)
	if err != nil {
		return 0, fmt.Errorf("--kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return 0, fmt.Errorf("namespace %s: %w", ns, err)
	}
	// A cluster without a controller manager (a test one) makes no
	// default service account, which pod admission looks up.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return 0, fmt.Errorf("service account %s/default: %w", ns, err)
	}
	have, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	next := make(chan int)
	var mu sync.Mutex
	var firstErr error
	made := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%05d", i), Labels: map[string]string{"app": "auditledger-bench"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "registry.invalid/auditledger-bench:1"}}}}
				_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
				mu.Lock()
				switch {
				case err == nil:
					made++
				case !apierrors.IsAlreadyExists(err) && firstErr == nil:
					firstErr = fmt.Errorf("creating pod %s/%s: %w", ns, p.Name, err)
				}
				mu.Unlock()
			}
		}()
	}
	for i := len(have.Items); i < b.pods; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return made, firstErr
}

// countLines counts the lines written to it.
type countLines struct{ n int }

func (c *countLines) Write(p []byte) (int, error) {
	c.n += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}
