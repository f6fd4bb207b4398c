// Command kubelet is a test kubelet: it registers a Node with the API
// server, marks the pods bound to it Running, and serves the kubelet's
// streaming endpoints (exec, attach, port-forward, container logs) that the
// API server proxies to, with the kubelet's own streaming server code
// (k8s.io/cri-streaming: remotecommand over SPDY/3.1 and WebSocket,
// port-forward over SPDY and WebSocket) in front of real processes.
//
// It runs no containers. A pod's containers are processes on this host,
// run as the user that runs this program, with the pod's directory
// (ROOT/pods/NAMESPACE/POD) as their working directory:
//
//   - each container's main process (its command and args, or sh when the
//     spec names none) is started when the pod is first seen; its output
//     goes to the container's log and to whoever is attached;
//   - exec runs the requested command there (under a pseudo-terminal when a
//     TTY is asked for, resized as the client asks); its exit status is
//     sent on the error channel;
//   - port-forward dials 127.0.0.1:PORT (the pod's network is this host's
//     loopback);
//   - a container's log is ROOT/logs/NAMESPACE/POD/CONTAINER.log in the
//     CRI log format ("TIMESTAMP STREAM F|P TEXT" a line), which tests may
//     append to.
//
// Only the API server may call it: its HTTPS listener requires a client
// certificate signed by --client-ca-file whose common name is
// --apiserver-client-name.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kubelet:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig to reach the API server with (register the node, update pods)")
		nodeName   = flag.String("node-name", "", "name of the Node to register")
		address    = flag.String("address", "127.0.0.1", "address to serve on (and to register as the node's InternalIP)")
		port       = flag.Int("port", 0, "port to serve HTTPS on")
		certFile   = flag.String("tls-cert-file", "", "serving certificate (PEM)")
		keyFile    = flag.String("tls-private-key-file", "", "serving key (PEM)")
		clientCA   = flag.String("client-ca-file", "", "CA that signs the API server's client certificate (PEM)")
		clientName = flag.String("apiserver-client-name", "", "common name the API server's client certificate must carry")
		rootDir    = flag.String("root-dir", "", "directory of the pods' working directories and logs")
		version    = flag.String("kubelet-version", "v1.37.2", "version reported in the node's status")
	)
	klog.InitFlags(nil)
	flag.Parse()
	for name, v := range map[string]string{
		"--kubeconfig": *kubeconfig, "--node-name": *nodeName, "--tls-cert-file": *certFile,
		"--tls-private-key-file": *keyFile, "--client-ca-file": *clientCA,
		"--apiserver-client-name": *clientName, "--root-dir": *rootDir,
	} {
		if v == "" {
			return fmt.Errorf("%s is required", name)
		}
	}
	if *port <= 0 || *port > 65535 {
		return fmt.Errorf("--port %d is not a port", *port)
	}
	root, err := filepath.Abs(*rootDir)
	if err != nil {
		return err
	}

	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("serving certificate: %v", err)
	}
	caPEM, err := os.ReadFile(*clientCA)
	if err != nil {
		return fmt.Errorf("client CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("client CA %s holds no certificate", *clientCA)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %v", err)
	}
	cfg.UserAgent = "auditledger-test-kubelet/" + *version
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	k := newKubelet(cs, *nodeName, *address, root)
	defer k.shutdown()

	ln, err := net.Listen("tcp", net.JoinHostPort(*address, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: k.authorize(*clientName, k.routes()),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
			MinVersion:   tls.VersionTLS12,
			// The streaming upgrades (SPDY, WebSocket) are HTTP/1.1.
			NextProtos: []string{"http/1.1"},
		},
		ReadHeaderTimeout: 30 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()

	// Serving first, registered second: once the node is Ready the API
	// server may send requests.
	if err := k.registerNode(ctx, *port, *version); err != nil {
		return fmt.Errorf("register node %s: %v", *nodeName, err)
	}
	go k.watchPods(ctx)
	klog.Infof("kubelet: node %s serving on %s", *nodeName, ln.Addr())

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}

// authorize lets through only the API server: the TLS layer verified the
// chain to the client CA; the name must be the API server's, so that
// another certificate of the same CA (a user's) cannot run commands here.
func (k *kubelet) authorize(name string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "client certificate required", http.StatusUnauthorized)
			return
		}
		if cn := r.TLS.PeerCertificates[0].Subject.CommonName; cn != name {
			klog.Warningf("kubelet: refused %s %s from client certificate %q (want %q)", r.Method, r.URL.Path, cn, name)
			http.Error(w, fmt.Sprintf("client certificate %q may not use this kubelet", cn), http.StatusForbidden)
			return
		}
		// The path and the protocols offered, not the query (a command's
		// arguments).
		klog.Infof("kubelet: %s %s upgrade=%q protocols=%q", r.Method, r.URL.Path, r.Header.Get("Upgrade"),
			append(r.Header.Values("X-Stream-Protocol-Version"), r.Header.Values("Sec-Websocket-Protocol")...))
		next.ServeHTTP(w, r)
	})
}
