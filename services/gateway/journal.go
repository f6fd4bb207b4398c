package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/dirlock"
	"github.com/auditledger/auditledger/services/internal/policyfile"
)

// The journal of open sessions: one file per session under
// <StateDir>/sessions, named <session id>.session, created (and fsynced)
// before session.started is recorded and removed once session.ended is.
// Its first line is the last session_seq the session used, as 20 decimal
// digits, rewritten in place at each event without fsync: a process crash
// keeps it (the page cache survives), and what only a power loss could
// lose shows as a gap before the lost end. The rest is the session as
// JSON (journalEntry). A file left behind is a session the gateway never
// ended: Start records its session.ended, reason "lost", with the next
// sequence number, and removes the file.

const seqWidth = 20

// journalEntry is what recovery needs to end a session for it.
type journalEntry struct {
	f       *os.File
	last    uint64
	ID      string          `json:"id"`
	Tenant  string          `json:"tenant"`
	Source  events.Source   `json:"source"`
	Actor   events.Actor    `json:"actor"`
	Target  events.Target   `json:"target"`
	Started time.Time       `json:"started"`
	Policy  *policyfile.Ref `json:"policy,omitempty"`
}

type journal struct {
	dir    string
	unlock func() // gives up the lock on <StateDir>/sessions.lock; nil once given up
}

// openJournal opens the journal under stateDir and takes its exclusive
// lock for as long as the gateway lives: a second gateway on the same
// directory would take the first one's live sessions for lost ones and
// record their end. The kernel drops the lock when the process dies, so a
// crash leaves nothing stale.
func openJournal(stateDir string) (*journal, error) {
	dir := filepath.Join(stateDir, "sessions")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("session journal: %w", err)
	}
	release, err := dirlock.Lock(filepath.Join(stateDir, "sessions.lock"))
	var inUse *dirlock.InUseError
	switch {
	case errors.As(err, &inUse):
		return nil, fmt.Errorf("%w: %s is in use by another gateway (pid %d): give each gateway a state directory of its own",
			ErrStateDirInUse, stateDir, inUse.PID)
	case err != nil:
		return nil, fmt.Errorf("session journal: %w", err)
	}
	return &journal{dir: dir, unlock: release}, nil
}

// ErrStateDirInUse: another gateway holds the state directory's journal.
var ErrStateDirInUse = errors.New("state directory in use")

func (j *journal) path(id string) string { return filepath.Join(j.dir, id+".session") }

// journalOpen puts the session in the journal, with its actor as its
// events carry it (the e-mail sealed or left out).
func (s *Session) journalOpen(actor events.Actor) error {
	j := s.g.journal
	if j == nil {
		return nil
	}
	e := &journalEntry{ID: s.id, Tenant: s.tenant, Source: s.g.source, Actor: actor, Target: s.scrubbedTarget(), Started: s.started.UTC()}
	if p := s.g.cfg.Policy; p != nil {
		ref := p.Source.Ref()
		e.Policy = &ref
	}
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(j.path(s.id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("session journal: %w", err)
	}
	e.f = f
	e.last = s.seq.Load()
	if _, err := fmt.Fprintf(f, "%0*d\n%s\n", seqWidth, e.last, body); err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("session journal: %w", err)
	}
	s.jmu.Lock()
	s.journal = e
	s.jmu.Unlock()
	return nil
}

// noteSeq keeps the journal's last sequence number up to date.
func (s *Session) noteSeq(seq uint64) {
	if s.g.journal == nil {
		return
	}
	s.jmu.Lock()
	defer s.jmu.Unlock()
	e := s.journal
	if e == nil || seq <= e.last {
		return
	}
	e.last = seq
	if _, err := e.f.WriteAt(fmt.Appendf(nil, "%0*d", seqWidth, seq), 0); err != nil {
		s.g.cfg.Logger.Error("session journal not updated", "session_id", s.id, "err", err)
	}
}

// journalClose takes the session out of the journal.
func (s *Session) journalClose() {
	s.jmu.Lock()
	e := s.journal
	s.journal = nil
	s.jmu.Unlock()
	if e == nil {
		return
	}
	e.f.Close()
	if err := os.Remove(e.f.Name()); err != nil {
		s.g.cfg.Logger.Error("session journal entry not removed", "session_id", s.id, "err", err)
	}
}

// ErrJournal: a journal file cannot be read as a session.
var ErrJournal = errors.New("unreadable session journal entry")

// readEntry reads one journal file.
func readEntry(path string) (*journalEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	head, body, ok := strings.Cut(string(b), "\n")
	last, err := strconv.ParseUint(head, 10, 64)
	if !ok || len(head) != seqWidth || err != nil {
		return nil, fmt.Errorf("%w %s: first line %q is not the last sequence number", ErrJournal, path, head)
	}
	var e journalEntry
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrJournal, path, err)
	}
	if e.ID+".session" != filepath.Base(path) {
		return nil, fmt.Errorf("%w %s: names session %q", ErrJournal, path, e.ID)
	}
	e.last = last
	return &e, nil
}

// recoverLost records session.ended, reason "lost", for every session
// left in the journal, and removes each once stored. The event's id is
// derived from the session (<id>.<seq>), so a recovery interrupted and
// run again records it once.
func (g *Gateway) recoverLost(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(g.journal.dir, "*.session"))
	if err != nil {
		return err
	}
	for _, path := range files {
		e, err := readEntry(path)
		if err != nil {
			return fmt.Errorf("%s: %w", g.cfg.Name, err)
		}
		payload := map[string]any{"reason": "lost", "last_seq": e.last, "started_at": e.Started,
			"detail": "the gateway stopped without ending the session; recorded when it started again"}
		if e.Policy != nil {
			payload["policy"] = *e.Policy
		}
		body, err := encodePayload(payload, nil)
		if err != nil {
			return err
		}
		target := e.Target
		ev := &events.Event{Version: events.Version, Type: events.SessionEnded, Time: time.Now().UTC(), Tenant: e.Tenant,
			Source: e.Source, Actor: e.Actor, Target: &target, Payload: body,
			SessionID: e.ID, SessionSeq: e.last + 1}
		ev.ID = fmt.Sprintf("%s.%d", e.ID, ev.SessionSeq)
		if err := g.emit(ctx, ev); err != nil {
			return fmt.Errorf("%s: the end of lost session %s: %w: %w", g.cfg.Name, e.ID, ErrNotRecorded, err)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("%s: session journal: %w", g.cfg.Name, err)
		}
		g.cfg.Logger.Warn("session recorded as ended, lost", "session_id", e.ID, "event_id", ev.ID)
	}
	return nil
}
