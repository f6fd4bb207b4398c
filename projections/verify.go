package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditledger/auditledger/ledger"
)

// Verification is one full verification of the store.
type Verification struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	OK       bool      `json:"ok"`
	Size     uint64    `json:"size"`
	Root     string    `json:"root,omitempty"` // base64, as in checkpoints
	Gaps     int       `json:"gaps"`
	Error    string    `json:"error,omitempty"`
}

// VerifyNow verifies the whole store as `auditledger verify` does (every
// record, chain, root, checkpoint signature, event, and with a retention
// the locks), up to its newest checkpoint when it begins, and records the
// result in verifications; gaps are found
// and make the result not OK. It returns the verification's own error.
func VerifyNow(ctx context.Context, cfg Config) (Verification, error) {
	if err := cfg.defaults(); err != nil {
		return Verification{}, err
	}
	v := Verification{Started: time.Now().UTC()}
	// The writer may be sealing while this runs: the log is verified up
	// to the newest checkpoint there is when it begins, not into a
	// segment stored a moment before its checkpoint (which read as a
	// store that does not verify). What is sealed meanwhile is verified
	// the next time.
	upTo, err := ledger.NewestCheckpointSize(ctx, cfg.Store)
	var rep *ledger.Report
	if err == nil {
		rep, err = ledger.Verify(ctx, cfg.Store, ledger.VerifyOptions{Verifier: cfg.Verifier, Retention: cfg.Retention, UpTo: upTo})
	}
	v.Finished = time.Now().UTC()
	if ctx.Err() != nil {
		// Stopped, not failed: a verification cut short says nothing
		// about the store, so none is recorded.
		return v, context.Cause(ctx)
	}
	var gaps *ledger.GapsError
	switch {
	case errors.As(err, &gaps):
		v.Gaps = len(gaps.Gaps)
		v.Error = err.Error()
	case errors.Is(err, ledger.ErrNotExist) && rep == nil && nothingApplied(ctx, cfg):
		err = nil // an empty store and nothing projected from it: nothing sealed yet
	case err != nil:
		v.Error = err.Error()
	}
	if rep != nil {
		v.Size, v.Root = rep.Size, rep.Root.Base64()
	}
	v.OK = err == nil
	var root []byte
	if rep != nil {
		root = rep.Root[:]
	}
	if _, dberr := cfg.DB.Exec(ctx, `INSERT INTO verifications (started, finished, ok, size, root, gaps, error) VALUES ($1, $2, $3, $4, $5, $6, nullif($7, ''))`,
		v.Started, v.Finished, v.OK, int64(v.Size), root, v.Gaps, v.Error); dberr != nil {
		return v, fmt.Errorf("projections: recording the verification: %w", dberr)
	}
	return v, nil
}

// nothingApplied reports whether the projector has applied no record:
// then an empty store is a log not yet begun, not one that vanished.
func nothingApplied(ctx context.Context, cfg Config) bool {
	pos, err := Cursor(ctx, cfg.DB, cfg.Name)
	return err == nil && pos.Size == 0
}

// LatestVerification is the newest recorded verification, if any.
func LatestVerification(ctx context.Context, db *pgxpool.Pool) (*Verification, error) {
	var v Verification
	var size int64
	var root []byte
	var msg *string
	err := db.QueryRow(ctx, `SELECT started, finished, ok, size, root, gaps, error FROM verifications ORDER BY id DESC LIMIT 1`).
		Scan(&v.Started, &v.Finished, &v.OK, &size, &root, &v.Gaps, &msg)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v.Size = uint64(size)
	if len(root) == ledger.HashSize {
		v.Root = ledger.Hash(root).Base64()
	}
	if msg != nil {
		v.Error = *msg
	}
	v.Started, v.Finished = v.Started.UTC(), v.Finished.UTC()
	return &v, nil
}

// verifyOnSchedule runs VerifyNow at once and then every cfg.VerifyEvery,
// until ctx ends; a failure is logged, and recorded for the API.
func verifyOnSchedule(ctx context.Context, cfg Config) {
	for {
		v, err := VerifyNow(ctx, cfg)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			cfg.Logger.Error("projector: verification not recorded", "err", err)
		case !v.OK:
			cfg.Logger.Error("projector: the store does not verify", "size", v.Size, "err", v.Error)
		default:
			cfg.Logger.Info("projector: the store verifies", "size", v.Size, "took", v.Finished.Sub(v.Started))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(cfg.VerifyEvery):
		}
	}
}
