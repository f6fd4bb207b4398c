package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KeyValueStream is the stream of a key-value bucket as JetStream's
// key-value buckets are made (jetstream.CreateKeyValue), but for one
// thing: it refuses rollups. A message with a Nats-Rollup header purges
// every key of its bucket, or of its subject, and anyone who may put one
// key may send one: with rollups allowed, one producer's credentials
// could empty the personal-data keys (every tenant's search key and
// every subject's field key), the approvals, the grants or the
// heartbeats. Keys are removed with a delete marker (KeyValue.Delete),
// never purged.
func KeyValueStream(cfg jetstream.KeyValueConfig) jetstream.StreamConfig {
	history := int64(1)
	if cfg.History > 0 {
		history = int64(cfg.History)
	}
	replicas := max(cfg.Replicas, 1)
	maxBytes, maxMsgSize := cfg.MaxBytes, cfg.MaxValueSize
	if maxBytes == 0 {
		maxBytes = -1
	}
	if maxMsgSize == 0 {
		maxMsgSize = -1
	}
	duplicates := 2 * time.Minute
	if cfg.TTL > 0 && cfg.TTL < duplicates {
		duplicates = cfg.TTL
	}
	return jetstream.StreamConfig{
		Name:              "KV_" + cfg.Bucket,
		Description:       cfg.Description,
		Subjects:          []string{"$KV." + cfg.Bucket + ".>"},
		MaxMsgsPerSubject: history,
		MaxBytes:          maxBytes,
		MaxAge:            cfg.TTL,
		MaxMsgSize:        maxMsgSize,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		Storage:           cfg.Storage,
		Replicas:          replicas,
		AllowRollup:       false,
		DenyDelete:        true,
		Duplicates:        duplicates,
		AllowDirect:       true,
		Discard:           jetstream.DiscardNew,
	}
}

// CreateOrUpdateKeyValue is jetstream's CreateOrUpdateKeyValue with the
// bucket's stream as KeyValueStream makes it: an existing bucket is
// brought to cfg, rollups refused. It needs the rights to create and
// update the stream.
func CreateOrUpdateKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if _, err := js.CreateOrUpdateStream(ctx, KeyValueStream(cfg)); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return js.KeyValue(ctx, cfg.Bucket)
}

// CreateKeyValue opens bucket cfg.Bucket, creating it as KeyValueStream
// makes it when it does not exist yet (another process racing to create
// it makes the same). It needs only the right to create the stream.
func CreateKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		_, err = js.CreateStream(ctx, KeyValueStream(cfg))
		if err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}
