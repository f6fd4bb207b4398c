package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/auditledger/auditledger/services/identity"
)

// authFlags choose how clients prove who they are: OIDC tokens, or a
// development users file.
type authFlags struct {
	issuer, audience, groupsClaim, users *string
}

func addAuthFlags(fs *pflag.FlagSet) authFlags {
	aud := os.Getenv("AUDITLEDGER_OIDC_AUDIENCE")
	if aud == "" {
		aud = "auditledger"
	}
	return authFlags{
		issuer:      fs.String("oidc-issuer", os.Getenv("AUDITLEDGER_OIDC_ISSUER"), "OIDC issuer whose tokens clients present (default $AUDITLEDGER_OIDC_ISSUER)"),
		audience:    fs.String("oidc-audience", aud, "audience a token must be issued for (default $AUDITLEDGER_OIDC_AUDIENCE or auditledger)"),
		groupsClaim: fs.String("oidc-groups-claim", "groups", "token claim holding the user's groups"),
		users:       fs.String("users", "", "development only: YAML users file (user: password) instead of OIDC; identities are marked dev_identity"),
	}
}

// authenticator builds what the flags ask for and describes it.
func (a authFlags) authenticator(ctx context.Context, cmd string) (identity.Authenticator, string, error) {
	switch {
	case *a.users != "" && *a.issuer != "":
		return nil, "", fmt.Errorf("%s: --users and --oidc-issuer exclude each other", cmd)
	case *a.issuer != "":
		v, err := identity.NewOIDC(ctx, identity.OIDCConfig{Issuer: *a.issuer, Audience: *a.audience, GroupsClaim: *a.groupsClaim})
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", cmd, err)
		}
		return v, "OIDC tokens from " + *a.issuer + " for audience " + *a.audience, nil
	case *a.users != "":
		b, err := os.ReadFile(*a.users)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", cmd, err)
		}
		var users identity.StaticUsers
		if err := yaml.Unmarshal(b, &users); err != nil {
			return nil, "", fmt.Errorf("%s: users file %s: %w", cmd, *a.users, err)
		}
		if len(users) == 0 {
			return nil, "", fmt.Errorf("%s: users file %s defines no users", cmd, *a.users)
		}
		var names []string
		for n := range users {
			names = append(names, n)
		}
		slices.Sort(names)
		return users, "development users " + strings.Join(names, ", "), nil
	}
	return nil, "", fmt.Errorf("%s: say how clients authenticate: --oidc-issuer URL (or $AUDITLEDGER_OIDC_ISSUER), or --users FILE for development", cmd)
}
