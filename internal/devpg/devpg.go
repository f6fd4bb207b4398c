// Package devpg runs the PostgreSQL server `auditledger dev` projects the
// log into when no database is given: a cluster of its own, created with
// the installed server binaries on first start, kept across restarts and
// stopped when dev stops (or dies: the server gets the parent-death signal).
//
// PostgreSQL refuses to run as root, so as root the server runs as the
// postgres user the distributions' packages create. That user must be
// able to reach the cluster's directory; when the data directory lies
// below one it cannot enter (root's home, a 0700 temporary directory), the
// cluster is ephemeral: a fresh directory under the system's temporary
// directory, which its caller removes when the server stops (the
// projection is rebuilt from the store at the next start). Nothing is
// left in the postgres user's home to pile up.
//
// It listens on 127.0.0.1 only, with a password (scram-sha-256) kept in the
// cluster directory, and no Unix socket (whose path would be limited to 107
// bytes).
package devpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Install says how to get the server binaries, for the error that says
// they are missing.
const Install = `install the PostgreSQL server: Debian/Ubuntu: apt-get install -y postgresql; Fedora/RHEL: dnf install -y postgresql-server; macOS: brew install postgresql@17; or set AUDITLEDGER_PG_BIN to the directory holding initdb and postgres`

// ErrNotInstalled is returned when no PostgreSQL server binaries are found.
var ErrNotInstalled = errors.New("no PostgreSQL server found (looked for initdb in $AUDITLEDGER_PG_BIN, /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, /opt/homebrew/opt/postgresql*/bin, /usr/local/opt/postgresql*/bin and $PATH)")

// searched are where the distributions install versioned server binaries.
var searched = []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/opt/homebrew/opt/postgresql*/bin", "/usr/local/opt/postgresql*/bin"}

// BinDir finds the PostgreSQL server binaries: $AUDITLEDGER_PG_BIN, the
// newest of the distributions' versioned directories, or initdb on $PATH.
func BinDir() (string, error) {
	if d := os.Getenv("AUDITLEDGER_PG_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("AUDITLEDGER_PG_BIN=%s: no initdb there", d)
		}
		return d, nil
	}
	var dirs []string
	for _, pattern := range searched {
		m, _ := filepath.Glob(pattern)
		dirs = append(dirs, m...)
	}
	sort.SliceStable(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNotInstalled
}

// majorOf reads the major version from a versioned directory's name
// (/usr/lib/postgresql/15/bin, /usr/pgsql-16/bin, …/postgresql@17/bin).
func majorOf(dir string) int {
	name := filepath.Base(filepath.Dir(dir))
	i := strings.LastIndexAny(name, "-@/")
	v, _ := strconv.Atoi(name[i+1:])
	return v
}

// Unprivileged is the account the server runs as: nil when not root (the
// current user), the postgres user when root.
func Unprivileged() (*Account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root, and there is no postgres user to run it as (the distributions' packages create one; or run as another user): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &Account{Name: u.Username, Home: u.HomeDir, UID: uid, GID: gid}, nil
}

// Account is an unprivileged user the server runs as.
type Account struct {
	Name     string
	Home     string
	UID, GID int
}

// CanReach reports whether the account can enter dir: every directory
// from the root down must grant it search (x) permission, as owner, group
// or other. Supplementary groups and ACLs are not considered, so it errs
// on the side of no.
func (a *Account) CanReach(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return false
		}
		s := st.Sys().(*syscall.Stat_t)
		mode := st.Mode().Perm()
		ok := mode&0o001 != 0 ||
			int(s.Uid) == a.UID && mode&0o100 != 0 ||
			int(s.Gid) == a.GID && mode&0o010 != 0
		if !ok {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// Location chooses the cluster directory for a data directory:
// DATA/postgres, kept across restarts; or, when as is set and cannot
// reach it, an ephemeral one (a new name under the system's temporary
// directory, created by Start) that the caller must remove once the
// server has stopped.
func Location(data string, as *Account) (dir string, ephemeral bool, err error) {
	dir = filepath.Join(data, "postgres")
	if as == nil || as.CanReach(data) {
		return dir, false, nil
	}
	tmp := os.TempDir()
	if !as.CanReach(tmp) {
		return "", false, fmt.Errorf("the %s user cannot reach %s (a directory above it is closed to other users) nor %s: give dev a --data directory it can pass through (chmod o+x on each directory above it), or set AUDITLEDGER_DATABASE_URL", as.Name, data, tmp)
	}
	var b [8]byte
	rand.Read(b[:])
	return filepath.Join(tmp, "auditledger-dev-postgres-"+hex.EncodeToString(b[:])), true, nil
}

// Config configures Start.
type Config struct {
	// Dir is the cluster directory (see Location); created if missing.
	Dir string
	// As runs the server as this account (see Unprivileged); nil: as the
	// current user.
	As *Account
	// Port on 127.0.0.1; 0 picks a free one at each start.
	Port int
	// Database is created on first start; default "auditledger".
	Database string
}

// Server is a running dev cluster.
type Server struct {
	Dir      string // the cluster directory
	Port     int
	BinDir   string
	Version  string // the server's major version, from the cluster
	Created  bool   // initdb ran at this start
	user     string
	password string
	database string
	cred     *syscall.Credential
	exited   chan error
	proc     *os.Process
}

const superuser = "auditledger"

// Start starts the cluster in cfg.Dir, creating it on first start, and
// waits until it accepts connections. The server stops when Stop is
// called or when this process dies.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	if cfg.Database == "" {
		cfg.Database = "auditledger"
	}
	s := &Server{Dir: cfg.Dir, BinDir: bin, user: superuser, database: cfg.Database, exited: make(chan error, 1)}
	if cfg.As != nil {
		s.cred = &syscall.Credential{Uid: uint32(cfg.As.UID), Gid: uint32(cfg.As.GID)}
	}
	data := filepath.Join(s.Dir, "data")
	pwfile := filepath.Join(s.Dir, "password")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		if err := s.initdb(data, pwfile); err != nil {
			return nil, err
		}
		s.Created = true
	} else if err != nil {
		return nil, err
	}
	pw, err := os.ReadFile(pwfile)
	if err != nil {
		return nil, fmt.Errorf("the cluster's password: %w", err)
	}
	s.password = strings.TrimSpace(string(pw))
	v, _ := os.ReadFile(filepath.Join(data, "PG_VERSION"))
	s.Version = strings.TrimSpace(string(v))
	// A server left running by a dev that could not stop it (a kill of the
	// whole process group, a reboot leaves only a stale pid file, which
	// the server itself handles).
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err == nil {
		s.command("pg_ctl", "stop", "-D", data, "-m", "fast", "-w", "-t", "30").Run()
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("postgres: stopped while starting: %w", err)
	}
	s.Port = cfg.Port
	for try := 0; ; try++ {
		if cfg.Port == 0 {
			if s.Port, err = freePort(); err != nil {
				return nil, err
			}
		}
		err = s.start(ctx, data)
		if err == nil {
			break
		}
		if cfg.Port != 0 || try == 4 || ctx.Err() != nil {
			return nil, err
		}
	}
	if err := s.ensureDatabase(ctx); err != nil {
		s.Stop()
		if ctx.Err() != nil {
			err = fmt.Errorf("postgres: stopped while starting: %w", ctx.Err())
		}
		return nil, err
	}
	return s, nil
}

