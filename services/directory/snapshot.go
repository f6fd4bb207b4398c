package directory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
)

// Member is one identity of the directory: its subject as tokens name it
// (the OIDC sub), whether it may sign in, a person or a machine, and its
// groups.
type Member struct {
	Subject string
	Active  bool
	Kind    events.ActorKind
	Groups  []string
}

// Snapshot is the directory at one moment.
type Snapshot struct {
	// Source is "scim" (the provider's directory) or "tokens" (the
	// identities and groups the ledger saw in tokens since Since).
	Source   string
	Endpoint string // the SCIM base URL
	Since    time.Time
	Members  []Member
}

// SubjectOf picks the SCIM attribute tokens use as sub.
type SubjectOf string

// The attributes a provider may put in sub.
const (
	SubjectUserName   SubjectOf = "userName"
	SubjectID         SubjectOf = "id"
	SubjectExternalID SubjectOf = "externalId"
)

// FromSCIM reads the users and groups and joins them: a user's groups are
// those its resource names and those naming it as a member.
func FromSCIM(ctx context.Context, c *SCIM, sub SubjectOf) (*Snapshot, error) {
	users, err := c.Users(ctx)
	if err != nil {
		return nil, err
	}
	groups, err := c.Groups(ctx)
	if err != nil {
		return nil, err
	}
	in := map[string][]string{} // user id → group names
	for _, g := range groups {
		name := cmpOr(g.DisplayName, g.ID)
		for _, m := range g.Members {
			in[m.Value] = append(in[m.Value], name)
		}
	}
	s := &Snapshot{Source: "scim", Endpoint: c.BaseURL}
	for _, u := range users {
		m := Member{Active: u.Active == nil || *u.Active, Kind: events.Human}
		switch sub {
		case SubjectID:
			m.Subject = u.ID
		case SubjectExternalID:
			m.Subject = u.ExternalID
		default:
			m.Subject = u.UserName
		}
		if m.Subject == "" {
			return nil, fmt.Errorf("%w: user %q has no %s, the attribute tokens name it by", ErrSCIM, u.ID, cmpOr(string(sub), string(SubjectUserName)))
		}
		if strings.EqualFold(u.UserType, "machine") || strings.EqualFold(u.UserType, "service") {
			m.Kind = events.Machine
		}
		for _, g := range u.Groups {
			m.Groups = append(m.Groups, cmpOr(g.Display, g.Value))
		}
		m.Groups = append(m.Groups, in[u.ID]...)
		slices.Sort(m.Groups)
		m.Groups = slices.Compact(m.Groups)
		s.Members = append(s.Members, m)
	}
	return s, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// membersPerEvent bounds the members one identity.snapshot event lists,
// so that an event stays well within 64 KiB: a larger directory is
// recorded as several parts of one snapshot.
const membersPerEvent = 250

// Events are the identity.snapshot events of s for tenant, as the
// producer source records them: identities as events record actors
// (gateway.RecordedActor — a subject a detector finds something in, an
// e-mail address, as its pseudonym; a personal group as a placeholder;
// never an e-mail), each group with its members' count and the SHA-256
// of their list, the whole listing's SHA-256, and the members in parts.
func (s *Snapshot) Events(ctx context.Context, keys *piikeys.Store, tenant, issuer string, source events.Source, now time.Time) ([]*events.Event, error) {
	type member struct {
		Subject string           `json:"subject"`
		Active  bool             `json:"active"`
		Kind    events.ActorKind `json:"kind"`
		Groups  []string         `json:"groups"`
	}
	var ms []member
	var errs []error
	for _, m := range s.Members {
		a, err := gateway.RecordedActor(ctx, keys, tenant, events.Actor{Issuer: issuer, Subject: m.Subject, Kind: m.Kind, Groups: slices.Clone(m.Groups)})
		if err != nil {
			errs = append(errs, err)
		}
		g := a.Groups
		if g == nil {
			g = []string{}
		}
		slices.Sort(g)
		ms = append(ms, member{Subject: a.Subject, Active: m.Active, Kind: m.Kind, Groups: g})
	}
	slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.Subject, b.Subject) })
	var listing strings.Builder
	byGroup := map[string][]string{}
	active := 0
	for _, m := range ms {
		fmt.Fprintf(&listing, "%s\t%t\t%s\t%s\n", m.Subject, m.Active, m.Kind, strings.Join(m.Groups, ","))
		for _, g := range m.Groups {
			byGroup[g] = append(byGroup[g], m.Subject)
		}
		if m.Active {
			active++
		}
	}
	type group struct {
		Name          string `json:"name"`
		Members       int    `json:"members"`
		MembersSHA256 string `json:"members_sha256"`
	}
	groups := []group{}
	for _, name := range slices.Sorted(mapsKeys(byGroup)) {
		groups = append(groups, group{Name: name, Members: len(byGroup[name]), MembersSHA256: sum(strings.Join(byGroup[name], "\n") + "\n")})
	}
	parts := max(1, (len(ms)+membersPerEvent-1)/membersPerEvent)
	snap := detect.RandomHex(8)
	var out []*events.Event
	for p := range parts {
		chunk := ms[min(p*membersPerEvent, len(ms)):min((p+1)*membersPerEvent, len(ms))]
		payload := map[string]any{"snapshot": snap, "part": p + 1, "parts": parts, "source": s.Source, "issuer": issuer,
			"users": len(ms), "active": active, "listing_sha256": sum(listing.String()), "members": append([]member{}, chunk...)}
		if p == 0 {
			payload["groups"] = groups
		}
		if s.Endpoint != "" {
			payload["endpoint"] = s.Endpoint
		}
		if !s.Since.IsZero() {
			payload["since"] = s.Since.UTC().Format(time.RFC3339)
		}
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, err
		}
		ev := &events.Event{Version: events.Version, ID: fmt.Sprintf("identity-snapshot/%s/%d", snap, p+1), Type: events.IdentitySnapshot,
			Time: now.UTC(), Tenant: tenant, Source: source,
			Actor: events.Actor{Issuer: "auditledger", Subject: "directory", Kind: events.Machine}, Payload: b}
		raw, err := ev.Marshal()
		if err != nil {
			return nil, fmt.Errorf("directory: identity.snapshot: %w", err)
		}
		// What the writer would refuse is never sent: the detectors'
		// judge, as the writer runs it (the value is not named).
		if m, found, _ := detect.InEvent(raw); found {
			return nil, fmt.Errorf("directory: identity.snapshot part %d holds what detector %s finds (at %s): not recorded", p+1, m.Detector, m.Path)
		}
		out = append(out, ev)
	}
	return out, errors.Join(errs...)
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func mapsKeys(m map[string][]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Recorder records a snapshot at start and every Every.
type Recorder struct {
	// Read takes a snapshot: FromSCIM, or the groups seen in tokens.
	Read func(ctx context.Context) (*Snapshot, error)
	// Emit stores one event.
	Emit   func(ctx context.Context, ev *events.Event) error
	Keys   *piikeys.Store
	Tenant string
	Issuer string
	Source events.Source
	Every  time.Duration // 0: a day
	Logger *slog.Logger
}

// Once takes and records one snapshot, returning its events.
func (r *Recorder) Once(ctx context.Context) ([]*events.Event, error) {
	s, err := r.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("directory: snapshot for tenant %s: %w", r.Tenant, err)
	}
	evs, err := s.Events(ctx, r.Keys, r.Tenant, r.Issuer, r.Source, time.Now())
	if evs == nil {
		return nil, err
	}
	if err != nil {
		r.Logger.Warn("identity snapshot: an identity recorded in its placeholder", "tenant", r.Tenant, "err", err)
	}
	for _, ev := range evs {
		if err := r.Emit(ctx, ev); err != nil {
			return nil, fmt.Errorf("directory: recording %s: %w", ev.ID, err)
		}
	}
	return evs, nil
}

