package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/emitter"
)

// emitLines publishes one event per line; with ids, the id of each event
// is printed once it is stored (the line is flushed at once, so a
// process reading it knows what is stored even if emit dies next).
func emitLines(ctx context.Context, em *emitter.Emitter, stdin io.Reader, stdout, stderr io.Writer, ids bool) error {
	br := bufio.NewReaderSize(stdin, events.MaxSize+2)
	var mu sync.Mutex
	var stored, dups, spooled, failed, rejected, n int
	start := time.Now()
	for {
		raw, err := readLine(br)
		if err == io.EOF {
			break
		}
		n++
		if err != nil && !errors.Is(err, events.ErrTooLarge) {
			return err
		}
		if err == nil && len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		if err == nil {
			line := n
			err = em.EmitRaw(ctx, raw, func(r emitter.Result) {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case r.Err != nil:
					failed++
					fmt.Fprintf(stderr, "line %d: event %s not stored: %v\n", line, r.ID, r.Err)
				case r.Spooled:
					spooled++
					if ids {
						fmt.Fprintf(stdout, "spooled %s\n", r.ID)
					}
				default:
					stored++
					if r.Duplicate {
						dups++
					}
					if ids {
						fmt.Fprintf(stdout, "%s\n", r.ID)
					}
				}
			})
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rejected++
			fmt.Fprintf(stderr, "line %d: rejected: %v\n", n, err)
		}
	}
	em.Wait()
	fmt.Fprintf(stderr, "emitted %d events stored by JetStream (%.0f events/s; %d of them it held already, by id), %d spooled; %d lines rejected, %d not stored\n",
		stored, float64(stored)/time.Since(start).Seconds(), dups, spooled, rejected, failed)
	if rejected+failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("emit: %d lines rejected, %d not stored", rejected, failed)}
	}
	return nil
}
