package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/services/kubegateway"
)

// kubeconfigCmd writes a kubeconfig for the Kubernetes gateway whose user
// runs `auditledger kube-credential` for its token.
func kubeconfigCmd(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "kubeconfig --cluster NAME --ca-file FILE [--server URL] [--issuer URL --client-id ID | --token-file FILE] [-o FILE]",
		"Writes a kubeconfig for the Kubernetes gateway: its server is the gateway's\nTLS URL, verified against the gateway's CA (--ca-file, embedded as\ncertificate-authority-data; verification is never skipped), and its user runs\nthe exec credential plugin `auditledger kube-credential` with the token\noptions given here, so kubectl, client-go programs and agents keep working as\ntokens expire. The secret of --client-id is read by the plugin from\n$AUDITLEDGER_CLIENT_SECRET at each use; it is never written to the file.")
	cluster := fs.String("cluster", "", "the cluster's name in the kubeconfig (cluster, context)")
	def := os.Getenv("AUDITLEDGER_KUBE_GATEWAY")
	if def == "" {
		def = "https://" + defaultKubeGatewayAddr
	}
	server := fs.String("server", def, "the gateway's URL (default $AUDITLEDGER_KUBE_GATEWAY or https://"+defaultKubeGatewayAddr+")")
	caFile := fs.String("ca-file", os.Getenv("AUDITLEDGER_KUBE_CA"), "the gateway's CA certificate, PEM: its keys_dir/ca.crt or its tls_ca (default $AUDITLEDGER_KUBE_CA)")
	issuer := fs.String("issuer", os.Getenv("AUDITLEDGER_OIDC_ISSUER"), "OIDC issuer, for the plugin to fetch tokens with the client-credentials grant (default $AUDITLEDGER_OIDC_ISSUER)")
	client := fs.String("client-id", "", "OAuth client ID for the client-credentials grant")
	tokenFile := fs.String("token-file", "", "file the plugin reads your OIDC token from (default: the plugin reads $AUDITLEDGER_TOKEN)")
	out := fs.StringP("out", "o", "", "file to write the kubeconfig to, mode 0600 (default: stdout)")
	return func(_ context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
		if err := cli.Required(fs, "cluster", "ca-file"); err != nil {
			return err
		}
		ca, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
		self, err := os.Executable()
		if err != nil {
			return err
		}
		args := []string{"kube-credential"}
		switch {
		case *client != "":
			if *issuer == "" {
				return cli.Usagef("--client-id needs --issuer")
			}
			args = append(args, "--issuer", *issuer, "--client-id", *client)
		case *tokenFile != "":
			abs, err := filepath.Abs(*tokenFile)
			if err != nil {
				return err
			}
			args = append(args, "--token-file", abs)
		}
		b, err := kubegateway.Kubeconfig(kubegateway.KubeconfigSpec{Cluster: *cluster, Server: *server, CAPEM: ca, Command: self, Args: args})
		if err != nil {
			return err
		}
		if *out == "" {
			_, err = stdout.Write(b)
			return err
		}
		return os.WriteFile(*out, b, 0o600)
	}
}

// kubeCredential is the exec credential plugin of the kubeconfigs
// `auditledger kubeconfig` writes.
func kubeCredential(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "kube-credential [--issuer URL --client-id ID | --token-file FILE]",
		"Prints a client.authentication.k8s.io/v1 ExecCredential holding an OIDC token\nfor the Kubernetes gateway, as kubectl's exec credential plugins do: the\ntoken is $AUDITLEDGER_TOKEN, --token-file, or one fetched with the\nclient-credentials grant (--issuer, --client-id, the secret in\n$AUDITLEDGER_CLIENT_SECRET), as agents do. Its expiry is the token's.")
	issuer := fs.String("issuer", os.Getenv("AUDITLEDGER_OIDC_ISSUER"), "OIDC issuer, to fetch a token with the client-credentials grant (default $AUDITLEDGER_OIDC_ISSUER)")
	client := fs.String("client-id", "", "OAuth client ID for the client-credentials grant")
	tokenFile := fs.String("token-file", "", "file holding your OIDC token (default: $AUDITLEDGER_TOKEN)")
	return func(ctx context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
		tok, err := oidcToken(ctx, "kube-credential", *tokenFile, *issuer, *client)
		if err != nil {
			return err
		}
		b, err := kubegateway.ExecCredential(tok)
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
}
