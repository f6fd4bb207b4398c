package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/modfile"

	"github.com/auditledger/auditledger/test/pgtest"
	"github.com/auditledger/auditledger/test/versitygw"
)

// TestComposeStack runs docker-compose.yml without a container engine (none
// can run on the machines the tests run on): each service's command runs
// natively with the same arguments, environment, configuration files and
// volume paths, in a root of its own (the machine's root as a read-only
// lower layer, its volumes mounted at their container paths), as the image's
// user, on a private network where every service name resolves to the
// loopback address and every port is the one compose uses. Services start in
// dependency order, each condition (started, healthy by its own health
// check, completed) awaited; then one event file goes in through the emit
// tool and comes out of the verify tool, and the gateway profile takes a
// psql statement with a token from its identity provider to the verified
// log, masked by its policy.
//
// It needs root (namespaces, mounts, chroot), as CI has: it re-runs itself
// inside new network and mount namespaces, which vanish with it.
func TestComposeStack(t *testing.T) {
	if os.Getenv("AUDITLEDGER_COMPOSE_NS") == "" {
		if os.Geteuid() != 0 {
			if os.Getenv("CI") != "" {
				t.Fatal("the compose test needs root (network and mount namespaces, chroot); CI runs the tests as root")
			}
			t.Skip("the compose test needs root: run the tests as root, as CI does")
		}
		cmd := exec.Command("unshare", "--net", "--mount", "--propagation", "private",
			os.Args[0], "-test.run", "^TestComposeStack$", "-test.v", "-test.timeout", "10m")
		cmd.Env = append(os.Environ(), "AUDITLEDGER_COMPOSE_NS=1", builtEnv+"="+binary)
		out, err := cmd.CombinedOutput()
		t.Logf("inside the namespaces:\n%s", out)
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestComposeStack")) {
			t.Fatalf("compose run: %v", err)
		}
		return
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v %s", err, out)
	}

	repo, _ := filepath.Abs("..")
	raw, err := os.ReadFile(filepath.Join(repo, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	c := newComposeRun(t, repo, &cf)
	c.checkImages()

	// docker compose up -d --wait
	c.up()
	// The ledger read from NATS's monitoring port that deploy/nats.conf
	// fsyncs every message: an acknowledged event survives a power loss.
	if b, _ := os.ReadFile(c.state["ledger"].log); !bytes.Contains(b, []byte("fsyncs every message before acknowledging it")) {
		t.Errorf("the ledger did not confirm that NATS fsyncs every message:\n%s", b)
	}
	// docker compose run --rm -T emit < ledger/testdata/sample.jsonl
	sample, _ := os.ReadFile(filepath.Join(repo, "ledger", "testdata", "sample.jsonl"))
	if out, err := c.run("emit", sample); err != nil {
		t.Fatalf("emit: %v\n%s", err, out)
	}
	// docker compose run --rm verify, until the writer has sealed them
	c.verifiedAtLeast(12)

	// docker compose --profile gateway up -d --wait
	c.up("gateway")
	token, err := c.run("token", nil)
	if err != nil {
		t.Fatalf("token: %v\n%s", err, token)
	}
	psql := exec.Command("psql", "-X", "-A", "-t", "host=127.0.0.1 port=7343 user=alice dbname=auditledger sslmode=disable",
		"-c", "SELECT 'alice@example.com' AS email")
	psql.Env = append(os.Environ(), "PGPASSWORD="+strings.TrimSpace(string(token)))
	out, err := psql.CombinedOutput()
	if err != nil {
		c.logs()
		t.Fatalf("psql through the gateway: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "alice@example.com") || !strings.Contains(string(out), "@example.com") {
		t.Fatalf("the gateway's policy (deploy/policy.yaml) should mask the address partially; psql printed %q", out)
	}
	// The gateway holds no superuser login, and a client reaches the
	// target database only: naming the projection is refused (and
	// recorded), and the gateway's own login cannot open it either.
	other := exec.Command("psql", "-X", "-A", "-t", "host=127.0.0.1 port=7343 user=alice dbname=projection sslmode=disable", "-c", "SELECT 1")
	other.Env = psql.Env
	if out, err := other.CombinedOutput(); err == nil || !strings.Contains(string(out), `database "projection" is not one this proxy serves (allowed: auditledger)`) {
		t.Errorf("psql to the projection through the gateway: %v\n%s", err, out)
	}
	for _, login := range []struct{ url, want string }{
		{"postgres://gateway:gateway-local@127.0.0.1:5432/projection?sslmode=disable", "permission denied for database"},
		{"postgres://gateway:gateway-local@127.0.0.1:5432/auditledger?sslmode=disable", "f"}, // not a superuser
		{"postgres://reader:reader-local@127.0.0.1:5432/auditledger?sslmode=disable", "permission denied for database"},
	} {
		out, _ := exec.Command("psql", "-X", "-A", "-t", login.url, "-c", "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").CombinedOutput()
		if got := strings.TrimSpace(string(out)); login.want == "f" && got != "f" || login.want != "f" && !strings.Contains(got, login.want) {
			t.Errorf("psql %s: %s, want %q", login.url, out, login.want)
		}
	}
	c.verifiedAtLeast(16)
	// The read path: the projector has the log in PostgreSQL, and the
	// gateway's API serves it to an auditor.
	tok := exec.Command(binary, "token", "--issuer", "http://idp:7342", "--client-id", "carol")
	tok.Env = append(os.Environ(), "AUDITLEDGER_CLIENT_SECRET=carol-dev-secret")
	carol, err := tok.Output()
	if err != nil {
		t.Fatalf("carol's token: %v", err)
	}
	var events struct {
		Events []json.RawMessage `json:"events"`
	}
	deadline := time.Now().Add(time.Minute)
	for {
		req, _ := http.NewRequest("GET", "http://127.0.0.1:7341/v1/events?limit=1000", nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(carol)))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			json.Unmarshal(body, &events)
			if resp.StatusCode == 200 && len(events.Events) >= 15 {
				break
			}
			err = fmt.Errorf("%d %d events: %.300s", resp.StatusCode, len(events.Events), body)
		}
		if time.Now().After(deadline) {
			c.logs()
			t.Fatalf("/v1/events through the gateway: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Evidence: carol asks the gateway's API for the tenant's bundle; it
	// verifies with the keys the init job made (allowed_signers, the log's
	// verifier key), its segments locked on versitygw: no --allow-unlocked.
	var first struct {
		Event struct {
			Tenant string `json:"tenant"`
		} `json:"event"`
	}
	json.Unmarshal(events.Events[0], &first)
	bundle := c.evidence(strings.TrimSpace(string(carol)), first.Event.Tenant)
	keys := filepath.Join(c.dir, "volumes", "keys")
	if out, err := c.hostTool("evidence", "verify", bundle, "--vkey", filepath.Join(keys, "ledger.vkey"), "--allowed-signers", filepath.Join(keys, "allowed_signers"),
		"--retention", "720h"); // the store URL's retention=30d: the log records no tenant retention; err != nil ||
	!strings.Contains(string(out), "OK ") || strings.Contains(string(out), "warning") {
		t.Errorf("evidence verify of the gateway's bundle: %v\n%s", err, out)
	}

	// The statement is in the verified log, by alice from the development
	// provider, masked; the address it held was replaced before recording.
	logOut, err := c.hostTool("log", "--store", "s3://auditledger/log?endpoint=127.0.0.1:7070&insecure=1", "--json", "--type", "command.executed,mask.applied")
	if err != nil {
		t.Fatalf("log: %v\n%s", err, logOut)
	}
	for _, want := range []string{`"type":"command.executed"`, `SELECT '[REDACTED:masked_column]' AS email`, `"dev_identity":true`, `"type":"mask.applied"`, `"rule_id":"pii-email"`} {
		if !strings.Contains(string(logOut), want) {
			t.Errorf("the sealed log lacks %s:\n%s", want, logOut)
		}
	}
}

// composeFile is the part of the compose format the stack uses.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       *yaml.Node        `yaml:"build"`
	PullPolicy  string            `yaml:"pull_policy"`
	User        string            `yaml:"user"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   composeDeps       `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Profiles  []string `yaml:"profiles"`
	StdinOpen bool     `yaml:"stdin_open"`
}

// composeDeps is depends_on in either form: a list (condition
// service_started) or a map of conditions.
type composeDeps map[string]string

func (d *composeDeps) UnmarshalYAML(n *yaml.Node) error {
	*d = composeDeps{}
	if n.Kind == yaml.SequenceNode {
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, s := range names {
			(*d)[s] = "service_started"
		}
		return nil
	}
	var m map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	for s, c := range m {
		(*d)[s] = c.Condition
	}
	return nil
}

// image is how an image's container runs natively: its entrypoint, its
// default user, the files the image holds that the machine does not (its
// binaries), and its PATH.
type image struct {
	entrypoint, cmd []string
	user            string
	files           map[string]string // container path → file on this machine
	path            string
	// start, if set, runs before the service's command (the postgres
	// image's first-start initialisation).
	start func(c *composeRun, name string, svc composeService) error
}

type composeRun struct {
	t       *testing.T
	repo    string
	cf      *composeFile
	dir     string
	images  map[string]*image
	mounts  []string // mount points, to unmount in reverse
	state   map[string]*composeProc
	pgMajor int
}

type composeProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string
}

func newComposeRun(t *testing.T, repo string, cf *composeFile) *composeRun {
	c := &composeRun{t: t, repo: repo, cf: cf, dir: t.TempDir(), state: map[string]*composeProc{}}
	// Unmount before the temporary directory is removed (cleanups run
	// last-registered first): nothing of the machine is ever removed
	// through a mount.
	t.Cleanup(c.down)
	hosts := "127.0.0.1 localhost\n::1 localhost\n"
	for name := range cf.Services {
		hosts += "127.0.0.1 " + name + "\n"
	}
	c.write("etc-hosts", hosts)
	// The test's own clients (psql, the binary) resolve the service names
	// too: this mount namespace is the test's alone.
	c.bind(filepath.Join(c.dir, "etc-hosts"), "/etc/hosts", true)

	bin := func(name string, args ...string) string {
		out := filepath.Join(c.dir, "bin", name)
		cmd := exec.Command("go", append([]string{"build", "-o", out}, args...)...)
		cmd.Dir = repo
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, b)
		}
		return out
	}
	natsServer := bin("nats-server", "github.com/nats-io/nats-server/v2")
	gw, err := versitygw.Binary()
	if err != nil {
		t.Fatal(err)
	}
	pgBin, err := pgtest.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`/(\d+)/bin`).FindStringSubmatch(pgBin); m != nil {
		c.pgMajor, _ = strconv.Atoi(m[1])
	}
	const path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	c.images = map[string]*image{
		// deploy/Dockerfile: ENTRYPOINT ["auditledger"], USER auditledger (10001).
		"auditledger:local": {entrypoint: []string{"auditledger"}, user: "10001", files: map[string]string{"/usr/local/bin/auditledger": binary}, path: path},
		"nats":              {entrypoint: []string{"nats-server"}, user: "0", files: map[string]string{"/usr/local/bin/nats-server": natsServer}, path: path},
		"versity/versitygw": {entrypoint: []string{"/app/versitygw"}, user: "0", files: map[string]string{"/app/versitygw": gw}, path: path},
		// The postgres image: its entrypoint initialises an empty data
		// volume, then runs its command, postgres (PGDATA).
		"postgres": {entrypoint: []string{"postgres"}, cmd: []string{"-D", "/var/lib/postgresql/data"}, user: "postgres", path: pgBin + ":" + path, start: pgImageInit},
	}
	return c
}

