package emitter

import "github.com/nats-io/nats.go/jetstream"

// JetStream is the bus the emitter publishes to (Config.JetStream), for
// what a producer tells the bus besides its events (a gateway's
// heartbeat, bus.HeartbeatBucket).
func (e *Emitter) JetStream() jetstream.JetStream { return e.cfg.JetStream }
