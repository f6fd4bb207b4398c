package projections

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate brings the database's schema up to this version's, with the
// migrations embedded in the binary (pressly/goose).
func Migrate(ctx context.Context, db *pgxpool.Pool) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	sqlDB := stdlib.OpenDBFromPool(db)
	defer sqlDB.Close()
	// Processes that start together (dev's projector and a rebuild, two
	// projectors of one deployment) migrate one after the other under
	// PostgreSQL's session advisory lock: unlocked, both ran the same
	// migration and one failed with "partial migration".
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("projections: migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, sub, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("projections: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		if ctx.Err() != nil {
			// Stopped: each migration runs in its own transaction, so the
			// one under way is rolled back and the next start applies it.
			return fmt.Errorf("projections: migrating the schema: stopped (%w): %v", ctx.Err(), err)
		}
		return fmt.Errorf("projections: migrating the schema: %w", err)
	}
	return nil
}

// SchemaReady reports whether db holds this version's schema (every
// migration embedded in the binary applied, or a newer schema): nil, or
// ErrNoSchema. Readers call it before their first query, so that a read
// path started before the projector answers "not yet" rather than failing
// on a missing relation.
func SchemaReady(ctx context.Context, db *pgxpool.Pool) error {
	want, err := latestMigration()
	if err != nil {
		return err
	}
	var have int64
	var exists bool
	err = db.QueryRow(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL`).Scan(&exists)
	if err == nil && exists {
		err = db.QueryRow(ctx, `SELECT coalesce(max(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&have)
	}
	if err != nil {
		return fmt.Errorf("projections: reading the projection's schema version: %w", err)
	}
	if have < want {
		return fmt.Errorf("%w (schema version %d, this version needs %d)", ErrNoSchema, have, want)
	}
	return nil
}

// latestMigration is the version of the newest embedded migration (the
// number its file name starts with).
func latestMigration() (int64, error) {
	ents, err := migrations.ReadDir("migrations")
	if err != nil {
		return 0, err
	}
	var latest int64
	for _, e := range ents {
		n, _, _ := strings.Cut(e.Name(), "_")
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("projections: migration %s: the name does not start with its version", e.Name())
		}
		latest = max(latest, v)
	}
	return latest, nil
}

// Config configures a projector.
type Config struct {
	DB       *pgxpool.Pool         // required
	Store    ledger.SegmentStore   // the log's store; required
	Verifier *ledger.NoteVerifier  // the log's verifier key; required
	Name     string                // the cursor's name; empty means "default"
	Poll     time.Duration         // how often to look for a new segment; zero means 200ms
	Logger   *slog.Logger          // nil means slog.Default()
	Applied  func(ledger.Position) // called after each committed segment (tests, metrics)
	// VerifyEvery, if positive, makes Run verify the whole store at start
	// and then this often, recording each result (GET /v1/verify/status);
	// Retention is the lock each segment must carry then (0: none checked).
	VerifyEvery time.Duration
	Retention   time.Duration
}

func (c *Config) defaults() error {
	if c.DB == nil || c.Store == nil || c.Verifier == nil {
		return errors.New("projections: DB, Store and Verifier are required")
	}
	if c.Name == "" {
		c.Name = "default"
	}
	if c.Poll <= 0 {
		c.Poll = 200 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Run migrates the schema, then applies every sealed segment, in log
// order, as it appears in the store, until ctx ends. Each segment is read
// and checked as verify checks it, then applied in one transaction
// together with the cursor, so a crash never applies a record twice or
// skips one.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	cfg.Logger.Info("projector: bringing the schema up to date")
	if err := Migrate(ctx, cfg.DB); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while migrating, as at any other moment
		}
		return err
	}
	if cfg.VerifyEvery > 0 {
		vctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); verifyOnSchedule(vctx, cfg) }()
		defer func() { stop(); <-done }()
	}
	for ctx.Err() == nil {
		next, err := step(ctx, cfg)
		applied := next != nil
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ve *ledger.VerifyError
			if errors.As(err, &ve) {
				// The store does not check out: nothing more is applied,
				// and the operator must look.
				return fmt.Errorf("projections: the log does not verify; stopped at it: %w", err)
			}
			cfg.Logger.Warn("projector: retrying", "err", err)
		}
		if !applied {
			select {
			case <-ctx.Done():
			case <-time.After(cfg.Poll):
			}
		}
	}
	return nil
}

