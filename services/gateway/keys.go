package gateway

import (
	"context"

	"github.com/auditledger/auditledger/ledger/piikeys"
)

// searchKey makes the keyed search digests of one event's values under
// its tenant's key (docs/FORMAT.md §1.5), reading the key only when the
// event has a value to digest: most have none, and the store keeps a key
// it has read for a minute (piikeys.CacheFor).
type searchKey struct {
	ctx    context.Context
	keys   *piikeys.Store
	tenant string
	key    []byte
	err    error // the key could not be read: no digest was made
}

// searchKey is nil without a key store: events record no digests.
func (g *Gateway) searchKey(ctx context.Context, tenant string) *searchKey {
	if g.cfg.Keys == nil {
		return nil
	}
	return &searchKey{ctx: ctx, keys: g.cfg.Keys, tenant: tenant}
}

// digester is k's digest function; nil for a nil k.
func (k *searchKey) digester() digester {
	if k == nil {
		return nil
	}
	return k.digest
}

func (k *searchKey) digest(v string) string {
	if k.key == nil && k.err == nil {
		k.key, k.err = k.keys.TenantKey(k.ctx, k.tenant)
	}
	if k.err != nil {
		return ""
	}
	return piikeys.MatchDigest(k.key, v)
}

// failed is the error reading the key, if a value needed it.
func (k *searchKey) failed() error {
	if k == nil {
		return nil
	}
	return k.err
}
