package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/bulk"
	"github.com/auditledger/auditledger/ledger/storeurl"
	"github.com/auditledger/auditledger/services/api"
	"github.com/auditledger/auditledger/services/sshproxy"
)

// sessionCast reads one session's sealed events from a store and
// rebuilds its terminal, its bulk pieces opened through the API when
// af is set (else each plays as sealed).
func sessionCast(ctx context.Context, storeURL, session string, af *apiFlags) (*sshproxy.Cast, error) {
	store, err := storeurl.OpenExisting(ctx, storeURL)
	if err != nil {
		return nil, err
	}
	var evs []*events.Event
	err = ledger.ReadRange(ctx, store.Store, 0, ^uint64(0), func(_ uint64, _ []byte, r ledger.Record) error {
		var ev events.Event
		if err := json.Unmarshal(r.Event, &ev); err != nil {
			return err
		}
		if ev.SessionID == session {
			evs = append(evs, &ev)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var open sshproxy.Opener
	if af != nil {
		open = pieceOpener(*af, &bulk.Reader{Store: store.Store}, session)
	}
	return sshproxy.CastWith(ctx, evs, session, open)
}

// pieceOpener opens a session's bulk pieces (docs/FORMAT.md §1.7): it
// reads each object from the store, and has the API open it (POST
// /v1/sessions/{id}/pieces) under the caller's token, where the key
// store is: the API's roles and scopes decide, and records each opening.
// The API plays each piece as the session's cast does, beside the pieces
// next to it and cut where a text chunk's placeholder begins, all taken
// from the session's events it holds: nothing here decides that.
func pieceOpener(af apiFlags, rd *bulk.Reader, session string) sshproxy.Opener {
	return func(ctx context.Context, pieces []sshproxy.Piece) ([][]byte, error) {
		out := make([][]byte, len(pieces))
		for lo := 0; lo < len(pieces); lo += api.MaxPieces {
			hi := min(lo+api.MaxPieces, len(pieces))
			// One request per tenant: the pieces of a session are all
			// its tenant's.
			tenant := pieces[lo].Tenant
			var req api.PiecesRequest
			for _, p := range pieces[lo:hi] {
				b, err := rd.Object(ctx, p.Piece)
				if err != nil {
					return nil, err
				}
				req.Pieces = append(req.Pieces, api.PieceObject{Stream: p.Stream, Offset: p.Offset, Bytes: p.Bytes, Ref: p.Ref, Content: b})
			}
			var res api.PiecesResult
			path := "/v1/sessions/" + url.PathEscape(session) + "/pieces?tenant=" + url.QueryEscape(tenant)
			if err := af.call(ctx, "POST", path, req, &res); err != nil {
				return nil, fmt.Errorf("opening bulk pieces %d to %d of session %s: %w", lo+1, hi, session, err)
			}
			if len(res.Data) != len(req.Pieces) {
				return nil, fmt.Errorf("opening bulk pieces of session %s: %d answered for %d", session, len(res.Data), len(req.Pieces))
			}
			copy(out[lo:hi], res.Data)
		}
		return out, nil
	}
}

// exportCast writes a recorded terminal session as an asciicast v2 file.
func exportCast(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "export cast --store URL --session ID [--out FILE] [--open [--api URL]]",
		"Writes a terminal session recorded by the SSH gateway, read from the sealed\nrecords of a store, as an asciicast v2 file that asciinema plays\n(asciinema play FILE): the output, the input and the window changes, each\nchunk timed by when it was recorded. It reads, it does not check: run verify\nfor that."+openPiecesHelp)
	storeURL := fs.String("store", "", "store URL or directory")
	session := fs.String("session", "", "the session id")
	out := fs.String("out", "", "the file to write (default: standard output)")
	af := addOpenPiecesFlags(fs)
	return func(ctx context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
		if err := cli.Required(fs, "store", "session"); err != nil {
			return err
		}
		cast, err := sessionCast(ctx, *storeURL, *session, af())
		if err != nil {
			return err
		}
		w := stdout
		if *out != "" {
			f, err := os.Create(*out)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		_, err = cast.WriteTo(w)
		return err
	}
}

// replayCmd plays a recorded terminal session in this terminal.
func replayCmd(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "replay --store URL --session ID [--speed X] [--from SECONDS] [--open [--api URL]]",
		"Plays a terminal session recorded by the SSH gateway, read from the sealed\nrecords of a store, in this terminal: its output, in real time (--speed\nscales it; 0 prints it all at once), from --from seconds into the session."+openPiecesHelp)
	storeURL := fs.String("store", "", "store URL or directory")
	session := fs.String("session", "", "the session id")
	speed := fs.Float64("speed", 1, "playback speed; 0: no waiting")
	from := fs.Float64("from", 0, "start this many seconds into the session (what came before is printed at once)")
	af := addOpenPiecesFlags(fs)
	return func(ctx context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
		if err := cli.Required(fs, "store", "session"); err != nil {
			return err
		}
		if *speed < 0 {
			return cli.Usagef("--speed %v: want 0 or more", *speed)
		}
		cast, err := sessionCast(ctx, *storeURL, *session, af())
		if err != nil {
			return err
		}
		last := *from
		for _, f := range cast.Frames {
			if f.Kind != "o" {
				continue
			}
			if f.Time > last && *speed > 0 {
				select {
				case <-time.After(time.Duration((f.Time - last) / *speed * float64(time.Second))):
				case <-ctx.Done():
					return ctx.Err()
				}
				last = f.Time
			}
			if _, err := fmt.Fprint(stdout, f.Data); err != nil {
				return err
			}
		}
		return nil
	}
}

// openPiecesHelp tells how the cast commands play bulk pieces.
const openPiecesHelp = "\n\nA stream that carried bulk (docs/FORMAT.md §1.7) is recorded as pieces\nencrypted under its subject's key: they play as [SEALED] unless --open, which\nhas the API open them for your token (role auditor or security, your\ntenants; each opening is recorded) with what the detectors find replaced;\na piece of an erased subject plays as [ERASED]."

// addOpenPiecesFlags adds --open and the API's flags; the flags are nil
// unless --open is given.
func addOpenPiecesFlags(fs *pflag.FlagSet) func() *apiFlags {
	open := fs.Bool("open", false, "play bulk pieces opened, through the API (POST /v1/sessions/{id}/pieces: role auditor or security, your tenants; each opening is recorded)")
	af := addAPIFlags(fs)
	return func() *apiFlags {
		if !*open {
			return nil
		}
		return &af
	}
}