func (c *composeRun) write(name, content string) string {
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// checkImages holds the pinned images to what the tests run: the NATS
// release go.mod requires, the versitygw release, PostgreSQL's major
// version; and the image every auditledger service shares to one build.
func (c *composeRun) checkImages() {
	t := c.t
	gomod, err := os.ReadFile(filepath.Join(c.repo, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	mf, err := modfile.Parse("go.mod", gomod, nil)
	if err != nil {
		t.Fatal(err)
	}
	var natsVersion string
	for _, r := range mf.Require {
		if r.Mod.Path == "github.com/nats-io/nats-server/v2" {
			natsVersion = strings.TrimPrefix(r.Mod.Version, "v")
		}
	}
	df, _ := os.ReadFile(filepath.Join(c.repo, "deploy", "Dockerfile"))
	for _, want := range []string{`ENTRYPOINT ["auditledger"]`, "useradd -u 10001", "USER auditledger"} {
		if !bytes.Contains(df, []byte(want)) {
			t.Errorf("deploy/Dockerfile no longer has %s: the native run's image table must change with it", want)
		}
	}
	builds := 0
	for name, svc := range c.cf.Services {
		repoName, tag, _ := strings.Cut(svc.Image, ":")
		switch {
		case svc.Image == "auditledger:local":
			if svc.Build != nil {
				builds++
			} else if svc.PullPolicy != "never" {
				t.Errorf("service %s: an image built by another service needs pull_policy: never", name)
			}
		case repoName == "nats":
			if tag != natsVersion+"-alpine" {
				t.Errorf("service %s: image %s, but go.mod requires nats-server v%s: use nats:%s-alpine", name, svc.Image, natsVersion, natsVersion)
			}
		case repoName == "versity/versitygw":
			if tag != versitygw.Version {
				t.Errorf("service %s: image %s, but the tests run versitygw %s", name, svc.Image, versitygw.Version)
			}
		case repoName == "postgres":
			if !strings.HasPrefix(tag, strconv.Itoa(c.pgMajor)) {
				t.Errorf("service %s: image %s, but the tests run PostgreSQL %d", name, svc.Image, c.pgMajor)
			}
		default:
			t.Errorf("service %s: image %q has no native counterpart in this test (pin it, and add it to the image table)", name, svc.Image)
		}
		for _, p := range svc.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %s beyond the loopback interface", name, p)
			}
		}
	}
	if builds != 1 {
		t.Errorf("%d services build auditledger:local; one should, the others use its image", builds)
	}
	di, _ := os.ReadFile(filepath.Join(c.repo, ".dockerignore"))
	if !bytes.Contains(di, []byte("auditledger-data")) {
		t.Error(".dockerignore must keep auditledger-data/ (dev's signing keys) out of the image")
	}
	if t.Failed() {
		t.FailNow()
	}
}

// up starts every service of the profiles (none: the services without a
// profile) and what they depend on, in dependency order, and waits for
// each to be healthy (or started, without a health check), as docker
// compose up --wait.
func (c *composeRun) up(profiles ...string) {
	var names []string
	for name, svc := range c.cf.Services {
		if len(svc.Profiles) == 0 && len(profiles) == 0 || slices.ContainsFunc(svc.Profiles, func(p string) bool { return slices.Contains(profiles, p) }) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		c.ensure(n, "")
	}
}

// ensure starts name (after its dependencies) and waits for condition.
func (c *composeRun) ensure(name, condition string) {
	t := c.t
	svc, ok := c.cf.Services[name]
	if !ok {
		t.Fatalf("depends on unknown service %q", name)
	}
	p := c.state[name]
	if p == nil {
		deps := make([]string, 0, len(svc.DependsOn))
		for d := range svc.DependsOn {
			deps = append(deps, d)
		}
		slices.Sort(deps)
		for _, d := range deps {
			c.ensure(d, svc.DependsOn[d])
		}
		p = c.start(name, svc, nil)
	}
	switch condition {
	case "service_started":
	case "service_completed_successfully":
		<-p.done
		if p.err != nil {
			c.logs()
			t.Fatalf("service %s did not complete successfully: %v", name, p.err)
		}
	case "service_healthy", "":
		if svc.Healthcheck.Test == nil {
			if condition != "" {
				t.Fatalf("service %s is depended on as healthy but has no health check", name)
			}
			return
		}
		c.waitHealthy(name, svc, p)
	default:
		t.Fatalf("service %s: unknown condition %q", name, condition)
	}
}

// waitHealthy runs the service's health check in its root until it passes
// (for as long as compose would: interval × retries, here a minute).
func (c *composeRun) waitHealthy(name string, svc composeService, p *composeProc) {
	test := svc.Healthcheck.Test
	var argv []string
	switch test[0] {
	case "CMD":
		argv = test[1:]
	case "CMD-SHELL":
		argv = []string{"/bin/sh", "-c", test[1]}
	default:
		c.t.Fatalf("service %s: health check %v: want CMD or CMD-SHELL", name, test)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-p.done:
			c.logs()
			c.t.Fatalf("service %s exited before it was healthy: %v", name, p.err)
		default:
		}
		cmd := c.command(name, svc, argv)
		out, err := cmd.CombinedOutput()
		if err == nil {
			c.t.Logf("service %s healthy", name)
			return
		}
		if time.Now().After(deadline) {
			c.logs()
			c.t.Fatalf("service %s not healthy after a minute: %v %s", name, err, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// root makes the service's root directory once: the machine's root as the
// lower layer of an overlay (writes stay in the service's upper layer),
// with the image's files, the service's volumes, /etc/hosts, /proc and a
// small /dev mounted into it.
func (c *composeRun) root(name string, svc composeService) string {
	t := c.t
	base := filepath.Join(c.dir, "roots", name)
	root := filepath.Join(base, "root")
	if _, err := os.Stat(filepath.Join(base, "ready")); err == nil {
		return root
	}
	for _, d := range []string{"upper", "work", "root"} {
		os.MkdirAll(filepath.Join(base, d), 0o755)
	}
	c.mount("overlay", root, "overlay", 0, fmt.Sprintf("lowerdir=/,upperdir=%s/upper,workdir=%s/work", base, base))
	c.mount("proc", filepath.Join(root, "proc"), "proc", 0, "")
	c.mount("tmpfs", filepath.Join(root, "dev"), "tmpfs", 0, "mode=755")
	for dev, num := range map[string]int{"null": 3, "zero": 5, "random": 8, "urandom": 9} {
		if err := syscall.Mknod(filepath.Join(root, "dev", dev), syscall.S_IFCHR|0o666, 1<<8|num); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(root, "dev", dev), 0o666)
	}
	os.MkdirAll(filepath.Join(root, "dev", "shm"), 0o1777)
	c.mount("tmpfs", filepath.Join(root, "dev", "shm"), "tmpfs", 0, "mode=1777")
	c.bind(filepath.Join(c.dir, "etc-hosts"), filepath.Join(root, "etc", "hosts"), true)
	for dst, src := range c.imageOf(name, svc).files {
		c.bind(src, filepath.Join(root, dst), true)
	}
	for _, v := range svc.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			t.Fatalf("service %s: volume %q: want SOURCE:PATH[:ro]", name, v)
		}
		src, dst, ro := parts[0], parts[1], len(parts) > 2 && parts[2] == "ro"
		if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
			src = filepath.Join(c.repo, src)
		} else {
			// A named volume: a fresh directory, root's, 0755, as Docker
			// makes one.
			src = filepath.Join(c.dir, "volumes", src)
			os.MkdirAll(src, 0o755)
		}
		c.bind(src, filepath.Join(root, dst), ro)
	}
	os.WriteFile(filepath.Join(base, "ready"), nil, 0o644)
	return root
}

