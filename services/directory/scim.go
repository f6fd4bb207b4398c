// Package directory records what the identity provider says of users and
// groups — a snapshot of its directory, read over SCIM 2.0 (RFC 7644) or,
// where no SCIM service is configured, the identities and groups the
// ledger saw in tokens — as identity.snapshot events (docs/FORMAT.md
// §1.1), at start and daily. An auditor then has, sealed with the
// activity, who held which group when (ISO/IEC 27001:2022 5.15, 5.18).
package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// SCIM is a read-only SCIM 2.0 client for /Users and /Groups.
type SCIM struct {
	// BaseURL is the service's base, e.g. https://idp.example/scim/v2.
	BaseURL string
	// Token is the bearer token the provider issued for SCIM.
	Token string
	// PageSize is the count asked for per page (0: 100); the server may
	// send fewer.
	PageSize int
	Client   *http.Client // nil: http.DefaultClient
}

// ErrSCIM: the SCIM service refused or answered something not SCIM.
var ErrSCIM = errors.New("directory: SCIM")

// maxPages bounds one listing (a server that never ends it).
const maxPages = 10000

// User is a SCIM user as the snapshot needs it.
type User struct {
	ID       string `json:"id"`
	UserName string `json:"userName"`
	// ExternalID is the identifier the provider knows the user by
	// elsewhere; tokens' sub, for some providers.
	ExternalID string `json:"externalId"`
	Active     *bool  `json:"active"`
	UserType   string `json:"userType"`
	Groups     []struct {
		Value   string `json:"value"`
		Display string `json:"display"`
	} `json:"groups"`
}

// Group is a SCIM group.
type Group struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Members     []struct {
		Value string `json:"value"`
	} `json:"members"`
}

// Users lists every user, page by page.
func (c *SCIM) Users(ctx context.Context) ([]User, error) { return list[User](ctx, c, "Users") }

// Groups lists every group, page by page.
func (c *SCIM) Groups(ctx context.Context) ([]Group, error) { return list[Group](ctx, c, "Groups") }

// list reads resource from startIndex 1 until totalResults are read
// (RFC 7644 §3.4.2.4): each page from where the last ended.
func list[T any](ctx context.Context, c *SCIM, resource string) ([]T, error) {
	count := c.PageSize
	if count <= 0 {
		count = 100
	}
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	base := strings.TrimSuffix(c.BaseURL, "/") + "/" + resource
	var out []T
	start := 1
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("%w: %s: more than %d pages", ErrSCIM, base, maxPages)
		}
		u := base + "?" + url.Values{"startIndex": {fmt.Sprint(start)}, "count": {fmt.Sprint(count)}}.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/scim+json")
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrSCIM, base, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrSCIM, base, err)
		}
		if resp.StatusCode != http.StatusOK {
			var e struct {
				Detail string `json:"detail"`
			}
			json.Unmarshal(body, &e)
			return nil, fmt.Errorf("%w: %s: HTTP %d: %s", ErrSCIM, base, resp.StatusCode, e.Detail)
		}
		var lr struct {
			Schemas      []string `json:"schemas"`
			TotalResults int      `json:"totalResults"`
			ItemsPerPage int      `json:"itemsPerPage"`
			StartIndex   int      `json:"startIndex"`
			Resources    []T      `json:"Resources"`
		}
		if err := json.Unmarshal(body, &lr); err != nil {
			return nil, fmt.Errorf("%w: %s: not a ListResponse: %w", ErrSCIM, base, err)
		}
		out = append(out, lr.Resources...)
		switch {
		case len(out) >= lr.TotalResults:
			return out, nil
		case len(lr.Resources) == 0:
			return nil, fmt.Errorf("%w: %s: an empty page at %d of %d results", ErrSCIM, base, start, lr.TotalResults)
		}
		start += len(lr.Resources)
	}
}
