package siem

import "time"

// SetAckWait sets JetStream's ack wait for the forwarders a test starts,
// until the returned func restores it.
func SetAckWait(d time.Duration) (restore func()) {
	old := ackWait
	ackWait = d
	return func() { ackWait = old }
}
