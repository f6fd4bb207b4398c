package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"

	"github.com/auditledger/auditledger/ledger/bulk"
	"github.com/auditledger/auditledger/projections"
	"github.com/auditledger/auditledger/services/sshproxy"
)

// Bulk pieces (docs/FORMAT.md §1.7): the cast of a session plays them
// opened, with what the detectors find replaced; tools that read the
// pieces from a store themselves (auditledger replay, export cast) have
// them opened here, where the key store is. Every opening is a recorded
// read (audit.accessed naming the pseudonyms whose keys opened them).

// errPiece: a piece that cannot be read (missing, damaged), which fails
// the read rather than play as nothing.
var errPiece = errors.New("bulk piece not played")

// pieceError names why a piece failed, as a status: a damaged piece
// or one gone from every place it is looked for is a conflict between
// the log and what it names, not a server fault.
func pieceError(err error) error {
	if errors.Is(err, bulk.ErrMissing) || errors.Is(err, bulk.ErrDamaged) {
		return fmt.Errorf("%w: %w", errPiece, err)
	}
	return err
}

// pieceReader reads the pieces from the store, else AUDIT_BULK.
func (a *api) pieceReader() *bulk.Reader {
	return &bulk.Reader{Store: a.cfg.BulkStore, Bus: a.cfg.Bus, Keys: a.cfg.Keys}
}

// opened counts the pieces one read opened, by the pseudonyms whose
// keys opened them, for its audit.accessed.
type opened struct {
	mu         sync.Mutex
	pieces     int
	pseudonyms []string
}

func (o *opened) add(p sshproxy.Piece) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pieces++
	if !slices.Contains(o.pseudonyms, p.Pseudonym) {
		o.pseudonyms = append(o.pseudonyms, p.Pseudonym)
	}
}

// note adds what was opened to an audit.accessed payload.
func (o *opened) note(payload map[string]any) map[string]any {
	if o.pieces > 0 {
		payload["pieces"] = o.pieces
		payload["pseudonyms"] = o.pseudonyms
	}
	return payload
}

// castOpener opens a cast's pieces with the API's reader, counting them
// in o.
func (a *api) castOpener(o *opened) sshproxy.Opener {
	rd := a.pieceReader()
	return func(ctx context.Context, pieces []sshproxy.Piece) ([][]byte, error) {
		return sshproxy.PlayPieces(ctx, pieces, func(ctx context.Context, _ int, p sshproxy.Piece) ([]byte, error) {
			b, err := rd.Open(ctx, p.Piece)
			if errors.Is(err, bulk.ErrMissing) && a.cfg.BulkStore == nil {
				err = fmt.Errorf("%w (this API reads pieces from %s only: give it the store, api.bulk_store, to read those the writer stored)", err, "AUDIT_BULK")
			}
			if err == nil {
				o.add(p)
			}
			return b, pieceError(err)
		})
	}
}

// PiecesRequest is the body of POST /v1/sessions/{id}/pieces?tenant=T:
// pieces of the session, each as its event names it, with its object as
// a tool read it from a store (optional: without it the API reads it).
// Which pieces are beside each, the terminal's size and the part of a
// piece a text chunk's placeholder stands for come from the session's
// events as the projection holds them, never from the request.
type PiecesRequest struct {
	Pieces []PieceObject `json:"pieces"`
}

// PieceObject is one piece, as its event names it (its stream, offset,
// bytes and bulk member), and its object (Content, optional), which is
// checked against the name.
type PieceObject struct {
	Stream string `json:"stream"`
	Offset int64  `json:"offset"`
	Bytes  int    `json:"bytes"`
	bulk.Ref
	Content []byte `json:"content,omitempty"`
}

// PiecesResult is the answer: for each piece of the request, what it
// plays as in the session's cast (sshproxy.PlayPieces): its bytes with
// what the detectors find replaced, or a placeholder.
type PiecesResult struct {
	Data [][]byte `json:"data"`
}

// MaxPieces is the most pieces one request asks for.
const MaxPieces = 16

