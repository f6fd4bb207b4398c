// Package storetest is the contract test suite every ledger.SegmentStore
// implementation runs, real backends included.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/auditledger/auditledger/ledger"
)

// Run runs the contract against stores made by newStore; each call must
// return an empty store. retain is the retain-until date to pass to Create
// (stores with Object Lock require one).
func Run(t *testing.T, newStore func(t *testing.T) ledger.SegmentStore, retain time.Duration) {
	ctx := context.Background()
	until := func() time.Time { return time.Now().Add(retain) }
	if retain == 0 {
		until = func() time.Time { return time.Time{} }
	}

	t.Run("CreateGet", func(t *testing.T) {
		s := newStore(t)
		data := []byte("sealed segment bytes")
		if err := s.Create(ctx, "segments/a", data, until()); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "segments/a")
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get = %q, %v; want %q", got, err, data)
		}
	})

	t.Run("CreateNeverReplaces", func(t *testing.T) {
		s := newStore(t)
		if err := s.Create(ctx, "segments/a", []byte("first"), until()); err != nil {
			t.Fatal(err)
		}
		err := s.Create(ctx, "segments/a", []byte("second"), until())
		if !errors.Is(err, ledger.ErrExist) {
			t.Fatalf("second Create: %v, want ErrExist", err)
		}
		if got, _ := s.Get(ctx, "segments/a"); string(got) != "first" {
			t.Fatalf("after refused overwrite Get = %q, want %q", got, "first")
		}
	})

	t.Run("ConcurrentCreateOneWinner", func(t *testing.T) {
		s := newStore(t)
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = s.Create(ctx, "segments/race", fmt.Appendf(nil, "writer %d", i), until()) })
		}
		wg.Wait()
		wins := 0
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
				winner = i
			case !errors.Is(err, ledger.ErrExist):
				t.Errorf("writer %d: %v", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d writers won, want exactly 1", wins)
		}
		if got, _ := s.Get(ctx, "segments/race"); string(got) != fmt.Sprintf("writer %d", winner) {
			t.Fatalf("stored %q, but writer %d won", got, winner)
		}
	})

	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "segments/none"); !errors.Is(err, ledger.ErrNotExist) {
			t.Fatalf("Get missing: %v, want ErrNotExist", err)
		}
	})

	t.Run("ListLexicalByPrefix", func(t *testing.T) {
		s := newStore(t)
		names := []string{"segments/b", "segments/a", "checkpoints/1", "segments/c"}
		for _, n := range names {
			if err := s.Create(ctx, n, []byte(n), until()); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.List(ctx, "segments/")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"segments/a", "segments/b", "segments/c"}; !slices.Equal(got, want) {
			t.Fatalf("List = %q, want %q", got, want)
		}
		if got, _ := s.List(ctx, "nothing/"); len(got) != 0 {
			t.Fatalf("List of an empty prefix = %q", got)
		}
	})

	t.Run("InspectFresh", func(t *testing.T) {
		s := newStore(t)
		in, ok := s.(ledger.Inspector)
		if !ok {
			t.Skip("store has no Inspector") // optional capability, not a backend
		}
		if err := s.Create(ctx, "segments/a", []byte("x"), until()); err != nil {
			t.Fatal(err)
		}
		p, err := in.Inspect(ctx, "segments/a")
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Problems) > 0 {
			t.Fatalf("fresh object has problems: %v", p.Problems)
		}
		if retain > 0 && (!p.Locked || p.RetainUntil.Before(time.Now())) {
			t.Fatalf("object not locked: %+v", p)
		}
	})

	t.Run("LogRoundTrip", func(t *testing.T) {
		s := newStore(t)
		skey, _, _ := ledger.GenerateKey(nil, "storetest.example/log")
		signer, _ := ledger.NewNoteSigner(skey)
		l, err := ledger.Open(ctx, ledger.Config{Store: s, Signer: signer, Retention: retain})
		if err != nil {
			t.Fatal(err)
		}
		for seg := range 3 {
			var es []ledger.Entry
			for i := range 5 {
				es = append(es, ledger.Entry{Event: fmt.Appendf(nil, `{"version":1,"id":"st-%d","type":"session.started","time":"2026-11-26T12:00:00Z","tenant":"t","source":{"kind":"k","instance":"i"},"actor":{"issuer":"x","subject":"s","kind":"human"},"payload":{}}`, seg*5+i)})
			}
			if _, err := l.Append(ctx, es); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := ledger.Verify(ctx, s, ledger.VerifyOptions{Verifier: signer.Verifier(), Retention: retain})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Size != 15 || len(rep.Segments) != 3 {
			t.Fatalf("verified %d records in %d segments, want 15 in 3", rep.Size, len(rep.Segments))
		}
	})

	t.Run("LegalHold", func(t *testing.T) {
		s := newStore(t)
		h, ok := s.(ledger.LegalHolder)
		d, okd := s.(ledger.Deleter)
		if !ok || !okd {
			t.Fatalf("%T: every store keeps legal holds and deletes honouring them (ledger.LegalHolder, ledger.Deleter)", s)
		}
		if err := h.SetLegalHold(ctx, "segments/missing", true); !errors.Is(err, ledger.ErrNotExist) {
			t.Fatalf("hold on a missing object: %v, want ErrNotExist", err)
		}
		if err := s.Create(ctx, "segments/held", []byte("held"), until()); err != nil {
			t.Fatal(err)
		}
		for range 2 { // setting a hold that is set succeeds
			if err := h.SetLegalHold(ctx, "segments/held", true); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Delete(ctx, "segments/held"); !errors.Is(err, ledger.ErrProtected) {
			t.Fatalf("Delete of a held object: %v, want ErrProtected", err)
		}
		if got, err := s.Get(ctx, "segments/held"); err != nil || string(got) != "held" {
			t.Fatalf("after a refused Delete: Get = %q, %v", got, err)
		}
		if in, ok := s.(ledger.Inspector); ok {
			if p, err := in.Inspect(ctx, "segments/held"); err != nil || !p.LegalHold {
				t.Fatalf("Inspect of a held object: %+v, %v; want LegalHold", p, err)
			}
		}
		if names, _ := s.List(ctx, ""); !slices.Equal(names, []string{"segments/held"}) {
			t.Fatalf("List after a hold: %q; a hold is not an object", names)
		}
		if err := h.SetLegalHold(ctx, "segments/held", false); err != nil {
			t.Fatal(err)
		}
		if in, ok := s.(ledger.Inspector); ok {
			if p, err := in.Inspect(ctx, "segments/held"); err != nil || p.LegalHold {
				t.Fatalf("Inspect after release: %+v, %v; want no LegalHold", p, err)
			}
		}
		if retain == 0 { // nothing else protects it
			if err := d.Delete(ctx, "segments/held"); err != nil {
				t.Fatalf("Delete after release: %v", err)
			}
			if _, err := s.Get(ctx, "segments/held"); !errors.Is(err, ledger.ErrNotExist) {
				t.Fatalf("Get after Delete: %v, want ErrNotExist", err)
			}
		}
	})
}
