package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/auditledger/auditledger/test/natstest"
)

// The projector (serve role projector) is SIGKILLed at random moments while
// segments are sealed; afterwards its tables equal, row by row, those
// `projections rebuild` makes from the store alone.
func TestProjectorKill9(t *testing.T) {
	pg := targetPostgres(t)
	keys, store := t.TempDir(), filepath.Join(t.TempDir(), "store")
	mustRun(t, nil, nil, "keys", "generate", "--out", keys)
	mustRun(t, eventLines(0, 10), nil, "append", "--store", store, "--key", filepath.Join(keys, "ledger.key"))
	live := pg.DSN(pg.NewDatabase(t))
	cfg := filepath.Join(t.TempDir(), "projector.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`roles: [projector]
log: {format: text}
http: {listen: "127.0.0.1:0"}
projector: {store: %q, vkey: %q, poll: 20ms}
`, store, filepath.Join(keys, "ledger.vkey"))), 0o644)

	// Segments keep coming: batches of 1 to 40 events, sealed by append.
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var appended int
	wg.Go(func() {
		next := 10
		for ctx.Err() == nil {
			n := 1 + rand.IntN(40)
			if r := run(t, eventLines(next, n), nil, "append", "--store", store, "--key", filepath.Join(keys, "ledger.key")); r.code != 0 {
				t.Errorf("append: %s", r.stderr)
				return
			}
			next += n
			time.Sleep(20 * time.Millisecond)
		}
		appended = next
	})
	env := []string{"AUDITLEDGER_DATABASE_URL=" + live}
	kills := 20
	for range kills {
		cmd := startServeEnv(t, cfg, env)
		time.Sleep(time.Duration(50+rand.IntN(400)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	stop()
	wg.Wait()
	// A last run catches up with everything sealed.
	logPath := filepath.Join(filepath.Dir(cfg), "serve.log")
	before, _ := os.ReadFile(logPath)
	cmd := startServeEnv(t, cfg, env)
	db, err := pgxpool.New(t.Context(), live)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		var size int64
		if err := db.QueryRow(t.Context(), `SELECT size FROM projection_cursor`).Scan(&size); err != nil {
			return err
		}
		if size != int64(appended) {
			return fmt.Errorf("projector at %d of %d records", size, appended)
		}
		return nil
	})
	// Its /metrics, parsed as Prometheus does, and /readyz say so (at
	// the address the last run logged).
	var httpAddr string
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		logged, _ := os.ReadFile(logPath)
		m := regexp.MustCompile(`msg="auditledger serving".* http=(\S+)`).FindSubmatch(logged[len(before):])
		if m == nil {
			return fmt.Errorf("the last run has not logged its address yet")
		}
		httpAddr = string(m[1])
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/readyz %d", resp.StatusCode)
		}
		return nil
	})
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	families, err := textParser().TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	if err != nil || families["auditledger_projector_applied"] == nil || families["auditledger_projector_applied"].Metric[0].GetGauge().GetValue() != float64(appended) {
		t.Errorf("projector metrics: %v %v", err, families["auditledger_projector_applied"])
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()

	clean := pg.DSN(pg.NewDatabase(t))
	r := mustRun(t, nil, []string{"AUDITLEDGER_DATABASE_URL=" + clean}, "projections", "rebuild", "--store", store, "--vkey", filepath.Join(keys, "ledger.vkey"))
	if !strings.Contains(r.stdout, fmt.Sprintf("rebuilt %d records", appended)) {
		t.Errorf("rebuild: %s", r.stdout)
	}
	cleanDB, err := pgxpool.New(t.Context(), clean)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanDB.Close()
	got, want := projectionRows(t, db), projectionRows(t, cleanDB)
	if len(got) < appended || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after %d kills the projection (%d rows) differs from a clean rebuild (%d rows; %d records sealed)", kills, len(got), len(want), appended)
	}
	t.Logf("%d kills, %d records, projection equal to a clean rebuild", kills, appended)
}

// startServeEnv is startServe with extra environment.
func startServeEnv(t *testing.T, config string, env []string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, "serve", "--config", config)
	cmd.Env = append(os.Environ(), env...)
	logf, _ := os.OpenFile(filepath.Join(filepath.Dir(config), "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	return cmd
}

// projectionRows is every row of the events and segments tables and the
// cursor, in order, as text.
func projectionRows(t *testing.T, db *pgxpool.Pool) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT idx, leaf, sealed_at, source, event, payload::text FROM events ORDER BY idx`,
		`SELECT first, size, name, sha256, root, checkpoint FROM segments ORDER BY first`,
		`SELECT name, size, position FROM projection_cursor ORDER BY name`,
		`SELECT first_stored, hashes FROM tree_hashes ORDER BY first_stored`,
	} {
		rs, err := db.Query(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			vals, _ := rs.Values()
			out = append(out, fmt.Sprint(vals))
		}
		rs.Close()
	}
	return out
}

// textParser reads the Prometheus text format (prometheus/common's parser
// needs its name validation scheme; its zero value has none).
func textParser() *expfmt.TextParser {
	p := expfmt.NewTextParser(model.LegacyValidation)
	return &p
}