// Step applies the next sealed segment, if there is one.
func Step(ctx context.Context, cfg Config) (applied bool, err error) {
	if err := cfg.defaults(); err != nil {
		return false, err
	}
	next, err := step(ctx, cfg)
	return next != nil, err
}

// step applies the next sealed segment, if there is one, and returns the
// position after it.
func step(ctx context.Context, cfg Config) (*ledger.Position, error) {
	pos, err := cursor(ctx, cfg.DB, cfg.Name)
	if err != nil {
		return nil, err
	}
	f, err := ledger.Follow(ctx, cfg.Store, cfg.Verifier, pos)
	if err != nil || f == nil {
		return nil, err
	}
	// The segment's protection as the store reports it (S3: version,
	// Object Lock mode and retain-until), kept with it; tampering found
	// here stops the projector as verify would.
	var prot *ledger.Protection
	if in, ok := cfg.Store.(ledger.Inspector); ok {
		p, err := in.Inspect(ctx, f.Name)
		if err != nil {
			return nil, fmt.Errorf("projections: inspect %s: %w", f.Name, err)
		}
		if len(p.Problems) > 0 {
			return nil, &ledger.VerifyError{Object: f.Name, Index: -1, Check: "segment object tampered with in the store: " + p.Problems[0]}
		}
		prot = &p
	}
	if err := apply(ctx, cfg.DB, cfg.Name, pos, f, prot); err != nil {
		return nil, err
	}
	if cfg.Applied != nil {
		cfg.Applied(f.Next)
	}
	return &f.Next, nil
}

// Cursor is the position of the projector named name: how far it has
// applied the log (the zero position before the first segment, or before
// the schema exists).
func Cursor(ctx context.Context, db *pgxpool.Pool, name string) (ledger.Position, error) {
	if name == "" {
		name = "default"
	}
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('projection_cursor') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return ledger.Position{}, err
	}
	return cursor(ctx, db, name)
}

// cursor reads the projector's position: the zero position before the
// first segment.
func cursor(ctx context.Context, db *pgxpool.Pool, name string) (ledger.Position, error) {
	var pos ledger.Position
	var b []byte
	err := db.QueryRow(ctx, `SELECT position FROM projection_cursor WHERE name = $1`, name).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return pos, nil
	}
	if err != nil {
		return pos, fmt.Errorf("projections: reading the cursor: %w", err)
	}
	if err := pos.UnmarshalBinary(b); err != nil {
		return pos, fmt.Errorf("projections: cursor %q: %w", name, err)
	}
	return pos, nil
}

// ErrMoved means the cursor moved while a segment was being applied: another
// projector with the same name applied it. Nothing was written.
var ErrMoved = errors.New("projections: the cursor moved (another projector of the same name?)")

