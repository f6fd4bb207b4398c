package oidcdev

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The development provider's SCIM 2.0 service (RFC 7643, RFC 7644): its
// users and the groups they are in, read-only, at <issuer>/scim/v2/Users
// and /scim/v2/Groups, for a client holding Config.SCIMToken as a bearer
// token — so that the identity snapshot's whole path (a SCIM client with
// paging, against a real HTTP server) runs in dev and the tests as it
// does against a production provider. Only list requests with startIndex
// and count are served; no filters, no writes.

// SCIM schema URNs.
const (
	scimUser         = "urn:ietf:params:scim:schemas:core:2.0:User"
	scimGroup        = "urn:ietf:params:scim:schemas:core:2.0:Group"
	scimListResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	scimError        = "urn:ietf:params:scim:api:messages:2.0:Error"
)

// scimPageSize is the most resources one page holds when
// Config.SCIMPageSize is 0.
const scimPageSize = 100

type scimRef struct {
	Value   string `json:"value"`
	Display string `json:"display,omitempty"`
}

type scimEmail struct {
	Value   string `json:"value"`
	Primary bool   `json:"primary"`
}

type scimUserResource struct {
	Schemas  []string    `json:"schemas"`
	ID       string      `json:"id"`
	UserName string      `json:"userName"`
	Active   bool        `json:"active"`
	Emails   []scimEmail `json:"emails,omitempty"`
	Groups   []scimRef   `json:"groups,omitempty"`
	// UserType says whether the identity is a person or a machine.
	UserType string `json:"userType"`
}

type scimGroupResource struct {
	Schemas     []string  `json:"schemas"`
	ID          string    `json:"id"`
	DisplayName string    `json:"displayName"`
	Members     []scimRef `json:"members"`
}

// scimHandler serves the SCIM service, or nil when no token is configured.
func (p *Provider) scimHandler() http.Handler {
	if p.st.cfg.SCIMToken == "" {
		return nil
	}
	users, groups := p.st.scimResources()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /scim/v2/Users", func(w http.ResponseWriter, r *http.Request) { p.scimList(w, r, users) })
	mux.HandleFunc("GET /scim/v2/Groups", func(w http.ResponseWriter, r *http.Request) { p.scimList(w, r, groups) })
	return mux
}

// scimResources lists the users by name and the groups they name.
func (s *storage) scimResources() (users, groups []any) {
	names := make([]string, 0, len(s.users))
	members := map[string][]scimRef{}
	for name, u := range s.users {
		names = append(names, name)
		for _, g := range u.Groups {
			members[g] = append(members[g], scimRef{Value: name, Display: name})
		}
	}
	slices.Sort(names)
	for _, name := range names {
		u := s.users[name]
		res := scimUserResource{Schemas: []string{scimUser}, ID: name, UserName: name, Active: true, UserType: "person"}
		if u.Machine {
			res.UserType = "machine"
		}
		if u.Email != "" {
			res.Emails = []scimEmail{{Value: u.Email, Primary: true}}
		}
		for _, g := range u.Groups {
			res.Groups = append(res.Groups, scimRef{Value: g, Display: g})
		}
		users = append(users, res)
	}
	gnames := make([]string, 0, len(members))
	for g := range members {
		gnames = append(gnames, g)
	}
	slices.Sort(gnames)
	for _, g := range gnames {
		m := members[g]
		slices.SortFunc(m, func(a, b scimRef) int { return strings.Compare(a.Value, b.Value) })
		groups = append(groups, scimGroupResource{Schemas: []string{scimGroup}, ID: g, DisplayName: g, Members: m})
	}
	return users, groups
}

// scimList answers a list request: one page of all, from startIndex (from
// 1) and at most count (capped at the page size) resources.
func (p *Provider) scimList(w http.ResponseWriter, r *http.Request, all []any) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(p.st.cfg.SCIMToken)) != 1 {
		scimFail(w, http.StatusUnauthorized, "a bearer token the provider issued for SCIM is required")
		return
	}
	page := p.st.cfg.SCIMPageSize
	if page <= 0 {
		page = scimPageSize
	}
	start, count := 1, page
	q := r.URL.Query()
	for name, dst := range map[string]*int{"startIndex": &start, "count": &count} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				scimFail(w, http.StatusBadRequest, name+" is not an integer")
				return
			}
			*dst = n
		}
	}
	// RFC 7644 §3.4.2.4: a startIndex below 1 is 1, a negative count 0.
	start, count = max(start, 1), min(max(count, 0), page)
	from := min(start-1, len(all))
	to := min(from+count, len(all))
	w.Header().Set("Content-Type", "application/scim+json")
	json.NewEncoder(w).Encode(map[string]any{"schemas": []string{scimListResponse}, "totalResults": len(all),
		"startIndex": start, "itemsPerPage": to - from, "Resources": append([]any{}, all[from:to]...)})
}

func scimFail(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"schemas": []string{scimError}, "status": strconv.Itoa(status), "detail": detail})
}
