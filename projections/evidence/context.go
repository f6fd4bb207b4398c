package evidence

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
)

// The context of a bundle (docs/FORMAT.md §12, context/): what an audit
// asks of the management system beside the activity — the policy each
// event was judged by, who held which group, what the clock was worth —
// each file derived from the range's records alone, by the same code at
// building and at verifying, so the verifier re-derives it and fails on
// any difference: the files rest on the checkpoints, not on the evidence
// key.

// Controls the context files support (ISO/IEC 27001:2022).
var (
	policiesControls   = []string{"8.2", "8.3", "8.11", "8.32"}
	identitiesControls = []string{"5.15", "5.16", "5.18"}
	clockControls      = []string{"8.17"}
)

// PolicyLoad is a policy.loaded event of the range.
type PolicyLoad struct {
	Index      uint64          `json:"index"`
	SealedAt   string          `json:"sealed_at"`
	Source     events.Source   `json:"source"`
	File       string          `json:"file"`
	Version    int             `json:"version"`
	SHA256     string          `json:"sha256"`
	Exemptions json.RawMessage `json:"exemptions_by_omission"`
}

// PolicyNamed is one policy reference the range's events name (payload
// member "policy", §1.3), with how many name it.
type PolicyNamed struct {
	Version int    `json:"version"`
	SHA256  string `json:"sha256"`
	Events  int    `json:"events"`
	// LoadedInRange: a policy.loaded of the range has this digest.
	LoadedInRange bool `json:"loaded_in_range"`
}

// Policies is context/policies.json.
type Policies struct {
	Loaded []PolicyLoad   `json:"loaded"`
	Named  []PolicyNamed  `json:"named"`
	Events int            `json:"events"`
	Naming int            `json:"events_naming_a_policy"`
	named  map[string]int // version/sha256 → index in Named
}

// IdentitySnapshot is one identity.snapshot event of the range, its
// members summarised (the event lists them).
type IdentitySnapshot struct {
	Index         uint64          `json:"index"`
	SealedAt      string          `json:"sealed_at"`
	Snapshot      string          `json:"snapshot"`
	Part          int             `json:"part"`
	Parts         int             `json:"parts"`
	Source        string          `json:"source"`
	Issuer        string          `json:"issuer"`
	Users         int             `json:"users"`
	Active        int             `json:"active"`
	ListingSHA256 string          `json:"listing_sha256"`
	Members       int             `json:"members_in_part"`
	Groups        json.RawMessage `json:"groups,omitempty"`
}

// Identities is context/identities.json.
type Identities struct {
	Snapshots []IdentitySnapshot `json:"snapshots"`
}

// ClockReading is one ledger.clock.status record of the range.
type ClockReading struct {
	Index    uint64 `json:"index"`
	SealedAt string `json:"sealed_at"`
	ledger.ClockStatus
}

// Clock is context/clock.json.
type Clock struct {
	Readings       []ClockReading `json:"readings"`
	Synchronised   int            `json:"synchronised"`
	Unsynchronised int            `json:"unsynchronised"`
	MaxErrorMicros int64          `json:"max_maxerror_us"`
}

// contextOf derives the three files from the range's whole records, fed
// in index order.
type contextOf struct {
	tenant     string
	policies   Policies
	identities Identities
	clock      Clock
}

func newContext(tenant string) *contextOf {
	return &contextOf{tenant: tenant, policies: Policies{Loaded: []PolicyLoad{}, Named: []PolicyNamed{}, named: map[string]int{}},
		identities: Identities{Snapshots: []IdentitySnapshot{}}, clock: Clock{Readings: []ClockReading{}}}
}

// isClockStatus reports whether event is a ledger.clock.status system
// record, which a bundle shows whole.
func isClockStatus(event []byte) bool {
	return bytes.HasPrefix(event, []byte(`{"type":"`+string(events.LedgerClockStatus)+`"`))
}