func (c *composeRun) mount(src, dst, fstype string, flags uintptr, data string) {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := syscall.Mount(src, dst, fstype, flags, data); err != nil {
		c.t.Fatalf("mount %s on %s: %v", src, dst, err)
	}
	c.mounts = append(c.mounts, dst)
}

// bind mounts src (a file or directory) at dst, read-only if ro.
func (c *composeRun) bind(src, dst string, ro bool) {
	fi, err := os.Stat(src)
	if err != nil {
		c.t.Fatalf("volume source: %v", err)
	}
	if fi.IsDir() {
		os.MkdirAll(dst, 0o755)
	} else {
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if _, err := os.Stat(dst); err != nil {
			os.WriteFile(dst, nil, 0o644)
		}
	}
	if err := syscall.Mount(src, dst, "", syscall.MS_BIND, ""); err != nil {
		c.t.Fatalf("bind %s on %s: %v", src, dst, err)
	}
	c.mounts = append(c.mounts, dst)
	if ro {
		if err := syscall.Mount("", dst, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			c.t.Fatalf("read-only %s: %v", dst, err)
		}
	}
}

func (c *composeRun) imageOf(name string, svc composeService) *image {
	repoName, _, _ := strings.Cut(svc.Image, ":")
	if img, ok := c.images[svc.Image]; ok {
		return img
	}
	if img, ok := c.images[repoName]; ok {
		return img
	}
	c.t.Fatalf("service %s: no native counterpart for image %s", name, svc.Image)
	return nil
}