// Run records a snapshot now and every Every until ctx ends; a failed one
// is logged and tried again in five minutes.
func (r *Recorder) Run(ctx context.Context) {
	every := r.Every
	if every <= 0 {
		every = 24 * time.Hour
	}
	for {
		wait := every
		evs, err := r.Once(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.Logger.Error("identity snapshot not recorded; trying again in 5 minutes", "tenant", r.Tenant, "err", err)
			wait = 5 * time.Minute
		case err == nil:
			r.Logger.Info("identity snapshot recorded", "tenant", r.Tenant, "events", len(evs))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Seen is an identity the ledger saw in tokens (projections.SeenIdentity).
type Seen struct {
	Subject string
	Kind    string
	Groups  []string
}

// FromTokens is the snapshot where no SCIM service is configured: the
// identities that acted since a time, each with the groups its tokens
// carried — what the tokens said, not the directory (an identity that
// did not act is not in it).
func FromTokens(seen []Seen, since time.Time) *Snapshot {
	s := &Snapshot{Source: "tokens", Since: since}
	for _, x := range seen {
		kind := events.ActorKind(x.Kind)
		if kind != events.Machine {
			kind = events.Human
		}
		s.Members = append(s.Members, Member{Subject: x.Subject, Active: true, Kind: kind, Groups: slices.Clone(x.Groups)})
	}
	return s
}
