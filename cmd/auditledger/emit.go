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

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/cmd/auditledger/internal/eventimport"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/bus/emitter"
)

// emitLines publishes one event per line; a line that holds a value a
// built-in detector finds is rejected and not sent. With ids, the id of each event
// is printed once it is stored (the line is flushed at once, so a
// process reading it knows what is stored even if emit dies next).
// A refusal by the bus's permissions is final: emitLines sends no more
// lines and says which credential (who) lacks which publish right.
func emitLines(ctx context.Context, em *emitter.Emitter, stdin io.Reader, stdout, stderr io.Writer, ids bool, who string) error {
	br := bufio.NewReaderSize(stdin, events.MaxSize+2)
	var mu sync.Mutex
	var stored, dups, spooled, failed, rejected, n int
	var refused *emitter.RefusedError
	start := time.Now()
	for {
		mu.Lock()
		stop := refused != nil
		mu.Unlock()
		if stop {
			break
		}
		raw, err := eventimport.ReadLine(br)
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
			// Judged before it leaves: the writer would reject it, and
			// erase it from the bus, but the bus would have held it.
			err = detect.CheckEvent(raw)
		}
		if err == nil {
			line := n
			err = em.EmitRaw(ctx, raw, func(r emitter.Result) {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case r.Err != nil:
					failed++
					var re *emitter.RefusedError
					if errors.As(r.Err, &re) && refused == nil {
						refused = re
					}
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
	if refused != nil {
		var unread int
		for {
			if _, err := eventimport.ReadLine(br); err == io.EOF {
				break
			}
			unread++
		}
		what := "publish rights on " + refused.Subject
		if refused.Inbox {
			what = "the reply inbox " + refused.Subject + " (its inbox prefix is another role's)"
		}
		fmt.Fprintf(stderr, "emitted %d events stored by JetStream, %d not stored; %d lines not sent\n", stored, failed, unread)
		return cli.Failed(fmt.Errorf("emit: NATS refused %s: the credential lacks %s, and trying again cannot change that. "+
			"Events need the proxy role's seed (--nkey DIR/proxy.nk) or producer-NAME.nk where NAME is the events' source instance (auditledger keys nats --producers NAME)", who, what))
	}
	fmt.Fprintf(stderr, "emitted %d events stored by JetStream (%.0f events/s; %d of them it held already, by id), %d spooled; %d lines rejected, %d not stored\n",
		stored, float64(stored)/time.Since(start).Seconds(), dups, spooled, rejected, failed)
	if rejected+failed > 0 {
		return cli.Failed(fmt.Errorf("emit: %d lines rejected, %d not stored", rejected, failed))
	}
	return nil
}