// command is argv run in the service's root, as its user, with its
// environment.
func (c *composeRun) command(name string, svc composeService, argv []string) *exec.Cmd {
	t := c.t
	img := c.imageOf(name, svc)
	root := c.root(name, svc)
	// Resolve the program in the root's PATH, as the container would.
	prog := argv[0]
	if !strings.Contains(prog, "/") {
		for _, d := range strings.Split(img.path, ":") {
			if fi, err := os.Stat(filepath.Join(root, d, prog)); err == nil && !fi.IsDir() {
				prog = filepath.Join(d, prog)
				break
			}
		}
	}
	cmd := exec.Command(prog, argv[1:]...)
	cmd.Path = prog
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + img.path, "HOME=/tmp", "HOSTNAME=" + name}
	if v := os.Getenv("GORACE"); v != "" {
		// The race runtime's options (TestMain's) for the -race build of
		// auditledger; a binary built without -race ignores them.
		cmd.Env = append(cmd.Env, "GORACE="+v)
	}
	for k, v := range svc.Environment {
		cmd.Env = append(cmd.Env, k+"="+interpolate(t, v))
	}
	u := svc.User
	if u == "" {
		u = img.user
	}
	uid, gid := lookupUser(t, u)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}, Setpgid: true}
	return cmd
}

