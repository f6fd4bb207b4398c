package bus

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// HeartbeatBucket holds one entry per running gateway (services/gateway),
// put again every interval while it runs: how the API tells a quiet
// gateway (alive, nothing to record) from a stopped one without adding
// a record to the write-once log every few seconds. It is never sealed:
// a heartbeat is a sign of life, not evidence.
const HeartbeatBucket = "AUDIT_HEARTBEATS"

// HeartbeatMaxAge is how long an entry stays in HeartbeatBucket after
// its last put: a gateway that stopped without a word (a crash, a lost
// host) is shown stale for that long, then forgotten.
const HeartbeatMaxAge = 24 * time.Hour

// HeartbeatBucketConfig is HeartbeatBucket's configuration, the same for
// every process that creates it (the first gateway to start, or the
// API): one value per key, kept in memory (the next beat puts it again
// after a restart of the bus), expiring HeartbeatMaxAge after the last
// put.
func HeartbeatBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       HeartbeatBucket,
		Description:  "running gateways' heartbeats (services/gateway): liveness only, never sealed",
		History:      1,
		TTL:          HeartbeatMaxAge,
		Storage:      jetstream.MemoryStorage,
		MaxValueSize: 4 << 10,
		// Bounded: a credential may put many keys (Proxy's, any); a full
		// bucket refuses new ones, and liveness is all that is lost.
		MaxBytes: 16 << 20,
	}
}

// HeartbeatKey is the key of producer (kind, instance)'s heartbeat: both
// as ProducerToken makes them, so that a producer's own role may put
// its key only (Producer's permissions end in its token).
func HeartbeatKey(kind, instance string) string {
	return ProducerToken(kind) + "." + ProducerToken(instance)
}

// Heartbeat is the JSON value of a HeartbeatBucket entry
// (docs/FORMAT.md, "Heartbeats").
type Heartbeat struct {
	// Kind and Instance are the gateway's events' source.
	Kind     string `json:"kind"`
	Instance string `json:"instance"`
	// Tenant is the gateway's configured tenant: the API shows the
	// heartbeat to callers whose scope covers it.
	Tenant string `json:"tenant"`
	// Role is the gateway's short name (pgproxy, httpproxy, sshgw,
	// kubegw); Version what its binary was built from.
	Role    string `json:"role"`
	Version string `json:"version"`
	// Host and PID name the process, so that two processes beating for
	// one instance show.
	Host string `json:"host,omitempty"`
	PID  int    `json:"pid,omitempty"`
	// Started is when the gateway started; Beat when this entry was
	// put (the gateway's clock; readers judge liveness by the bus's
	// time of the put).
	Started time.Time `json:"started"`
	Beat    time.Time `json:"beat"`
	// Interval is how often it beats, TTL how long after a beat it is
	// taken for alive, both in seconds.
	Interval float64 `json:"interval_seconds"`
	TTL      float64 `json:"ttl_seconds"`
	// Stopped: the gateway's last entry, put when it closed.
	Stopped bool `json:"stopped,omitempty"`
}
