package kubegateway

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ExecAPIVersion is the client.authentication.k8s.io version of the
// credentials `auditledger kube-credential` prints and kubeconfigs ask
// for.
const ExecAPIVersion = "client.authentication.k8s.io/v1"

// KubeconfigSpec is what a kubeconfig for the gateway says.
type KubeconfigSpec struct {
	Cluster string // the cluster's (and context's) name
	Server  string // the gateway's https:// URL
	CAPEM   []byte // the CA of the gateway's serving certificate
	// Command and Args run the exec credential plugin (`auditledger
	// kube-credential …`); Command should be an absolute path.
	Command string
	Args    []string
}

// Kubeconfig is a kubeconfig (YAML) whose one context reaches the gateway
// over TLS verified against its CA — never with verification skipped —
// and gets its token from the exec credential plugin.
func Kubeconfig(s KubeconfigSpec) ([]byte, error) {
	switch {
	case s.Cluster == "" || s.Command == "":
		return nil, errors.New("kubeconfig: a cluster name and the plugin's command are required")
	case !strings.HasPrefix(s.Server, "https://"):
		return nil, errors.New("kubeconfig: the gateway's server URL must be https://")
	case len(s.CAPEM) == 0:
		return nil, errors.New("kubeconfig: the gateway's CA is required (kubeconfigs never skip verification)")
	}
	if _, err := parseCAs(s.CAPEM); err != nil {
		return nil, errors.New("kubeconfig: the gateway's CA: " + err.Error())
	}
	user := "auditledger-" + s.Cluster
	args := s.Args
	if args == nil {
		args = []string{}
	}
	doc := map[string]any{
		"apiVersion": "v1", "kind": "Config", "preferences": map[string]any{},
		"clusters": []any{map[string]any{"name": s.Cluster, "cluster": map[string]any{
			"server": s.Server, "certificate-authority-data": base64.StdEncoding.EncodeToString(s.CAPEM)}}},
		"users": []any{map[string]any{"name": user, "user": map[string]any{"exec": map[string]any{
			"apiVersion": ExecAPIVersion, "command": s.Command, "args": args,
			"interactiveMode": "Never", "provideClusterInfo": false,
			"installHint": "auditledger kube-credential is part of the auditledger command; install it, or write the kubeconfig again with auditledger kubeconfig",
		}}}},
		"contexts":        []any{map[string]any{"name": s.Cluster, "context": map[string]any{"cluster": s.Cluster, "user": user}}},
		"current-context": s.Cluster,
	}
	return yaml.Marshal(doc)
}

// ExecCredential is the ExecCredential an exec credential plugin prints
// for token: its expiry, read from the token's exp claim (not verified:
// the gateway verifies), lets kubectl fetch a new one in time.
func ExecCredential(token string) ([]byte, error) {
	if token == "" {
		return nil, errors.New("kube-credential: no token")
	}
	status := map[string]any{"token": token}
	if exp, ok := tokenExpiry(token); ok {
		status["expirationTimestamp"] = exp.UTC().Format(time.RFC3339)
	}
	b, err := json.Marshal(map[string]any{"apiVersion": ExecAPIVersion, "kind": "ExecCredential", "status": status})
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func tokenExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(b, &claims) != nil || claims.Exp == 0 {
		return time.Time{}, false
	}
	return time.Unix(claims.Exp, 0), true
}
