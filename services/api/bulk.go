package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/auditledger/auditledger/ledger/bulk"
	"github.com/auditledger/auditledger/ledger/piikeys"
	"github.com/auditledger/auditledger/services/gateway"
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
// pieces of the session (in stream order) with their objects as a tool
// read them from a store. A piece marked Context is opened only to read
// the pieces beside it (a value across their edge), and not returned.
type PiecesRequest struct {
	Pieces []PieceObject `json:"pieces"`
}

// PieceObject is one piece, as its event names it (its stream, offset,
// bytes and bulk member; the event's id to name it by), the terminal's
// size when it was recorded (0: not known), and its object.
type PieceObject struct {
	Stream string `json:"stream"`
	Offset int64  `json:"offset"`
	Bytes  int    `json:"bytes"`
	Event  string `json:"event,omitempty"`
	bulk.Ref
	Rows int `json:"rows,omitempty"`
	Cols int `json:"cols,omitempty"`
	// Cut: the piece's last bytes a value found in the text chunk after
	// it began with (that chunk's bulk_before, docs/FORMAT.md §1.7).
	Cut     int    `json:"cut,omitempty"`
	Content []byte `json:"content"`
	Context bool   `json:"context,omitempty"`
}

// PiecesResult is the answer: for each piece of the request, what it
// plays as (sshproxy.PlayPieces): its bytes with what the detectors
// find replaced, or a placeholder; nothing for a context piece.
type PiecesResult struct {
	Data [][]byte `json:"data"`
}

// MaxPieces is the most pieces one request opens.
const MaxPieces = 16

// openPieces answers POST /v1/sessions/{id}/pieces?tenant=T, for the
// auditor and security roles within their tenants: the caller sends the
// objects (it read them from the store), the API checks each against its
// name and size, opens it under its subject's key at its place (the
// tenant and session of the request: a piece opens nowhere else), and
// returns it as the cast plays it. Recorded as audit.accessed (resource
// "session pieces") before the answer; a tenant outside the caller's
// scope is refused and recorded.
func (a *api) openPieces(w http.ResponseWriter, r *http.Request) {
	tenant, id, ok := a.sessionParams(w, r)
	if !ok {
		return
	}
	var req PiecesRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxPieces*(4*(512<<10+64)/3+1024)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		a.fail(w, r, fmt.Errorf("%w: body: %v (want {\"pieces\": [{\"stream\", \"offset\", \"bytes\", \"object\", \"pseudonym\", \"size\", \"content\"}]}, at most %d)", errBadRequest, err, MaxPieces))
		return
	}
	if len(req.Pieces) == 0 || len(req.Pieces) > MaxPieces {
		a.fail(w, r, badParam("pieces", "%d pieces: want 1 to %d", len(req.Pieces), MaxPieces))
		return
	}
	pieces := make([]sshproxy.Piece, len(req.Pieces))
	for i, p := range req.Pieces {
		if !objectName(p.Object) || !pseudonymName(p.Pseudonym) || p.Stream == "" {
			a.fail(w, r, badParam("pieces", "piece %d: want stream, object (64 lower-case hex digits) and pseudonym (32)", i))
			return
		}
		if p.Cut < 0 || p.Cut > p.Bytes || p.Cut > gateway.MaxHeld {
			a.fail(w, r, badParam("pieces", "piece %d: cut %d: want 0 to its bytes, at most %d", i, p.Cut, gateway.MaxHeld))
			return
		}
		// The place is the request's tenant and session: a piece opens
		// only there.
		pieces[i] = sshproxy.Piece{Piece: bulk.Piece{BulkPlace: piikeys.BulkPlace{Tenant: tenant, Session: id, Stream: p.Stream, Offset: p.Offset},
			Ref: p.Ref, Bytes: p.Bytes, Event: p.Event}, Rows: p.Rows, Cols: p.Cols, Cut: p.Cut}
	}
	var o opened
	played, err := sshproxy.PlayPieces(r.Context(), pieces, func(ctx context.Context, i int, p sshproxy.Piece) ([]byte, error) {
		b, err := bulk.OpenObject(ctx, a.cfg.Keys, p.Piece, req.Pieces[i].Content)
		if err == nil {
			o.add(p)
		}
		return b, pieceError(err)
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.accessed(r, tenant, o.note(map[string]any{"resource": "session pieces", "session_id": id, "count": len(pieces)})); err != nil {
		a.fail(w, r, err)
		return
	}
	res := PiecesResult{Data: make([][]byte, len(played))}
	for i := range played {
		if !req.Pieces[i].Context {
			res.Data[i] = played[i]
		}
	}
	writeJSON(w, http.StatusOK, res)
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
