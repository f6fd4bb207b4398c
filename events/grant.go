package events

import (
	"encoding/json"
	"time"
)

// Grant is what the access broker signs for a just-in-time grant: the
// members of its grant text (docs/FORMAT.md §13).
type Grant struct {
	ID, Tenant, Rule    string
	Requester           Actor // issuer and subject only
	Target              string
	NotBefore, NotAfter time.Time
	BreakGlass          bool
}

// GrantKind is the first member of every grant text.
const GrantKind = "auditledger access grant v1"

// GrantText is the statement the broker signs for g (FORMAT §13): one
// line of JSON, these members in this order (Go's encoding/json, times
// RFC 3339 in UTC), and a newline. Gateways rebuild it from the stored
// request, and evidence assertions from the access.granted record, and
// open the grant's signed note against it.
func GrantText(g Grant) []byte {
	type who struct {
		Issuer  string `json:"issuer"`
		Subject string `json:"subject"`
	}
	b, _ := json.Marshal(struct {
		Kind       string    `json:"kind"`
		ID         string    `json:"id"`
		Tenant     string    `json:"tenant"`
		Rule       string    `json:"rule"`
		Requester  who       `json:"requester"`
		Target     string    `json:"target"`
		NotBefore  time.Time `json:"not_before"`
		NotAfter   time.Time `json:"not_after"`
		BreakGlass bool      `json:"break_glass"`
	}{GrantKind, g.ID, g.Tenant, g.Rule, who{g.Requester.Issuer, g.Requester.Subject}, g.Target,
		g.NotBefore.UTC(), g.NotAfter.UTC(), g.BreakGlass})
	return append(b, '\n')
}
