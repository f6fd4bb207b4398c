package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger/bus"
)

// heartbeats reads the gateways' heartbeats (bus.HeartbeatBucket) and
// sets each producer's liveness: on its row when the row is one the
// caller may see, or on a row of its own when the gateway's configured
// tenant is one of tenants (nil: every tenant). An entry whose key is
// not its own kind and instance's (bus.HeartbeatKey: the key a
// producer's credentials may put) is not believed.
func (a *api) heartbeats(ctx context.Context, rep *ProcessesReport, tenants []string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := a.cfg.Bus.Stream(ctx, "KV_"+bus.HeartbeatBucket)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil // no gateway ever beat
	case err != nil:
		return fmt.Errorf("the heartbeat bucket: %w", err)
	}
	prefix := "$KV." + bus.HeartbeatBucket + "."
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return fmt.Errorf("the heartbeat bucket: %w", err)
	}
	keys := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		keys = append(keys, strings.TrimPrefix(subj, prefix))
	}
	slices.Sort(keys)
	row := map[[2]string]int{}
	for i, p := range rep.Producers {
		row[[2]string{p.Kind, p.Instance}] = i
	}
	var errs []error
	added := 0 // rows of gateways known by their heartbeat alone
	for _, key := range keys {
		m, err := s.GetLastMsgForSubject(ctx, prefix+key)
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgNotFound) {
				errs = append(errs, fmt.Errorf("the heartbeat %s: %w", key, err))
			}
			continue
		}
		if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			continue
		}
		var hb bus.Heartbeat
		if err := json.Unmarshal(m.Data, &hb); err != nil || bus.HeartbeatKey(hb.Kind, hb.Instance) != key {
			a.cfg.Logger.Warn("processes: a heartbeat not of its key's producer, ignored", "key", key, "err", err)
			continue
		}
		if err := events.CheckTenant(hb.Tenant); err != nil {
			// Anyone who may put the key chose it: a tenant no record
			// could carry would fail the read's own record.
			a.cfg.Logger.Warn("processes: a heartbeat naming no valid tenant, ignored", "key", key, "err", err)
			continue
		}
		i, ok := row[[2]string{hb.Kind, hb.Instance}]
		if !ok {
			if tenants != nil && !slices.Contains(tenants, hb.Tenant) {
				continue // another tenant's gateway
			}
			if added >= max(a.cfg.MaxProducers, 1) {
				rep.Truncated = true // as many rows of heartbeats alone as of records
				continue
			}
			added++
			i = len(rep.Producers)
			row[[2]string{hb.Kind, hb.Instance}] = i
			rep.Producers = append(rep.Producers, ProducerState{Kind: hb.Kind, Instance: hb.Instance, Tenants: []string{hb.Tenant}, State: "none"})
		}
		p := &rep.Producers[i]
		p.Heartbeat = &HeartbeatState{Role: hb.Role, Version: hb.Version, Host: hb.Host, PID: hb.PID, Started: hb.Started.UTC(),
			LastSeen: m.Time.UTC(), Interval: hb.Interval, TTL: hb.TTL}
		// The TTL is the producer's word: bounded, so that an entry
		// cannot stay alive long after its beats stopped.
		ttl := min(time.Duration(hb.TTL*float64(time.Second)), MaxHeartbeatTTL)
		switch {
		case hb.Stopped:
			p.Liveness = "stopped"
		case rep.Now.Sub(p.Heartbeat.LastSeen) <= ttl:
			p.Liveness = "alive"
		default:
			p.Liveness = "stale"
		}
	}
	return errors.Join(errs...)
}

// MaxHeartbeatTTL bounds how long after its last beat a gateway is taken
// for alive, whatever TTL its entry names.
const MaxHeartbeatTTL = 10 * time.Minute

// logSize is the log's size as the bus tells it: the newest AUDIT_LEDGER
// message's first index (bus.HeaderIndex) and count (bus.HeaderCount,
// one when absent); zero when it holds none.
func logSize(ctx context.Context, ls jetstream.Stream) (uint64, error) {
	info, err := ls.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("the ledger stream: %w", err)
	}
	if info.State.Msgs == 0 {
		return 0, nil
	}
	m, err := ls.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		return 0, fmt.Errorf("the ledger stream's newest message: %w", err)
	}
	idx, err := strconv.ParseUint(m.Header.Get(bus.HeaderIndex), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("the ledger stream's newest message has no valid %s header", bus.HeaderIndex)
	}
	count := uint64(1)
	if c := m.Header.Get(bus.HeaderCount); c != "" {
		if count, err = strconv.ParseUint(c, 10, 64); err != nil {
			return 0, fmt.Errorf("the ledger stream's newest message has no valid %s header", bus.HeaderCount)
		}
	}
	return idx + count, nil
}

// projectors reads the projectors' cursors and measures each against
// the log's size (rep.LogSize, when known).
func (a *api) projectors(ctx context.Context, rep *ProcessesReport, staleAfter time.Duration) error {
	cursors, err := a.read.Projectors(ctx)
	if err != nil {
		return err
	}
	rep.Projectors = make([]ProjectorState, 0, len(cursors))
	for _, c := range cursors {
		ps := ProjectorState{Name: c.Name, Size: c.Size, Updated: c.Updated, State: "unknown"}
		if rep.LogSize != nil {
			lag := *rep.LogSize - min(c.Size, *rep.LogSize)
			ps.Lag = &lag
			switch {
			case lag == 0:
				ps.State = "current"
			case rep.Now.Sub(c.Updated) <= staleAfter:
				ps.State = "applying"
			default:
				ps.State = "stale"
			}
		}
		rep.Projectors = append(rep.Projectors, ps)
	}
	return nil
}
