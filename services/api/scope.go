package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/services/approvals"
)

// Scopes: a role says what a caller may do, a scope where. Both come from
// the verified token's groups: "tenant:acme" lets its holder read tenant
// acme's events, sessions and evidence and see its approvals;
// "target:orders" lets a reviewer see and decide the approvals held on
// target orders; "tenant:*" and "target:*" reach every one. The admin
// role is scoped like the others.
//
// Lists are filtered in their query (the reader's Tenants); a request
// naming a tenant, session, bundle or approval outside the scope is
// refused (403) and the refusal recorded as command.blocked, under the
// tenant asked for (whose auditors should see the attempt), naming none
// of the caller's other tenants. An event looked up by id or index
// outside the scope answers 404, as an unknown one does (its existence is
// not told), and is recorded the same way, under the event's tenant.
// Checkpoints, consistency proofs and hash tiles carry only hashes and
// sizes, and any auditor or security caller may read them; an entry
// bundle is refused if it would show the event of a record outside the
// scope (a tenant-bound record shows only its header, tenant hash and
// digest, FORMAT §2.4, so only records from before bound records can).

// ScopeConfig says how scopes are read from groups.
type ScopeConfig struct {
	// TenantPrefix starts the groups naming a tenant; empty means
	// "tenant:".
	TenantPrefix string
	// TargetPrefix starts the groups naming a target; empty means
	// "target:".
	TargetPrefix string
	// UnscopedAll decides what a caller holding no tenant group (no
	// target group) reaches. False, the zero value, fails closed: no
	// tenant (no target), and every tenant-bound request is refused and
	// recorded. True: every tenant (target), as before scopes existed —
	// for a deployment of one tenant whose provider cannot name tenants.
	UnscopedAll bool
}

// scope is what one caller may reach.
type scope struct {
	allTenants, allTargets bool
	tenants, targets       []string
}

func (c ScopeConfig) of(a events.Actor) scope {
	var s scope
	for _, g := range a.Groups {
		if t, ok := strings.CutPrefix(g, c.TenantPrefix); ok && t != "" {
			s.allTenants = s.allTenants || t == "*"
			s.tenants = append(s.tenants, t)
		}
		if t, ok := strings.CutPrefix(g, c.TargetPrefix); ok && t != "" {
			s.allTargets = s.allTargets || t == "*"
			s.targets = append(s.targets, t)
		}
	}
	s.allTenants = s.allTenants || c.UnscopedAll && len(s.tenants) == 0
	s.allTargets = s.allTargets || c.UnscopedAll && len(s.targets) == 0
	return s
}

func (s scope) tenant(t string) bool { return s.allTenants || slices.Contains(s.tenants, t) }
func (s scope) target(t string) bool { return s.allTargets || slices.Contains(s.targets, t) }

// approval says whether the caller may see and decide r: its tenant and
// its target are both in scope.
func (s scope) approval(r *approvals.Request) bool {
	return s.tenant(r.Tenant) && s.target(r.Target.Name)
}

// in is the scope as the auditors of tenant may see it: the other
// tenants it reaches are not named.
func (s scope) in(tenant string) string {
	var names []string
	switch {
	case s.allTenants:
		names = []string{"*"}
	case slices.Contains(s.tenants, tenant):
		names = []string{tenant}
	}
	if !s.allTenants && len(s.tenants) > len(names) {
		names = append(names, "others not named")
	}
	g := strings.Join(s.targets, ",")
	if s.allTargets {
		g = "*"
	}
	return fmt.Sprintf("tenants [%s], targets [%s]", strings.Join(names, ","), g)
}

func (s scope) String() string {
	t, g := strings.Join(s.tenants, ","), strings.Join(s.targets, ",")
	if s.allTenants {
		t = "*"
	}
	if s.allTargets {
		g = "*"
	}
	return fmt.Sprintf("tenants [%s], targets [%s]", t, g)
}

func (a *api) scopeOf(r *http.Request) scope { return a.cfg.Scope.of(actorOf(r.Context())) }

// errOutOfScope: the request reaches beyond the caller's scope.
var errOutOfScope = errors.New("outside your scope")

// scopeError is a refusal for scope: 403, or 404 when hidden is set (the
// thing's existence is not told). It names what was asked and the scope
// the caller holds.
type scopeError struct {
	what   string
	scope  scope
	hidden bool
	// tenants are those the refused request reaches into (the tenant
	// named, or the tenants of the hidden events); none: the API's own.
	tenants []string
}

func (e *scopeError) Error() string {
	if e.hidden {
		return e.what
	}
	return fmt.Sprintf("%s: %v (your groups give %v)", e.what, errOutOfScope, e.scope)
}

func (e *scopeError) Is(target error) bool {
	if e.hidden {
		return target == errNotFound
	}
	return target == errForbidden || target == errOutOfScope
}

// refuse answers a refusal for scope, and records it under each tenant
// the request reached into, or the API's own when it named none.
func (a *api) refuse(w http.ResponseWriter, r *http.Request, e *scopeError) {
	tenants := slices.Compact(slices.Sorted(slices.Values(e.tenants)))
	if len(tenants) == 0 {
		tenants = []string{a.cfg.Tenant}
	}
	for _, t := range tenants {
		payload := map[string]any{"reason": "out of scope: " + e.what, "scope": e.scope.in(t)}
		if len(e.tenants) > 0 {
			payload["tenant"] = t
		}
		a.recordAsync(r, events.CommandBlocked, a.actorIn(actorOf(r.Context()), t), t, payload)
	}
	a.fail(w, r, e)
}

// checkTenantScope refuses a tenant the caller names outside its scope.
func (a *api) checkTenantScope(w http.ResponseWriter, r *http.Request, tenant string) bool {
	if s := a.scopeOf(r); !s.tenant(tenant) {
		a.refuse(w, r, &scopeError{what: fmt.Sprintf("tenant %q", tenant), scope: s, tenants: []string{tenant}})
		return false
	}
	return true
}

// tenantsOf is the tenants a list may show: the one the caller names
// (checked, and refused outside its scope), else those of its scope (nil:
// every tenant; a caller without any tenant is refused). False means
// refused, the answer written.
func (a *api) tenantsOf(w http.ResponseWriter, r *http.Request, named string) ([]string, bool) {
	if named != "" {
		if err := checkTenant(named); err != nil {
			a.fail(w, r, err)
			return nil, false
		}
		if !a.checkTenantScope(w, r, named) {
			return nil, false
		}
		return []string{named}, true
	}
	s := a.scopeOf(r)
	switch {
	case s.allTenants:
		return nil, true
	case len(s.tenants) == 0:
		a.refuse(w, r, &scopeError{what: fmt.Sprintf("tenant data, for a caller in no group %sNAME", a.cfg.Scope.TenantPrefix), scope: s})
		return nil, false
	}
	return s.tenants, true
}