// initdb creates the cluster: its superuser has a random password, kept in
// the cluster directory (mode 0600), and connections need it.
func (s *Server) initdb(data, pwfile string) error {
	if err := mkdirAs(s.Dir, s.cred); err != nil {
		return err
	}
	var pw [16]byte
	rand.Read(pw[:])
	if err := os.WriteFile(pwfile, []byte(hex.EncodeToString(pw[:])+"\n"), 0o600); err != nil {
		return err
	}
	if s.cred != nil {
		if err := os.Chown(pwfile, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	out, err := s.command("initdb", "-D", data, "-U", s.user, "--pwfile", pwfile,
		"--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C").CombinedOutput()
	if err != nil {
		os.RemoveAll(data) // a half-made cluster would be taken for one next time
		return fmt.Errorf("initdb %s: %v\n%s", data, err, out)
	}
	return nil
}

// start runs the postmaster from a goroutine locked to its OS thread for
// the server's life: the parent-death signal is tied to the thread that
// started the child, so that thread must not exit before the server.
func (s *Server) start(ctx context.Context, data string) error {
	logPath := filepath.Join(s.Dir, "server.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if s.cred != nil {
		os.Chown(logPath, int(s.cred.Uid), int(s.cred.Gid))
	}
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		defer logf.Close()
		cmd := s.command("postgres", "-D", data, "-p", strconv.Itoa(s.Port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
			"-c", "max_connections=50")
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr.Pdeathsig = syscall.SIGINT // fast shutdown
		cmd.SysProcAttr.Setpgid = true             // Ctrl-C goes to dev, which stops the server in order
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		s.proc = cmd.Process
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := pgx.Connect(cctx, s.url("postgres"))
		cancel()
		if err == nil {
			c.Close(ctx)
			s.exited = exited
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("postgres exited (%v); its log, %s:\n%s", werr, logPath, tail(logPath, 20))
		default:
		}
		if ctx.Err() != nil {
			// Stopped while starting: a fast shutdown, as Stop does.
			s.proc.Signal(syscall.SIGINT)
			<-exited
			return fmt.Errorf("postgres: stopped while starting: %w", ctx.Err())
		}
		if time.Now().After(deadline) {
			s.proc.Signal(syscall.SIGQUIT)
			<-exited
			return fmt.Errorf("postgres did not accept connections within 60s (%v); its log, %s:\n%s", err, logPath, tail(logPath, 20))
		}
		time.Sleep(100 * time.Millisecond) // polling until the server is up, with a deadline
	}
}

func (s *Server) ensureDatabase(ctx context.Context) error {
	c, err := pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", s.database).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{s.database}.Sanitize()); err != nil {
			return fmt.Errorf("creating database %s: %w", s.database, err)
		}
	}
	return nil
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.BinDir, name), args...)
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

func (s *Server) url(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(s.user, s.password), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// URL is the projection database's connection URL, password included.
func (s *Server) URL() string { return s.url(s.database) }

// Redacted is URL without the password, for logs and banners.
func (s *Server) Redacted() string {
	u, _ := url.Parse(s.URL())
	return u.Redacted()
}

// Stop shuts the server down (fast shutdown: sessions end, data is
// flushed) and waits for it, up to 30 s before killing it.
func (s *Server) Stop() error {
	if s.proc == nil {
		return nil
	}
	s.proc.Signal(syscall.SIGINT)
	select {
	case err := <-s.exited:
		return err // nil when the server exited 0
	case <-time.After(30 * time.Second):
		s.proc.Kill()
		<-s.exited
		return errors.New("postgres did not stop within 30s: killed")
	}
}

// mkdirAs creates dir and any missing parents (mode 0700), owned by cred's
// user when set.
func mkdirAs(dir string, cred *syscall.Credential) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if cred != nil {
			if err := os.Chown(missing[i], int(cred.Uid), int(cred.Gid)); err != nil {
				return err
			}
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