func lookupUser(t *testing.T, name string) (uint32, uint32) {
	if n, err := strconv.Atoi(name); err == nil {
		return uint32(n), uint32(n)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uint32(uid), uint32(gid)
}

// start runs the service's entrypoint and command.
func (c *composeRun) start(name string, svc composeService, stdin []byte) *composeProc {
	img := c.imageOf(name, svc)
	if img.start != nil {
		if err := img.start(c, name, svc); err != nil {
			c.t.Fatalf("service %s: %v", name, err)
		}
	}
	entry := img.entrypoint
	if svc.Entrypoint != nil {
		entry = svc.Entrypoint
	}
	command := svc.Command
	if command == nil {
		command = img.cmd
	}
	args := make([]string, 0, len(command))
	for _, a := range command {
		args = append(args, interpolate(c.t, a))
	}
	cmd := c.command(name, svc, append(slices.Clone(entry), args...))
	p := &composeProc{cmd: cmd, done: make(chan struct{}), log: filepath.Join(c.dir, name+".log")}
	f, err := os.Create(p.log)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("service %s: %v", name, err)
	}
	c.t.Logf("service %s started: %s", name, strings.Join(cmd.Args, " "))
	c.state[name] = p
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p
}

// run runs a tool service to completion (docker compose run --rm -T) and
// returns its output.
func (c *composeRun) run(name string, stdin []byte) ([]byte, error) {
	svc := c.cf.Services[name]
	for d, cond := range svc.DependsOn {
		c.ensure(d, cond)
	}
	delete(c.state, name)
	p := c.start(name, svc, stdin)
	<-p.done
	delete(c.state, name)
	out, _ := os.ReadFile(p.log)
	return out, p.err
}

