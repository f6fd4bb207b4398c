package piikeys

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TenantKeyInfo is what may be shown of a tenant's search key: whose it
// is and when it was made, never the key.
type TenantKeyInfo struct {
	Tenant  string
	Created time.Time
}

// TenantKeyList lists the tenants that have a search key, by tenant. It
// reads the tenants' entries only, not the data subjects'.
func (s *Store) TenantKeyList(ctx context.Context) ([]TenantKeyInfo, error) {
	keys, err := s.kv.ListKeysFiltered(ctx, "tenant.*")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("piikeys: listing the bucket: %w", err)
	}
	var out []TenantKeyInfo
	for k := range keys.Keys() {
		if !strings.HasPrefix(k, "tenant.") {
			continue
		}
		e, err := s.get(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("piikeys: %s: %w", k, err)
		}
		out = append(out, TenantKeyInfo{Tenant: e.Tenant, Created: e.Created})
	}
	slices.SortFunc(out, func(a, b TenantKeyInfo) int { return strings.Compare(a.Tenant, b.Tenant) })
	return out, nil
}
