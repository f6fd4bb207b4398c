package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/auditledger/auditledger/services/kubegateway"
)

// kubeconfig writes a kubeconfig that verifies the gateway against its CA
// and runs kube-credential; kube-credential prints an ExecCredential with
// the token and its expiry.
func TestKubeconfigAndCredential(t *testing.T) {
	dir := t.TempDir()
	keys, err := kubegateway.OpenKeys(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	exp := time.Now().Add(time.Hour).Unix()
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"alice","exp":` + strings.TrimSpace(string(mustJSON(t, exp))) + `}`))
	os.WriteFile(tokenFile, []byte("e30."+claims+".sig\n"), 0o600)
	out := filepath.Join(dir, "kubeconfig")
	if _, errs, code := runCLI(t, "kubeconfig", "--cluster", "prod", "--server", "https://127.0.0.1:7349", "--ca-file", filepath.Join(dir, kubegateway.CAFile),
		"--token-file", tokenFile, "-o", out); code != 0 {
		t.Fatal(errs)
	}
	b, _ := os.ReadFile(out)
	var kc struct {
		Clusters []struct {
			Cluster map[string]any `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			User struct {
				Exec struct {
					APIVersion string   `yaml:"apiVersion"`
					Command    string   `yaml:"command"`
					Args       []string `yaml:"args"`
				} `yaml:"exec"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(b, &kc); err != nil {
		t.Fatal(err)
	}
	ca, _ := base64.StdEncoding.DecodeString(kc.Clusters[0].Cluster["certificate-authority-data"].(string))
	if string(ca) != string(keys.CAPEM) || kc.Clusters[0].Cluster["insecure-skip-tls-verify"] != nil || kc.Users[0].User.Exec.APIVersion != kubegateway.ExecAPIVersion ||
		!filepath.IsAbs(kc.Users[0].User.Exec.Command) || strings.Join(kc.Users[0].User.Exec.Args, " ") != "kube-credential --token-file "+tokenFile {
		t.Fatalf("kubeconfig:\n%s", b)
	}
	stdout, errs, code := runCLI(t, "kube-credential", "--token-file", tokenFile)
	if code != 0 {
		t.Fatal(errs)
	}
	var cred struct {
		APIVersion, Kind string
		Status           struct {
			Token               string
			ExpirationTimestamp time.Time
		}
	}
	if err := json.Unmarshal([]byte(stdout), &cred); err != nil {
		t.Fatal(err)
	}
	if cred.Kind != "ExecCredential" || cred.APIVersion != kubegateway.ExecAPIVersion || !strings.HasPrefix(cred.Status.Token, "e30.") || cred.Status.ExpirationTimestamp.Unix() != exp {
		t.Fatalf("ExecCredential: %s", stdout)
	}
	if _, _, code := runCLI(t, "kubeconfig", "--cluster", "prod"); code == 0 {
		t.Fatal("a kubeconfig without the gateway's CA was written")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