// verifiedAtLeast runs the verify tool until the log holds n records.
func (c *composeRun) verifiedAtLeast(n int) {
	re := regexp.MustCompile(`records\s+(\d+) in`)
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := c.run("verify", nil)
		if m := re.FindSubmatch(out); err == nil && m != nil {
			if got, _ := strconv.Atoi(string(m[1])); got >= n {
				c.t.Logf("verify: %d records, OK", got)
				return
			}
		}
		if time.Now().After(deadline) {
			c.logs()
			c.t.Fatalf("verify did not show %d records in a minute: %v\n%s", n, err, out)
		}
		time.Sleep(time.Second)
	}
}

// evidence asks the gateway's API for a bundle of tenant's last hour and
// returns the file it downloaded.
func (c *composeRun) evidence(token, tenant string) string {
	t := c.t
	call := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, "http://127.0.0.1:7341"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	now := time.Now().UTC()
	code, b := call("POST", "/v1/evidence", fmt.Sprintf(`{"tenant":%q,"from":%q,"to":%q}`, tenant, now.Add(-time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)))
	var st struct{ ID, Status, Error, Download string }
	if json.Unmarshal(b, &st); code != 202 {
		c.logs()
		t.Fatalf("POST /v1/evidence: %d %s", code, b)
	}
	for deadline := time.Now().Add(time.Minute); st.Status != "ready"; time.Sleep(500 * time.Millisecond) {
		if st.Status == "failed" || time.Now().After(deadline) {
			c.logs()
			t.Fatalf("evidence bundle %s: %s %s", st.ID, st.Status, st.Error)
		}
		_, b = call("GET", "/v1/evidence/"+st.ID, "")
		json.Unmarshal(b, &st)
	}
	code, b = call("GET", st.Download, "")
	if code != 200 {
		t.Fatalf("download: %d %s", code, b)
	}
	file := filepath.Join(c.dir, "evidence.zip")
	os.WriteFile(file, b, 0o644)
	return file
}

