package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/storeurl"
	"github.com/auditledger/auditledger/services/sshproxy"
)

// sessionCast reads one session's sealed events from a store and
// rebuilds its terminal.
func sessionCast(ctx context.Context, storeURL, session string) (*sshproxy.Cast, error) {
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
	return sshproxy.CastOf(evs, session)
}

// exportCast writes a recorded terminal session as an asciicast v2 file.
func exportCast(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "export cast --store URL --session ID [--out FILE]",
		"Writes a terminal session recorded by the SSH gateway, read from the sealed\nrecords of a store, as an asciicast v2 file that asciinema plays\n(asciinema play FILE): the output, the input and the window changes, each\nchunk timed by when it was recorded. It reads, it does not check: run verify\nfor that.")
	storeURL := fs.String("store", "", "store URL or directory")
	session := fs.String("session", "", "the session id")
	out := fs.String("out", "", "the file to write (default: standard output)")
	return func(ctx context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
		if err := cli.Required(fs, "store", "session"); err != nil {
			return err
		}
		cast, err := sessionCast(ctx, *storeURL, *session)
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
	fs := cli.Describe(c, "replay --store URL --session ID [--speed X] [--from SECONDS]",
		"Plays a terminal session recorded by the SSH gateway, read from the sealed\nrecords of a store, in this terminal: its output, in real time (--speed\nscales it; 0 prints it all at once), from --from seconds into the session.")
	storeURL := fs.String("store", "", "store URL or directory")
	session := fs.String("session", "", "the session id")
	speed := fs.Float64("speed", 1, "playback speed; 0: no waiting")
	from := fs.Float64("from", 0, "start this many seconds into the session (what came before is printed at once)")
	return func(ctx context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
		if err := cli.Required(fs, "store", "session"); err != nil {
			return err
		}
		if *speed < 0 {
			return cli.Usagef("--speed %v: want 0 or more", *speed)
		}
		cast, err := sessionCast(ctx, *storeURL, *session)
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
