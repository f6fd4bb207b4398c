package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRole records what runRoles does with it.
type fakeRole struct {
	name       string
	prepareErr error
	runErr     error     // returned at once when run
	last       bool      // stops after the others
	events     *[]string // shared log of what happened, in order
	mu         *sync.Mutex
	// stopMidPrepare, if set, is called in prepare (a stop arriving
	// then), which then returns its context's cancellation.
	stopMidPrepare func()
	// cancelled: run returns its context's cancellation when stopped.
	cancelled bool
}

func (f *fakeRole) check(*serveConfig) error { return nil }

func (f *fakeRole) note(s string) {
	f.mu.Lock()
	*f.events = append(*f.events, f.name+" "+s)
	f.mu.Unlock()
}

func (f *fakeRole) prepare(ctx context.Context, _ *env, _ *slog.Logger) (func(context.Context) error, error) {
	if f.stopMidPrepare != nil {
		f.stopMidPrepare()
		f.note("stopped preparing")
		return nil, fmt.Errorf("dialing: %w", ctx.Err())
	}
	if f.prepareErr != nil {
		f.note("refused")
		return nil, f.prepareErr
	}
	f.note("prepared")
	return func(ctx context.Context) error {
		if f.runErr != nil {
			f.note("failed")
			return f.runErr
		}
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // stopping takes a moment
		f.note("stopped")
		if f.cancelled {
			return fmt.Errorf("migrating: %w", ctx.Err())
		}
		return nil
	}, nil
}

type lastRole struct{ *fakeRole }

func (lastRole) stopsLast() {}

func newRoles(specs ...*fakeRole) (*env, *[]string) {
	var events []string
	var mu sync.Mutex
	e := &env{cfg: &serveConfig{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), sections: map[string]role{}}
	for _, f := range specs {
		f.events, f.mu = &events, &mu
		if f.last {
			e.sections[f.name] = lastRole{f}
		} else {
			e.sections[f.name] = f
		}
	}
	return e, &events
}

func TestRunRolesFirstFailureStopsTheRest(t *testing.T) {
	boom := errors.New("boom")
	e, events := newRoles(&fakeRole{name: "ledger", last: true}, &fakeRole{name: "api"}, &fakeRole{name: "proxy", runErr: boom})
	done := make(chan error, 1)
	go func() { done <- runRoles(context.Background(), e, []string{"api", "proxy", "ledger"}) }()
	select {
	case err := <-done:
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "role proxy") {
			t.Fatalf("runRoles = %v, want the proxy's failure named", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a failed role did not stop the others")
	}
	// The ledger stops after every other role has.
	if got := *events; got[len(got)-1] != "ledger stopped" || !slices.Contains(got, "api stopped") {
		t.Errorf("events %v: want the api stopped, and the ledger last", got)
	}
}

func TestRunRolesPreparesAllBeforeRunningAndReleasesOnRefusal(t *testing.T) {
	e, events := newRoles(&fakeRole{name: "api"}, &fakeRole{name: "proxy", prepareErr: errors.New("bad policy")}, &fakeRole{name: "ledger", last: true})
	banner := false
	err := runRoles(context.Background(), e, []string{"api", "proxy", "ledger"}, func() { banner = true })
	if err == nil || !strings.Contains(err.Error(), "role proxy: bad policy") {
		t.Fatalf("runRoles = %v, want the proxy's refusal", err)
	}
	if banner {
		t.Error("the banner was printed although a role could not be prepared")
	}
	// The api, prepared before the refusal, was run on an ended context
	// to release what it took; the ledger was never prepared.
	if want := []string{"api prepared", "proxy refused", "api stopped"}; !slices.Equal(*events, want) {
		t.Errorf("events %v, want %v", *events, want)
	}
}

func TestRunRolesStopsTheLedgerLast(t *testing.T) {
	e, events := newRoles(&fakeRole{name: "ledger", last: true}, &fakeRole{name: "api"}, &fakeRole{name: "proxy"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runRoles(ctx, e, []string{"ledger", "api", "proxy"}) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := *events
	if len(got) != 6 || got[5] != "ledger stopped" {
		t.Errorf("events %v: the ledger must stop after the roles that record", got)
	}
}

// TestRunRolesStopIsNoFailure: a stop that reaches a role while it is
// prepared, or while it runs, makes it return its context's cancellation;
// runRoles takes that for the stop it is, and still reports a real failure
// beside it.
func TestRunRolesStopIsNoFailure(t *testing.T) {
	t.Run("while preparing", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e, events := newRoles(&fakeRole{name: "api", cancelled: true}, &fakeRole{name: "projector", stopMidPrepare: cancel}, &fakeRole{name: "ledger", last: true})
		banner := false
		if err := runRoles(ctx, e, []string{"api", "projector", "ledger"}, func() { banner = true }); err != nil {
			t.Fatalf("runRoles = %v, want nil: a stop is no failure", err)
		}
		if banner {
			t.Error("the banner was printed although dev was stopped before it ran")
		}
		if want := []string{"api prepared", "projector stopped preparing", "api stopped"}; !slices.Equal(*events, want) {
			t.Errorf("events %v, want %v", *events, want)
		}
	})
	t.Run("while running", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		e, _ := newRoles(&fakeRole{name: "projector", cancelled: true}, &fakeRole{name: "ledger", last: true, cancelled: true})
		done := make(chan error, 1)
		go func() { done <- runRoles(ctx, e, []string{"projector", "ledger"}) }()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("runRoles = %v, want nil: a stop is no failure", err)
		}
	})
	t.Run("beside a failure", func(t *testing.T) {
		boom := errors.New("boom")
		e, _ := newRoles(&fakeRole{name: "projector", cancelled: true}, &fakeRole{name: "proxy", runErr: boom})
		err := runRoles(context.Background(), e, []string{"projector", "proxy"})
		if !errors.Is(err, boom) || strings.Contains(err.Error(), "projector") {
			t.Fatalf("runRoles = %v, want the proxy's failure alone", err)
		}
	})
}

// TestRoleTable: every row of the roleTable names its role and its
// section, and deploy/auditledger.yaml documents the section; its
// AUDITLEDGER_* variables are named after the section.
func TestRoleTable(t *testing.T) {
	deploy, err := os.ReadFile("../../deploy/auditledger.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c serveConfig
	typ := reflect.TypeOf(c.roleTable)
	seen := map[string]bool{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, section := f.Tag.Get("role"), f.Tag.Get("yaml")
		if name == "" || section == "" || seen[name] {
			t.Errorf("roleTable.%s: role %q, yaml %q: each row needs a role name of its own and a section", f.Name, name, section)
		}
		seen[name] = true
		if !strings.Contains(string(deploy), "\n"+section+":") {
			t.Errorf("deploy/auditledger.yaml documents no %s: section (role %s)", section, name)
		}
	}
	for _, r := range c.sections() {
		e, ok := r.role.(interface{ envOverrides() []envOverride })
		if !ok {
			continue
		}
		for _, o := range e.envOverrides() {
			if want := "AUDITLEDGER_" + strings.ToUpper(strings.ReplaceAll(r.name, "-", "_")) + "_"; !strings.HasPrefix(o.name, want) {
				t.Errorf("role %s reads %s: its variables begin %s", r.name, o.name, want)
			}
		}
	}
}