// note reads one whole record of the range: one of the tenant's events,
// or a clock status record of the log.
func (c *contextOf) note(idx uint64, sealed time.Time, event []byte) error {
	ev, err := events.Parse(event)
	if err != nil {
		return fmt.Errorf("record %d: %w", idx, err)
	}
	if ev.Type == events.LedgerClockStatus && ev.Tenant == ledger.SystemTenant {
		at := sealed.UTC().Format(time.RFC3339Nano)
		var st ledger.ClockStatus
		if err := json.Unmarshal(ev.Payload, &st); err != nil {
			return fmt.Errorf("record %d: clock status: %w", idx, err)
		}
		c.clock.Readings = append(c.clock.Readings, ClockReading{Index: idx, SealedAt: at, ClockStatus: st})
		if st.Synchronised {
			c.clock.Synchronised++
		} else {
			c.clock.Unsynchronised++
		}
		c.clock.MaxErrorMicros = max(c.clock.MaxErrorMicros, st.MaxErrorMicros)
		return nil
	}
	if ev.Tenant != c.tenant {
		return nil
	}
	c.policies.Events++
	at := func() string { return sealed.UTC().Format(time.RFC3339Nano) }
	switch ev.Type {
	case events.PolicyLoaded:
		var p PolicyLoad
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			return fmt.Errorf("record %d: policy.loaded: %w", idx, err)
		}
		p.Index, p.SealedAt, p.Source = idx, at(), ev.Source
		if p.Exemptions == nil {
			p.Exemptions = json.RawMessage("[]")
		}
		p.Exemptions = compact(p.Exemptions)
		c.policies.Loaded = append(c.policies.Loaded, p)
	case events.IdentitySnapshot:
		var s IdentitySnapshot
		var m struct {
			Members []json.RawMessage `json:"members"`
		}
		if err := json.Unmarshal(ev.Payload, &s); err != nil {
			return fmt.Errorf("record %d: identity.snapshot: %w", idx, err)
		}
		json.Unmarshal(ev.Payload, &m)
		s.Index, s.SealedAt, s.Members = idx, at(), len(m.Members)
		if s.Groups != nil {
			s.Groups = compact(s.Groups)
		}
		c.identities.Snapshots = append(c.identities.Snapshots, s)
	}
	if !mayName(ev.Payload, "policy") {
		return nil
	}
	var ref struct {
		Policy *struct {
			Version int    `json:"version"`
			SHA256  string `json:"sha256"`
		} `json:"policy"`
	}
	if json.Unmarshal(ev.Payload, &ref) == nil && ref.Policy != nil {
		c.policies.Naming++
		key := fmt.Sprintf("%d/%s", ref.Policy.Version, ref.Policy.SHA256)
		i, ok := c.policies.named[key]
		if !ok {
			i = len(c.policies.Named)
			c.policies.named[key] = i
			c.policies.Named = append(c.policies.Named, PolicyNamed{Version: ref.Policy.Version, SHA256: ref.Policy.SHA256})
		}
		c.policies.Named[i].Events++
	}
	return nil
}

func compact(b json.RawMessage) json.RawMessage {
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return b
	}
	return out.Bytes()
}

// files returns the three files' bytes, in path order.
func (c *contextOf) files() map[string][]byte {
	for i, n := range c.policies.Named {
		c.policies.Named[i].LoadedInRange = slices.ContainsFunc(c.policies.Loaded, func(p PolicyLoad) bool { return p.SHA256 == n.SHA256 })
	}
	slices.SortStableFunc(c.policies.Named, func(a, b PolicyNamed) int {
		return strings.Compare(fmt.Sprintf("%09d/%s", a.Version, a.SHA256), fmt.Sprintf("%09d/%s", b.Version, b.SHA256))
	})
	out := map[string][]byte{}
	for path, v := range map[string]any{PoliciesFile: &c.policies, IdentitiesFile: &c.identities, ClockFile: &c.clock} {
		b, _ := json.MarshalIndent(v, "", "  ")
		out[path] = append(b, '\n')
	}
	return out
}

// mayName reports whether payload may have a member that json.Unmarshal
// reads as name's (lower-case ASCII letters other than k and s, whose
// case folds to no other code point): false when no case of name is in
// its bytes and no escape either.
func mayName(payload []byte, name string) bool {
	if bytes.IndexByte(payload, '\\') >= 0 {
		return true
	}
	for i := 0; i+len(name) <= len(payload); i++ {
		if payload[i]|0x20 == name[0] && bytes.EqualFold(payload[i:i+len(name)], []byte(name)) {
			return true
		}
	}
	return false
}
