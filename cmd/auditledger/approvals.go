package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/approvals"
	"github.com/auditledger/auditledger/services/identity"
)

const defaultAPI = "http://" + defaultAPIAddr

// apiFlags are the flags of commands that call the API.
type apiFlags struct {
	url, tokenFile *string
}

func addAPIFlags(fs interface {
	String(name, value, usage string) *string
}) apiFlags {
	u := os.Getenv("AUDITLEDGER_API")
	if u == "" {
		u = defaultAPI
	}
	return apiFlags{
		url:       fs.String("api", u, "API base URL (default from $AUDITLEDGER_API)"),
		tokenFile: fs.String("token-file", "", "file holding your OIDC token (default: $AUDITLEDGER_TOKEN)"),
	}
}

func (f apiFlags) token() (string, error) {
	if *f.tokenFile != "" {
		b, err := os.ReadFile(*f.tokenFile)
		return strings.TrimSpace(string(b)), err
	}
	if t := os.Getenv("AUDITLEDGER_TOKEN"); t != "" {
		return strings.TrimSpace(t), nil
	}
	return "", fmt.Errorf("no token: set AUDITLEDGER_TOKEN or pass --token-file (get one with: auditledger token)")
}

// call sends one authenticated request and decodes a JSON answer into out.
func (f apiFlags) call(ctx context.Context, method, path string, body, out any) error {
	b, err := f.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// do sends one authenticated request and returns the answer's bytes.
func (f apiFlags) do(ctx context.Context, method, path string, body any) ([]byte, error) {
	tok, err := f.token()
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(*f.url, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("API %s: %w", *f.url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, cli.Failed(fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode))
		}
		return nil, cli.Failed(fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b))))
	}
	return b, nil
}

// list reads the list at path, of the given status ("all": every one),
// into out.
func (f apiFlags) list(ctx context.Context, path, status string, out any) error {
	if status != "all" {
		path += "?status=" + url.QueryEscape(status)
	}
	return f.call(ctx, http.MethodGet, path, nil, out)
}

// decide posts a decision (verb: approve, deny, revoke) with its reason on
// the one request args name, under path (/v1/approvals/...), decoding the
// answer into out; usage says how to name it.
func (f apiFlags) decide(ctx context.Context, args []string, usage, path, verb, reason string, out any) error {
	if len(args) != 1 || args[0] == "" {
		return fmt.Errorf("%s: name the request", usage)
	}
	return f.call(ctx, http.MethodPost, path+url.PathEscape(args[0])+"/"+verb, map[string]string{"reason": reason}, out)
}

// printJSON prints v indented.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func approvalsList(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "approvals list [--status pending|granted|denied|expired|all] [--json]",
		"Lists approval requests: statements that proxies hold until an approver\ndecides. Needs a token with the approver, security or auditor role. The\nrequester's e-mail, sealed in the request (docs/FORMAT.md §1.6), is shown\nopened beside their subject to the auditor and security roles only\n(\"(erased)\" once the subject was erased); an approver sees the subject.")
	af := addAPIFlags(fs)
	st := fs.String("status", "pending", "which requests: pending, granted, denied, expired or all")
	asJSON := fs.Bool("json", false, "print the requests as JSON")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		var list []api.ApprovalResult
		if err := af.list(ctx, "/v1/approvals", *st, &list); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, list)
		}
		if len(list) == 0 {
			fmt.Fprintf(stdout, "no %s approval requests\n", *st)
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tREQUESTER\tTARGET\tEXPIRES\tSHA-256\tSTATEMENT")
		for _, r := range list {
			stmt := strings.ReplaceAll(r.Statement, "\n", " ")
			if len(stmt) > 60 {
				stmt = stmt[:57] + "..."
			}
			// The e-mail, sealed in the request, as the API opened it for
			// an auditor or security caller; an approver sees the subject.
			requester := r.Requester.Subject
			if r.RequesterEmail != "" {
				requester += " <" + r.RequesterEmail + ">"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\n", r.ID, r.Status, requester, r.Target.Kind, r.Target.Database,
				r.ExpiresAt.Local().Format(time.TimeOnly), r.StatementSHA256[:12], stmt)
		}
		return tw.Flush()
	}
}

func approvalsApprove(c *cobra.Command) cli.Run { return approvalsDecide(c, true) }

func approvalsDeny(c *cobra.Command) cli.Run { return approvalsDecide(c, false) }

func approvalsDecide(c *cobra.Command, grant bool) cli.Run {
	verb := map[bool]string{true: "approve", false: "deny"}[grant]
	fs := cli.Describe(c, "approvals "+verb+" ID [--reason TEXT] [--sha256 PREFIX]",
		"Decides a pending approval request. The statement held for it runs only on\napprove, and only that exact statement (its SHA-256 is in the request and in\nthe decision event). You cannot decide your own request. A denial needs\n--reason. --sha256 makes the decision conditional on the statement's digest\nstarting with PREFIX, as shown by `approvals list`.")
	af := addAPIFlags(fs)
	reason := fs.String("reason", "", "why (required to deny)")
	digest := fs.String("sha256", "", "only decide if the statement's SHA-256 starts with this")
	c.Args = cli.AtMostOne
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		usage := fmt.Sprintf("approvals %s ID (see approvals list)", verb)
		if *digest != "" && len(args) == 1 {
			var r approvals.Request
			if err := af.call(ctx, http.MethodGet, "/v1/approvals/"+url.PathEscape(args[0]), nil, &r); err != nil {
				return err
			}
			if !strings.HasPrefix(r.StatementSHA256, strings.ToLower(*digest)) {
				return cli.Failed(fmt.Errorf("approval %s is for a statement with SHA-256 %s, not %s…; nothing decided", args[0], r.StatementSHA256, *digest))
			}
		}
		var r approvals.Request
		if err := af.decide(ctx, args, usage, "/v1/approvals/", verb, *reason, &r); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s by %s (statement sha256 %s)\n", r.ID, r.Status, r.Decider.Subject, r.StatementSHA256)
		return nil
	}
}

func tokenCmd(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "token --issuer URL --client-id ID",
		"Prints an access token from an OIDC provider, obtained with the OAuth\nclient-credentials grant (how automated agents, and the users of\n`auditledger dev`'s development provider, get one). The secret is read from\n$AUDITLEDGER_CLIENT_SECRET so that it stays out of the process list. Use the\ntoken as the password of `proxy postgres`, as a bearer token for `proxy http`,\nor as $AUDITLEDGER_TOKEN for `approvals`.")
	issuer := fs.String("issuer", os.Getenv("AUDITLEDGER_OIDC_ISSUER"), "OIDC issuer URL (default $AUDITLEDGER_OIDC_ISSUER)")
	client := fs.String("client-id", "", "OAuth client ID (for the development provider: the user name)")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "issuer", "client-id"); err != nil {
			return err
		}
		secret := os.Getenv("AUDITLEDGER_CLIENT_SECRET")
		if secret == "" {
			return fmt.Errorf("token: set AUDITLEDGER_CLIENT_SECRET to the client secret")
		}
		tok, err := identity.ClientCredentialsToken(ctx, *issuer, *client, secret)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, tok)
		return nil
	}
}