// apply writes one segment's rows and moves the cursor from pos to f.Next,
// in one transaction; the move succeeds only from pos.
func apply(ctx context.Context, db *pgxpool.Pool, name string, pos ledger.Position, f *ledger.Followed, prot *ledger.Protection) error {
	next, _ := f.Next.MarshalBinary()
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var tag interface{ RowsAffected() int64 }
	if pos.Size == 0 {
		tag, err = tx.Exec(ctx, `INSERT INTO projection_cursor (name, size, position) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
			name, int64(f.Next.Size), next)
	} else {
		tag, err = tx.Exec(ctx, `UPDATE projection_cursor SET size = $2, position = $3, updated_at = now() WHERE name = $1 AND size = $4`,
			name, int64(f.Next.Size), next, int64(pos.Size))
	}
	if err != nil {
		return fmt.Errorf("projections: moving the cursor: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return ErrMoved
	}
	rows := make([][]any, 0, len(f.Records))
	var matches [][]any
	for i, r := range f.Records {
		raw := f.Segment.Records[i]
		idx := f.Segment.First + uint64(i)
		rows = append(rows, eventRow(idx, f.Leaves[i], raw[:len(raw)-len(r.Event)], r, f.Events[i]))
		matches = append(matches, matchRows(idx, f.Events[i])...)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("projections: %s: writing events: %w", f.Name, err)
	}
	if len(matches) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"event_matches"}, matchColumns, pgx.CopyFromRows(matches)); err != nil {
			return fmt.Errorf("projections: %s: writing search digests: %w", f.Name, err)
		}
	}
	if _, err := tx.Exec(ctx, sessionListSQL, int64(f.Segment.First), int64(f.Segment.End())); err != nil {
		return fmt.Errorf("projections: %s: the session list: %w", f.Name, err)
	}
	first, blob, err := storedHashes(pos, f.Leaves)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO tree_hashes (first_stored, hashes) VALUES ($1, $2)`, first, blob); err != nil {
		return fmt.Errorf("projections: %s: tree hashes: %w", f.Name, err)
	}
	root := f.Checkpoint.Root
	var version, mode, until any
	if prot != nil {
		if prot.Version != "" {
			version = prot.Version
		}
		if prot.Mode != "" {
			mode = prot.Mode
		}
		if !prot.RetainUntil.IsZero() {
			until = prot.RetainUntil
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO segments (first, size, name, sha256, root, checkpoint, version, lock_mode, retain_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		int64(f.Segment.First), int64(f.Segment.End()), f.Name, f.SHA256[:], root[:], string(f.Checkpoint.Signed), version, mode, until); err != nil {
		return fmt.Errorf("projections: %s: %w", f.Name, err)
	}
	return tx.Commit(ctx)
}

// sessionListSQL adds the events of [$1, $2), just written, to their
// sessions' rows of session_list: what the sessions view computed from
// all of a session's events, summed segment by segment. A sequence number
// counts as new only when no earlier event of the session holds it (an
// index probe of events_session per event of a session).
const sessionListSQL = `INSERT INTO session_list AS s (tenant, session_id, started, last_seen, events, seqs, last_seq, actor_subject, target_name)
SELECT tenant, session_id, min(time), max(time), count(*),
       count(DISTINCT session_seq) FILTER (WHERE NOT EXISTS (SELECT 1 FROM events o
           WHERE o.tenant = e.tenant AND o.session_id = e.session_id AND o.session_seq = e.session_seq AND o.idx < $1)),
       max(session_seq), min(actor_subject), min(target_name)
FROM events e WHERE idx >= $1 AND idx < $2 AND session_id IS NOT NULL
GROUP BY tenant, session_id
ON CONFLICT (tenant, session_id) DO UPDATE SET
    started = least(s.started, excluded.started), last_seen = greatest(s.last_seen, excluded.last_seen),
    events = s.events + excluded.events, seqs = s.seqs + excluded.seqs, last_seq = greatest(s.last_seq, excluded.last_seq),
    actor_subject = least(s.actor_subject, excluded.actor_subject), target_name = least(s.target_name, excluded.target_name)`

var eventColumns = []string{"idx", "leaf", "header", "sealed_at", "source", "id", "type", "time", "tenant", "source_kind", "source_instance",
	"actor_issuer", "actor_subject", "actor_email", "actor_kind", "dev_identity", "session_id", "session_seq", "target_kind", "target_name",
	"payload", "event"}

// eventRow is one record as a row of events.
func eventRow(idx uint64, leaf ledger.Hash, header []byte, r ledger.Record, ev *events.Event) []any {
	var payload any = json.RawMessage(ev.Payload)
	if bytes.Contains(ev.Payload, []byte(`\u0000`)) {
		payload = nil // jsonb cannot hold it; the event column keeps it
	}
	var sessionID, email, targetKind, targetName any
	var sessionSeq any
	if ev.SessionID != "" {
		sessionID, sessionSeq = ev.SessionID, int64(ev.SessionSeq)
	}
	if ev.Actor.Email != "" {
		email = ev.Actor.Email
	}
	if ev.Target != nil {
		targetKind = ev.Target.Kind
		if ev.Target.Name != "" {
			targetName = ev.Target.Name
		}
	}
	return []any{int64(idx), leaf[:], header, r.Time, int64(r.Source), ev.ID, string(ev.Type), ev.Time, ev.Tenant, ev.Source.Kind, ev.Source.Instance,
		ev.Actor.Issuer, ev.Actor.Subject, email, string(ev.Actor.Kind), ev.Actor.DevIdentity, sessionID, sessionSeq, targetKind, targetName,
		payload, string(r.Event)}
}

var matchColumns = []string{"tenant", "digest", "idx", "path", "detector"}

// matchRows are the keyed search digests an event recorded (its payload's
// "redacted" entries' "matches", docs/FORMAT.md §1.5), one row per digest
// and place. A payload without them, or whose member has another shape
// (the payload is open: any producer may write one), gives none: the
// event is projected all the same and found by the other filters.
func matchRows(idx uint64, ev *events.Event) [][]any {
	if !bytes.Contains(ev.Payload, []byte(`"matches"`)) {
		return nil
	}
	var p struct {
		Redacted []struct {
			Path     string   `json:"path"`
			Detector string   `json:"detector"`
			Matches  []string `json:"matches"`
		} `json:"redacted"`
	}
	if json.Unmarshal(ev.Payload, &p) != nil {
		return nil
	}
	var out [][]any
	seen := map[[3]string]bool{}
	for _, r := range p.Redacted {
		for _, d := range r.Matches {
			k := [3]string{r.Path, r.Detector, d}
			if !IsMatchDigest(d) || seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, []any{ev.Tenant, d, int64(idx), r.Path, r.Detector})
		}
	}
	return out
}

// IsMatchDigest reports whether d has the form of a keyed search digest:
// "hmac:" and 64 lower-case hex digits.
func IsMatchDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "hmac:")
	if !ok || len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Rebuild empties the projection and applies the whole log again from the
// store alone (no NATS), checking every segment as it reads it; progress,
// if set, is called after each segment with the records applied and the
// log's size when the rebuild began.
func Rebuild(ctx context.Context, cfg Config, progress func(done, total uint64)) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	if err := Migrate(ctx, cfg.DB); err != nil {
		return err
	}
	total, err := latestSize(ctx, cfg.Store)
	if err != nil {
		return err
	}
	tx, err := cfg.DB.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `TRUNCATE events, event_matches, segments, tree_hashes, session_list`); err != nil {
		return fmt.Errorf("projections: emptying the tables: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM projection_cursor WHERE name = $1`, cfg.Name); err != nil {
		return fmt.Errorf("projections: resetting the cursor: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	for {
		next, err := step(ctx, cfg)
		if err != nil {
			return err
		}
		if next == nil {
			// Fresh statistics, so the first queries after a rebuild are
			// planned for the table as it is (autovacuum would take a while).
			if _, err := cfg.DB.Exec(ctx, `ANALYZE events, event_matches, segments, tree_hashes, session_list`); err != nil {
				return fmt.Errorf("projections: analyze: %w", err)
			}
			return nil
		}
		if progress != nil {
			progress(next.Size, max(total, next.Size))
		}
	}
}

// latestSize is the size of the newest checkpoint in the store.
func latestSize(ctx context.Context, store ledger.SegmentStore) (uint64, error) {
	names, err := store.List(ctx, ledger.CheckpointPrefix)
	if err != nil {
		return 0, err
	}
	var size uint64
	for _, n := range names {
		var s uint64
		if _, err := fmt.Sscanf(n, ledger.CheckpointPrefix+"%d", &s); err == nil && s > size {
			size = s
		}
	}
	return size, nil
}
