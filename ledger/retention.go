package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/auditledger/auditledger/events"
)

// Retention is how long sealed objects stay locked, per tenant. A segment
// holds several tenants' records, so its lock runs for the longest
// retention among the tenants it holds.
type Retention struct {
	// Default applies to every tenant not in Tenants, and to the ledger's
	// own records (tenant _ledger). Zero: no lock.
	Default time.Duration
	// Tenants overrides Default per tenant. Nil: Default for all.
	Tenants map[string]time.Duration
}

// DefaultTenant names the default retention in a retention record.
const DefaultTenant = "*"

// For is the retention of tenant's records.
func (r Retention) For(tenant string) time.Duration {
	if d, ok := r.Tenants[tenant]; ok {
		return d
	}
	return r.Default
}

// Max is the longest retention r gives any tenant.
func (r Retention) Max() time.Duration {
	d := r.Default
	for _, v := range r.Tenants {
		d = max(d, v)
	}
	return d
}

// RetentionChange is the payload of a ledger.retention.changed record
// (docs/FORMAT.md §2.1): one tenant's retention, or the default's, as the
// writer found it recorded and as its configuration now says.
type RetentionChange struct {
	// Tenant is the tenant, or DefaultTenant ("*") for the default.
	Tenant string `json:"tenant"`
	// OldSeconds is the retention recorded before, 0 when none was (the
	// first record of a log, or a tenant that had the default);
	// NewSeconds the retention from now on, 0 when the tenant goes back
	// to the default.
	OldSeconds int64 `json:"old_seconds"`
	NewSeconds int64 `json:"new_seconds"`
	// Old and New say the same for people: "365d", "36h0m0s", or
	// "default".
	Old string `json:"old"`
	New string `json:"new"`
	// By says who or what made the change: the configuration it was read
	// from and the writer that recorded it.
	By string `json:"by"`
}

// Changes lists what differs between the recorded retention old and r,
// the default first, then tenants by name.
func (r Retention) Changes(old Retention, by string) []RetentionChange {
	var out []RetentionChange
	if r.Default != old.Default {
		out = append(out, newRetentionChange(DefaultTenant, old.Default, r.Default, by))
	}
	names := slices.Sorted(maps.Keys(r.Tenants))
	for t := range old.Tenants {
		if _, ok := r.Tenants[t]; !ok {
			names = append(names, t)
		}
	}
	slices.Sort(names)
	for _, t := range names {
		o, oldSet := old.Tenants[t]
		n, newSet := r.Tenants[t]
		if oldSet != newSet || o != n {
			out = append(out, newRetentionChange(t, o, n, by))
		}
	}
	return out
}

func newRetentionChange(tenant string, old, new time.Duration, by string) RetentionChange {
	text := func(d time.Duration) string {
		switch {
		case d == 0 && tenant == DefaultTenant:
			return "none"
		case d == 0:
			return "default"
		case d%(24*time.Hour) == 0:
			return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
		}
		return d.String()
	}
	return RetentionChange{Tenant: tenant, OldSeconds: int64(old / time.Second), NewSeconds: int64(new / time.Second),
		Old: text(old), New: text(new), By: by}
}

// RetentionEntries are the records of changes, to be sealed at index
// first onwards before any segment the new retention applies to.
func RetentionEntries(origin string, first uint64, changes []RetentionChange, at time.Time) ([]Entry, error) {
	out := make([]Entry, 0, len(changes))
	for i, c := range changes {
		if len(c.By) > maxReason {
			c.By = c.By[:maxReason]
		}
		// The record belongs to the tenant it concerns, so that tenant's
		// readers and evidence see it; the default's to the log.
		tenant := c.Tenant
		if tenant == DefaultTenant {
			tenant = SystemTenant
		}
		b, err := systemRecordFor(origin, tenant, events.LedgerRetentionChanged, fmt.Sprintf("ledger/retention/%d", first+uint64(i)), at, c)
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Event: b, Tenant: tenant})
	}
	return out, nil
}

// retentionPrefix begins the event of a retention record.
var retentionPrefix = []byte(`{"type":"` + string(events.LedgerRetentionChanged) + `"`)

// noteRetention applies a retention record to the recorded retention.
func (st *logState) noteRetention(name string, idx uint64, r Record) error {
	if !bytes.HasPrefix(r.Event, retentionPrefix) {
		return nil
	}
	_, payload, _, err := systemRecordOf(r.Event)
	var c RetentionChange
	if err == nil {
		err = json.Unmarshal(payload, &c)
	}
	if err == nil && (c.Tenant == "" || c.NewSeconds < 0) {
		err = fmt.Errorf("tenant %q, new_seconds %d", c.Tenant, c.NewSeconds)
	}
	if err != nil {
		return verr(name, int64(idx), "retention record payload", "tenant and new_seconds (docs/FORMAT.md §2.1)", err.Error())
	}
	if st.retention == nil {
		st.retention = &Retention{}
	}
	d := time.Duration(c.NewSeconds) * time.Second
	switch {
	case c.Tenant == DefaultTenant:
		st.retention.Default = d
	case d == 0:
		delete(st.retention.Tenants, c.Tenant)
	default:
		if st.retention.Tenants == nil {
			st.retention.Tenants = map[string]time.Duration{}
		}
		st.retention.Tenants[c.Tenant] = d
	}
	return nil
}

// RecordedRetention is the retention the log's records last recorded,
// and false when they record none.
func (l *Log) RecordedRetention() (Retention, bool) {
	if l.st.retention == nil {
		return Retention{}, false
	}
	r := *l.st.retention
	r.Tenants = maps.Clone(r.Tenants)
	return r, true
}
