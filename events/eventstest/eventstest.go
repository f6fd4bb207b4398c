// Package eventstest makes valid events for tests.
package eventstest

import (
	"encoding/json"
	"time"

	"github.com/auditledger/auditledger/events"
)

// Command returns a valid command.executed event with the given id, for
// tenant "acme", actor alice, recording statement.
func Command(id, statement string) *events.Event {
	payload := []byte(`{}`)
	if statement != "" {
		payload, _ = json.Marshal(map[string]string{"statement": statement})
	}
	return &events.Event{
		Version: events.Version, ID: id, Type: events.CommandExecuted,
		Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Tenant: "acme",
		Source:  events.Source{Kind: "test", Instance: "t1"},
		Actor:   events.Actor{Issuer: "https://idp.example", Subject: "alice", Kind: events.Human},
		Payload: payload,
	}
}