// hostTool runs the auditledger binary on the test's side of the network,
// with the stack's S3 credentials.
func (c *composeRun) hostTool(args ...string) ([]byte, error) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=auditledger", "AWS_SECRET_ACCESS_KEY=auditledger-local-secret")
	return cmd.CombinedOutput()
}

// logs prints the tail of every service's output.
func (c *composeRun) logs() {
	for name, p := range c.state {
		b, _ := os.ReadFile(p.log)
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		c.t.Logf("--- %s:\n%s", name, b)
	}
}

// down stops the services (SIGTERM, then SIGKILL after ten seconds, as
// docker compose down) and unmounts every mount, last first.
func (c *composeRun) down() {
	for _, p := range c.state {
		if p.cmd.Process != nil {
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		}
	}
	for name, p := range c.state {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			c.t.Errorf("service %s did not stop within ten seconds of SIGTERM", name)
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	for i := len(c.mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(c.mounts[i], syscall.MNT_DETACH); err != nil {
			c.t.Errorf("unmount %s: %v", c.mounts[i], err)
		}
	}
	c.mounts = nil
}

var composeVar = regexp.MustCompile(`\$\{(\w+)(?::([-?])([^}]*))?\}`)

// interpolate expands ${VAR}, ${VAR:-default} and ${VAR:?message} from the
// test's environment, as compose does.
func interpolate(t *testing.T, s string) string {
	return composeVar.ReplaceAllStringFunc(s, func(m string) string {
		g := composeVar.FindStringSubmatch(m)
		if v := os.Getenv(g[1]); v != "" {
			return v
		}
		switch g[2] {
		case "-":
			return g[3]
		case "?":
			t.Fatalf("%s is required: %s", g[1], g[3])
		}
		return ""
	})
}

// pgImageInit does what the postgres image's entrypoint does on a first
// start with an empty data volume: initdb with POSTGRES_USER and
// POSTGRES_PASSWORD (password authentication from the network), then,
// on a temporary server listening on a Unix socket only, POSTGRES_DB and
// the SQL files in /docker-entrypoint-initdb.d run by psql as
// POSTGRES_USER in POSTGRES_DB; the image's command then runs postgres
// listening on every address.
func pgImageInit(c *composeRun, name string, svc composeService) error {
	data := "/var/lib/postgresql/data"
	root := c.root(name, svc)
	if _, err := os.Stat(filepath.Join(root, data, "PG_VERSION")); err == nil {
		return nil
	}
	uid, gid := lookupUser(c.t, "postgres")
	if err := os.Chown(filepath.Join(root, data), int(uid), int(gid)); err != nil {
		return err
	}
	os.Chmod(filepath.Join(root, data), 0o700)
	env := svc.Environment
	script := fmt.Sprintf(`set -e
echo "$POSTGRES_PASSWORD" > /tmp/pwfile
initdb -D %[1]s -U "$POSTGRES_USER" --pwfile=/tmp/pwfile --auth-local=trust --auth-host=scram-sha-256 >/dev/null
rm /tmp/pwfile
echo "host all all all scram-sha-256" >> %[1]s/pg_hba.conf
echo "listen_addresses = '*'" >> %[1]s/postgresql.conf
pg_ctl -D %[1]s -o "-c listen_addresses='' -c unix_socket_directories=/tmp" -w start >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -h /tmp -U "$POSTGRES_USER" -d postgres -c 'CREATE DATABASE "%[2]s"'
for f in /docker-entrypoint-initdb.d/*.sql; do
	[ -e "$f" ] && psql -X -q -v ON_ERROR_STOP=1 -h /tmp -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$f"
done
pg_ctl -D %[1]s -m fast -w stop >/dev/null
`, data, env["POSTGRES_DB"])
	cmd := c.command(name, svc, []string{"/bin/sh", "-c", script})
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("first start (initdb): %v\n%s", err, out)
	}
	return nil
}
