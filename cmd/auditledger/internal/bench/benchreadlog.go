package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// readLog generates the read benchmark's log as gateways record it: the
// sessions of four tenants of unequal size, interleaved (readOpen
// sessions at a time, each event from one of them at random), most of a
// few statements, some of hundreds, and some of 1,000 and more; each
// session is one actor's on one target, its events numbered from 1,
// commands and their result digests alternating. The same seed gives the
// same log.
type readLog struct {
	rng      *rand.Rand
	open     []*readSession
	sessions []*readSession // every session started, in order
	tenantOf []uint8        // each event's tenant, by index into readTenants
	n        int            // events generated
}

// readSession is one session of the log; seq of size generated so far.
type readSession struct {
	tenant, id, actor, target string
	t                         uint8 // the tenant, by index into readTenants
	size, seq                 int
}

const readOpen = 32

// readTenants are the tenants and their shares of the sessions; the
// benchmark's auditor reads the first two.
var readTenants = []struct {
	name  string
	share float64
}{{"acme", 0.6}, {"globex", 0.25}, {"initech", 0.1}, {"umbrella", 0.05}}

var readTargets = []string{"orders", "billing", "users", "inventory", "payments", "audit"}

func newReadLog() *readLog {
	return &readLog{rng: rand.New(rand.NewPCG(1, 2))}
}

// start opens the next session: one in 250 of exactly 1,000 events, one
// in 250 of 1,000 to 5,000; of the others, 80% of 1 to 20 events, 17% of
// 20 to 300, 3% of 300 to 1,000.
func (g *readLog) start() *readSession {
	k := len(g.sessions)
	s := &readSession{id: fmt.Sprintf("s%07d", k)}
	r := g.rng.Float64()
	for i, t := range readTenants {
		if s.tenant, s.t = t.name, uint8(i); r < t.share {
			break
		}
		r -= t.share
	}
	// A few actors open most sessions.
	s.actor = fmt.Sprintf("u%d", g.rng.IntN(g.rng.IntN(50)+1))
	s.target = readTargets[g.rng.IntN(len(readTargets))]
	switch r := g.rng.Float64(); {
	case k%250 == 7:
		s.size = 1000
	case k%250 == 132:
		s.size = 1000 + g.rng.IntN(4001)
	case r < 0.8:
		s.size = 1 + g.rng.IntN(20)
	case r < 0.97:
		s.size = 20 + g.rng.IntN(281)
	default:
		s.size = 300 + g.rng.IntN(701)
	}
	g.sessions = append(g.sessions, s)
	return s
}

// next is the log's next event.
func (g *readLog) next() []byte {
	for len(g.open) < readOpen {
		g.open = append(g.open, g.start())
	}
	j := g.rng.IntN(len(g.open))
	s := g.open[j]
	s.seq++
	if s.seq == s.size {
		g.open[j] = g.start()
	}
	i := g.n
	g.n++
	g.tenantOf = append(g.tenantOf, s.t)
	t := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)
	if s.seq%2 == 0 {
		return fmt.Appendf(nil, `{"version":1,"id":"ev-%d","type":"response.digest","time":"%s","tenant":"%s","source":{"kind":"postgres-proxy","instance":"p%d"},"actor":{"issuer":"https://idp.example","subject":"%s","kind":"human"},"session_id":"%s","session_seq":%d,"target":{"kind":"postgres","name":"%s"},"payload":{"command_id":"%s-%d","rows":%d,"bytes":%d,"hmac":"hmac:%064x"}}`,
			i, t, s.tenant, len(s.id)%3, s.actor, s.id, s.seq, s.target, s.id, s.seq-1, i%97, 40+i%4000, i)
	}
	return fmt.Appendf(nil, `{"version":1,"id":"%s-%d","type":"command.executed","time":"%s","tenant":"%s","source":{"kind":"postgres-proxy","instance":"p%d"},"actor":{"issuer":"https://idp.example","subject":"%s","email":"`+sealedEmail+`","kind":"human"},"session_id":"%s","session_seq":%d,"target":{"kind":"postgres","name":"%s"},"payload":{"statement":"SELECT id, customer_id, total, status FROM %s WHERE id = %d ORDER BY created_at DESC LIMIT %d","statement_sha256":"%064x","kind":"SELECT","protocol":"simple"}}`,
		s.id, s.seq, t, s.tenant, len(s.id)%3, s.actor, s.id, s.seq, s.target, s.target, i, 1+i%50, i)
}

// index is a random ledger index of an event of the first two tenants
// (the auditor's), among the first n.
func (g *readLog) index(n uint64) uint64 {
	for {
		if i := rand.Uint64N(n); g.tenantOf[i] < 2 {
			return i
		}
	}
}

// ids are the session ids of tenant, sorted, as the session list pages
// them.
func (g *readLog) ids(tenant string) []string {
	var out []string
	for _, s := range g.sessions {
		if s.tenant == tenant && s.seq > 0 {
			out = append(out, s.id)
		}
	}
	slices.Sort(out)
	return out
}

// timelines are the complete sessions of tenant holding exactly size
// events; when there is none (a small log), the largest session of
// tenant, whole or not.
func (g *readLog) timelines(tenant string, size int) []*readSession {
	var out []*readSession
	var largest *readSession
	for _, s := range g.sessions {
		if s.tenant != tenant {
			continue
		}
		if s.seq == size && s.size == size {
			out = append(out, s)
		}
		if largest == nil || s.seq > largest.seq {
			largest = s
		}
	}
	if len(out) == 0 && largest != nil {
		out = append(out, largest)
	}
	return out
}

// stats are the log's sessions, those of 1,000 events or more, and the
// largest.
func (g *readLog) stats() (sessions, long, largest int) {
	for _, s := range g.sessions {
		if s.seq == 0 {
			continue
		}
		sessions++
		if s.seq >= 1000 {
			long++
		}
		largest = max(largest, s.seq)
	}
	return
}
