// Package kvrecord reads the JSON records the brokers keep in JetStream
// key-value buckets (pending approvals, access requests): one record with
// its revision, for a compare-and-swap, or every record of a bucket.
package kvrecord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Get returns the record at key id and its revision. A missing key (or
// one that cannot be a key) is notFound, wrapped with what and id ("approval
// apr-…: not found").
func Get[T any](ctx context.Context, kv jetstream.KeyValue, what, id string, notFound error) (*T, uint64, error) {
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, 0, fmt.Errorf("%s %s: %w", what, id, notFound)
	}
	if err != nil {
		return nil, 0, err
	}
	var r T
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", what, id, err)
	}
	return &r, e.Revision(), nil
}

// List returns every record of kv that keep accepts, in key order; a
// record deleted while the keys are read is left out.
func List[T any](ctx context.Context, kv jetstream.KeyValue, what string, notFound error, keep func(*T) bool) ([]*T, error) {
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []*T
	for k := range keys.Keys() {
		r, _, err := Get[T](ctx, kv, what, k, notFound)
		if errors.Is(err, notFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		if keep(r) {
			out = append(out, r)
		}
	}
	return out, nil
}
