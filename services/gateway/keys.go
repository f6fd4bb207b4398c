package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"slices"

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

// Labels of the keyed digests of content (docs/FORMAT.md §1.5): each
// kind of content is digested under its own label, so that a digest of
// one kind cannot stand for another.
const (
	ParamLabel    = "auditledger param v1\n"    // a bind parameter's bytes
	BodyLabel     = "auditledger body v1\n"     // an HTTP request body, as received
	ResponseLabel = "auditledger response v1\n" // a result as the client received it
	CopyLabel     = "auditledger copy v1\n"     // COPY FROM STDIN data a client sent
	FileLabel     = "auditledger file v1\n"     // a file's bytes, read from or written to a target (sftp, kubectl cp)
)

// KeyedDigest is "hmac:" and the lower-case hex of HMAC-SHA-256(key,
// label ‖ b).
func KeyedDigest(key []byte, label string, b []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write(b)
	return "hmac:" + hex.EncodeToString(m.Sum(nil))
}

// Keyed returns the session tenant's keyed digest of content
// (KeyedDigest under its search key), for the digests a gateway records
// of content that may hold personal data — bind parameters, request
// bodies — where an unkeyed digest could be reversed by guessing. It
// returns nil without a key store (Config.Keys), and an error when the
// key cannot be read; in both cases the gateway records no digest of
// that content.
func (s *Session) Keyed(ctx context.Context) (func(label string, b []byte) string, error) {
	if s.g.cfg.Keys == nil {
		return nil, nil
	}
	key, err := s.g.cfg.Keys.TenantKey(ctx, s.tenant)
	if err != nil {
		return nil, err
	}
	return func(label string, b []byte) string { return KeyedDigest(key, label, b) }, nil
}

// KeyedSum is a running keyed digest (KeyedDigest) of content that
// arrives in pieces: a result, a response body, COPY data. A nil
// *KeyedSum — no key — digests nothing, and its Digest is empty.
type KeyedSum struct {
	h     hash.Hash
	label string
}

// NewKeyedSum starts KeyedDigest(key, label, …) over what is written.
func NewKeyedSum(key []byte, label string) *KeyedSum {
	s := &KeyedSum{h: hmac.New(sha256.New, key), label: label}
	s.h.Write([]byte(label))
	return s
}

func (s *KeyedSum) Write(b []byte) {
	if s != nil {
		s.h.Write(b)
	}
}

// Digest is "hmac:" and the hex of the digest of what was written since
// the start or the last Reset; empty for a nil s.
func (s *KeyedSum) Digest() string {
	if s == nil {
		return ""
	}
	return "hmac:" + hex.EncodeToString(s.h.Sum(nil))
}

// Reset starts over, under the same key and label.
func (s *KeyedSum) Reset() {
	if s != nil {
		s.h.Reset()
		s.h.Write([]byte(s.label))
	}
}

// KeyedSum starts a keyed digest under the session tenant's search key,
// for content that may hold personal data and arrives in pieces (a
// result, a response body): an unkeyed digest of a one-row result holding
// a card number is a dictionary away from it. It returns nil without a
// key store, and nil and the error when the key cannot be read: the
// gateway then records no digest of that content.
func (s *Session) KeyedSum(ctx context.Context, label string) (*KeyedSum, error) {
	if s.g.cfg.Keys == nil {
		return nil, nil
	}
	key, err := s.g.cfg.Keys.TenantKey(ctx, s.tenant)
	if err != nil {
		return nil, err
	}
	return NewKeyedSum(key, label), nil
}

// Digest turns the values rs carry (Found) into their keyed search
// digests now, under the session tenant's key, and drops them: for a
// gateway that must keep the entries a while before it records them (a
// bound parameter until its portal runs). Without a key store the values
// are dropped without digests; a key that cannot be read is an error, and
// the values are dropped all the same.
func (s *Session) Digest(ctx context.Context, rs []Redaction) ([]Redaction, error) {
	key := s.g.searchKey(ctx, s.tenant)
	out := slices.Clone(rs)
	for i := range out {
		out[i].digest(key.digester())
	}
	return out, key.failed()
}