// openPieces answers POST /v1/sessions/{id}/pieces?tenant=T, for the
// auditor and security roles within their tenants: each piece asked for
// plays exactly as the session's cast plays it. The API finds its event
// among the session's events in the projection (by the object's name,
// the stream, offset, bytes, pseudonym and size matching), and takes
// from those events what the cast takes: the pieces beside it in its
// stream (read from its store, else AUDIT_BULK), the terminal's size
// and the bulk_before of the text chunk after it. A piece whose event
// the projection does not hold, or whose neighbours it does not hold
// while the session goes on, is a conflict (409, naming it): it is
// never played with less around it than the cast would. Each object is
// checked against its name and opened under its subject's key at its
// place. Recorded as audit.accessed (resource "session pieces", the
// pieces opened, neighbours included) before the answer; a tenant
// outside the caller's scope is refused and recorded.
func (a *api) openPieces(w http.ResponseWriter, r *http.Request) {
	tenant, id, ok := a.sessionParams(w, r)
	if !ok {
		return
	}
	var req PiecesRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxPieces*(4*(512<<10+64)/3+1024)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		a.fail(w, r, fmt.Errorf("%w: body: %v (want {\"pieces\": [{\"stream\", \"offset\", \"bytes\", \"object\", \"pseudonym\", \"size\", \"content\" (optional)}]}, at most %d)", errBadRequest, err, MaxPieces))
		return
	}
	if len(req.Pieces) == 0 || len(req.Pieces) > MaxPieces {
		a.fail(w, r, badParam("pieces", "%d pieces: want 1 to %d", len(req.Pieces), MaxPieces))
		return
	}
	for i, p := range req.Pieces {
		if !objectName(p.Object) || !pseudonymName(p.Pseudonym) || p.Stream == "" {
			a.fail(w, r, badParam("pieces", "piece %d: want stream, object (64 lower-case hex digits) and pseudonym (32)", i))
			return
		}
	}
	sp, err := a.sessionPieces(r.Context(), tenant, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// Each piece asked for, found among the session's by its name; the
	// pieces beside it in its stream (PlaySome reads only those that
	// join it); and the objects the request brought.
	byName := map[string][]int{}
	prev, next := make([]int, len(sp.Pieces)), make([]int, len(sp.Pieces))
	last := map[string]int{}
	for i, p := range sp.Pieces {
		byName[p.Object] = append(byName[p.Object], i)
		prev[i], next[i] = -1, -1
		if j, ok := last[p.Stream]; ok {
			prev[i], next[j] = j, i
		}
		last[p.Stream] = i
	}
	at := make([]int, len(req.Pieces))
	use := map[int]bool{}
	want := map[int]bool{}
	content := map[int][]byte{}
	for k, q := range req.Pieces {
		at[k] = -1
		for _, i := range byName[q.Object] {
			if p := sp.Pieces[i]; p.Stream == q.Stream && p.Offset == q.Offset && p.Bytes == q.Bytes && p.Ref == q.Ref {
				at[k] = i
			}
		}
		if at[k] < 0 {
			a.fail(w, r, fmt.Errorf("%w: piece %d: no session.output of session %q in tenant %q that the projection holds names bulk piece %s as %s at offset %d of %d bytes, pseudonym %s and size %d (not projected yet, or not this session's: GET /v1/sessions/{id}/cast plays what is projected)",
				projections.ErrNotProjected, k, id, tenant, q.Object, q.Stream, q.Offset, q.Bytes, q.Pseudonym, q.Size))
			return
		}
		i := at[k]
		if sp.Loose[i] && !sp.Ended {
			a.fail(w, r, fmt.Errorf("%w: %s: the projection holds no chunk of %s before or after it, and no session.ended: what joins it is not projected yet (or not recorded yet: the session goes on); ask again once it is",
				projections.ErrNotProjected, sp.Pieces[i].Piece, sp.Pieces[i].Stream))
			return
		}
		want[i], use[i] = true, true
		if q.Content != nil {
			content[i] = q.Content
		}
		for _, j := range []int{prev[i], next[i]} {
			if j >= 0 {
				use[j] = true
			}
		}
	}
	idx := slices.Sorted(maps.Keys(use))
	pieces := make([]sshproxy.Piece, len(idx))
	wanted := make([]bool, len(idx))
	for n, i := range idx {
		pieces[n], wanted[n] = sp.Pieces[i], want[i]
	}
	var o opened
	rd := a.pieceReader()
	played, err := sshproxy.PlaySome(r.Context(), pieces, wanted, func(ctx context.Context, n int, p sshproxy.Piece) ([]byte, error) {
		var b []byte
		var err error
		if c, ok := content[idx[n]]; ok {
			b, err = bulk.OpenObject(ctx, a.cfg.Keys, p.Piece, c)
		} else {
			b, err = rd.Open(ctx, p.Piece)
			if errors.Is(err, bulk.ErrMissing) && a.cfg.BulkStore == nil {
				err = fmt.Errorf("%w (this API reads pieces from %s only: give it the store, api.bulk_store, to read those the writer stored)", err, "AUDIT_BULK")
			}
		}
		if err == nil {
			o.add(p)
		}
		return b, pieceError(err)
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.accessed(r, tenant, o.note(map[string]any{"resource": "session pieces", "session_id": id, "count": len(req.Pieces)})); err != nil {
		a.fail(w, r, err)
		return
	}
	res := PiecesResult{Data: make([][]byte, len(req.Pieces))}
	for k, i := range at {
		res.Data[k] = played[slices.Index(idx, i)]
	}
	writeJSON(w, http.StatusOK, res)
}

// sessionPieces reads the session's events from the projection and
// returns its pieces as they record them: a session the projection does
// not hold (yet) is a conflict naming that.
func (a *api) sessionPieces(ctx context.Context, tenant, id string) (*sshproxy.SessionPieces, error) {
	res, err := a.read.Timeline(ctx, tenant, id)
	if errors.Is(err, projections.ErrNotFound) {
		return nil, fmt.Errorf("%w: the projection holds no event of session %q in tenant %q (not projected yet, or none): its pieces are played only beside what its events record", projections.ErrNotProjected, id, tenant)
	}
	if err != nil {
		return nil, err
	}
	evs, err := timelineEvents(id, res)
	if err != nil {
		return nil, err
	}
	sp, err := sshproxy.PiecesOf(evs, id)
	if errors.Is(err, sshproxy.ErrNoSession) {
		return nil, fmt.Errorf("%w: the projection holds no session.started of session %q in tenant %q (not projected yet)", projections.ErrNotProjected, id, tenant)
	}
	return sp, err
}

func objectName(s string) bool    { return len(s) == 64 && lowerHex(s) }
func pseudonymName(s string) bool { return len(s) == 32 && lowerHex(s) }

func lowerHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
