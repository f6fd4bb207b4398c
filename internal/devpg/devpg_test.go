package devpg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// As a helper process (TestMain), start a cluster, print its port and
// block: the test kills this process and expects the server to follow.
func TestMain(m *testing.M) {
	if dir := os.Getenv("DEVPG_HELPER_DIR"); dir != "" {
		as, err := Unprivileged()
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		s, err := Start(context.Background(), Config{Dir: dir, As: as})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("port", s.Port)
		select {}
	}
	os.Exit(m.Run())
}

// reachableTempDir is a fresh directory the unprivileged account can reach
// when running as root (t.TempDir's parent is closed to others).
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The cluster is created once, keeps its data across a stop and a start,
// and takes connections only with its password.
func TestStartKeepsTheClusterAcrossRestarts(t *testing.T) {
	as, err := Unprivileged()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(reachableTempDir(t), "postgres")
	s, err := Start(t.Context(), Config{Dir: dir, As: as})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Created {
		t.Error("the first start did not say it created the cluster")
	}
	c, err := pgx.Connect(t.Context(), s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(t.Context(), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('across restarts')"); err != nil {
		t.Fatal(err)
	}
	c.Close(t.Context())
	if strings.Contains(s.Redacted(), s.password) {
		t.Errorf("Redacted shows the password: %s", s.Redacted())
	}
	wrong := strings.Replace(s.URL(), s.password, "wrong", 1)
	if c, err := pgx.Connect(t.Context(), wrong); err == nil {
		c.Close(t.Context())
		t.Error("a connection with the wrong password was accepted")
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("postmaster.pid after stop: %v", err)
	}

	s, err = Start(t.Context(), Config{Dir: dir, As: as})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if s.Created {
		t.Error("the second start created the cluster again")
	}
	c, err = pgx.Connect(t.Context(), s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	var v string
	if err := c.QueryRow(t.Context(), "SELECT v FROM kept").Scan(&v); err != nil || v != "across restarts" {
		t.Fatalf("after a restart: %q %v", v, err)
	}
}

// When the process that started the server dies by SIGKILL, the server
// shuts down on its own (parent-death signal); the next start finds the
// cluster and runs it again.
func TestTheServerFollowsItsParent(t *testing.T) {
	dir := filepath.Join(reachableTempDir(t), "postgres")
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), "DEVPG_HELPER_DIR="+dir)
	out, _ := helper.StdoutPipe()
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "port ") {
		helper.Process.Kill()
		t.Fatalf("helper: %q", line)
	}
	pidfile := filepath.Join(dir, "data", "postmaster.pid")
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	helper.Process.Kill()
	helper.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGQUIT)
			t.Fatalf("postgres (pid %d) still runs 60s after its parent was killed", pid)
		}
		time.Sleep(50 * time.Millisecond) // polling for the server's exit, with a deadline
	}
	as, _ := Unprivileged()
	s, err := Start(t.Context(), Config{Dir: dir, As: as})
	if err != nil {
		t.Fatal(err)
	}
	if s.Created {
		t.Error("the cluster was created again")
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
}

// As root, a data directory the postgres user cannot enter gets an
// ephemeral cluster under the temporary directory, a new one each time
// (the caller removes it), never one in that user's home, where they piled
// up.
func TestLocation(t *testing.T) {
	base := reachableTempDir(t)
	home := filepath.Join(base, "home")
	open, closed := filepath.Join(base, "open", "data"), filepath.Join(base, "closed", "data")
	for _, d := range []string{home, open, closed} {
		os.MkdirAll(d, 0o755)
	}
	for d, mode := range map[string]os.FileMode{filepath.Dir(open): 0o711, filepath.Dir(closed): 0o700} {
		os.Chmod(d, mode)
	}
	as := &Account{Name: "someone", Home: home, UID: 54321, GID: 54321}
	if got, eph, err := Location(open, as); err != nil || eph || got != filepath.Join(open, "postgres") {
		t.Errorf("reachable data directory: %q ephemeral %v %v", got, eph, err)
	}
	got, eph, err := Location(closed, as)
	if err != nil || !eph || filepath.Dir(got) != filepath.Clean(os.TempDir()) || !strings.HasPrefix(filepath.Base(got), "auditledger-dev-postgres-") {
		t.Errorf("closed data directory: %q ephemeral %v %v, want a new directory in %s", got, eph, err, os.TempDir())
	}
	if again, _, _ := Location(closed, as); again == got {
		t.Errorf("two starts share the ephemeral cluster %s", got)
	}
	if _, err := os.Stat(got); err == nil {
		t.Errorf("Location created %s: Start creates it, owned by the account", got)
	}
	t.Setenv("TMPDIR", filepath.Join(base, "closed"))
	if _, _, err := Location(closed, as); err == nil || !strings.Contains(err.Error(), "--data") {
		t.Errorf("no reachable place: %v, want advice", err)
	}
	if got, eph, err := Location(closed, nil); err != nil || eph || got != filepath.Join(closed, "postgres") {
		t.Errorf("not root: %q %v %v", got, eph, err)
	}
}

// Without server binaries the error names what to install.
func TestNotInstalled(t *testing.T) {
	defer func(s []string) { searched = s }(searched)
	searched = nil
	t.Setenv("PATH", t.TempDir())
	t.Setenv("AUDITLEDGER_PG_BIN", "")
	if _, err := BinDir(); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("BinDir = %v, want ErrNotInstalled", err)
	}
	if _, err := Start(t.Context(), Config{Dir: t.TempDir()}); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start = %v", err)
	}
	if !strings.Contains(Install, "apt-get install -y postgresql") {
		t.Errorf("Install: %s", Install)
	}
	t.Setenv("AUDITLEDGER_PG_BIN", t.TempDir())
	if _, err := BinDir(); err == nil || !strings.Contains(err.Error(), "no initdb there") {
		t.Errorf("AUDITLEDGER_PG_BIN without initdb: %v", err)
	}
}
