// Package pgtest starts a throwaway PostgreSQL cluster for tests and gives
// each test an empty database on it.
//
// The cluster is Debian's postgresql (initdb and postgres from
// /usr/lib/postgresql/<version>/bin, or pg_config's bindir), in a temp
// directory, listening on a free 127.0.0.1 port, with trust
// authentication on loopback only. postgres refuses to run as root, so
// under root the server runs as the "postgres" user the package makes. It
// is started on first use, once per test binary, and stopped by Main; a
// test binary killed before Main returns takes the server with it
// (Pdeathsig) and leaves only its temp directory.
//
// Without PostgreSQL installed a test that needs it is skipped; under
// CI=true it fails instead (.ci/run installs postgresql), so a quiet skip
// never passes for a run.
//
// The test cluster trades durability for speed (fsync off): nothing in it
// outlives the test binary. StartCluster with Durable makes one that
// fsyncs as a production server does, for benchmarks.
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//	...
//	url := pgtest.New(t)   // postgres://.../t_123?sslmode=disable
//	if pgtest.Engine() == pgtest.Postgres { ... }
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvEngine names the environment variable that picks the engine the
// bridge's store tests run on: "postgres", or "bbolt" (the default).
// make test runs the store packages once on each.
const EnvEngine = "SMARTBOX_TEST_STORE"

// The engines.
const (
	Bbolt    = "bbolt"
	Postgres = "postgres"
)

// Engine is the store engine the tests run on (EnvEngine).
func Engine() string {
	if os.Getenv(EnvEngine) == Postgres {
		return Postgres
	}
	return Bbolt
}

// Bounds of the test cluster.
const (
	startTimeout = 60 * time.Second // initdb plus the first accepted connection, on a busy CI machine
	stopTimeout  = 15 * time.Second // fast shutdown before SIGKILL
	// maxConnections: each test's stores hold a pool (pgdb.DefaultMaxConns)
	// and the end-to-end tests run several bridges; 400 is far past what
	// one package's tests open at once.
	maxConnections = 400
)

var (
	mainCalled atomic.Bool
	shared     struct {
		sync.Mutex
		c          *Cluster
		err        error
		durable    *Cluster // SharedDurable's
		durableErr error
	}
	dbSeq atomic.Int64
)

// Main runs the package's tests and then stops the shared cluster, if one
// was started. Call it from TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain with more to do after the tests: it runs
// them, stops the clusters started, and returns the exit code.
func Run(m *testing.M) int {
	mainCalled.Store(true)
	code := m.Run()
	shared.Lock()
	for _, c := range []*Cluster{shared.c, shared.durable} {
		if c != nil {
			c.Stop()
		}
	}
	shared.Unlock()
	return code
}

// New makes an empty database on the shared cluster, starting it on first
// use, and returns its URL. The database is dropped when the test ends.
func New(t testing.TB) string {
	t.Helper()
	c := Shared(t)
	return c.NewDatabase(t)
}

// Shared is the test binary's cluster, started on first use.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("pgtest: call pgtest.Main(m) from the package's TestMain, or the cluster outlives the tests")
	}
	shared.Lock()
	defer shared.Unlock()
	if shared.c == nil && shared.err == nil {
		shared.c, shared.err = StartCluster(ClusterOptions{})
	}
	if shared.err != nil {
		unavailable(t, shared.err)
	}
	return shared.c
}

// SharedDurable is the test binary's durable cluster (fsync on, as a
// production server), started on first use: for benchmarks whose figures
// must include the database's writes reaching the disk.
func SharedDurable(t testing.TB) *Cluster {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("pgtest: call pgtest.Main(m) (or Run) from the package's TestMain, or the cluster outlives the tests")
	}
	shared.Lock()
	defer shared.Unlock()
	if shared.durable == nil && shared.durableErr == nil {
		shared.durable, shared.durableErr = StartCluster(ClusterOptions{Durable: true})
	}
	if shared.durableErr != nil {
		unavailable(t, shared.durableErr)
	}
	return shared.durable
}

// ErrNotInstalled: no PostgreSQL server binaries were found.
var ErrNotInstalled = errors.New("postgresql is not installed (apt-get install -y postgresql)")

func unavailable(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") != "true" {
		t.Skipf("pgtest: %v", err)
	}
	t.Fatalf("pgtest: %v", err)
}

// ClusterOptions configure StartCluster.
type ClusterOptions struct {
	// Durable keeps fsync, full-page writes and synchronous commit on, as
	// a production server has them; the default turns them off.
	Durable bool
}

// Cluster is a running PostgreSQL server of its own.
type Cluster struct {
	dir  string // removed by Stop
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when the server process exited
	log  *bytes.Buffer // the server's output, for errors
	mu   sync.Mutex    // guards log (written by the exec copier)
}

type lockedWriter struct{ c *Cluster }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	if w.c.log.Len() > 1<<20 { // the tail matters; bound what is kept
		w.c.log.Reset()
	}
	return w.c.log.Write(p)
}

// StartCluster runs initdb in a new temp directory and starts a server on
// a free loopback port, waiting until it accepts connections.
func StartCluster(o ClusterOptions) (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "smartbox-pgtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, log: &bytes.Buffer{}, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	settings := []string{
		"listen_addresses=127.0.0.1",
		"unix_socket_directories=" + dir,
		"max_connections=" + strconv.Itoa(maxConnections),
		"shared_buffers=64MB",
		"log_min_messages=warning",
	}
	if !o.Durable {
		settings = append(settings, "fsync=off", "synchronous_commit=off", "full_page_writes=off")
	}
	// A port taken between picking and binding fails the start; pick again.
	for attempt := 0; attempt < 5; attempt++ {
		c.port, err = freePort()
		if err != nil {
			return nil, err
		}
		args := []string{"-D", data, "-p", strconv.Itoa(c.port)}
		for _, s := range settings {
			args = append(args, "-c", s)
		}
		c.cmd = exec.Command(filepath.Join(bin, "postgres"), args...)
		c.cmd.Dir = dir
		c.cmd.Stdout, c.cmd.Stderr = lockedWriter{c}, lockedWriter{c}
		// Pdeathsig: a test binary that dies takes its server along.
		c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
		if err := c.cmd.Start(); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		c.done = make(chan struct{})
		go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(c.cmd, c.done)
		if err = c.waitReady(); err == nil {
			ok = true
			return c, nil
		}
		c.kill()
	}
	return nil, err
}

func (c *Cluster) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("postgres exited at start: %s", c.output())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not accepting connections after %s: %v\n%s", startTimeout, err, c.output())
		}
	}
}

func (c *Cluster) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log.String()
}

// URL is the connection URL of database db on the cluster.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Port is the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// NewDatabase makes an empty database and returns its URL; it is dropped
// (its connections ended first) when the test ends.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbSeq.Add(1))
	if err := c.exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c.URL(name)
}

// Database makes an empty database that lives as long as the cluster (for
// a fixture shared by several tests or benchmarks) and returns its URL.
func (c *Cluster) Database() (string, error) {
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbSeq.Add(1))
	if err := c.exec("CREATE DATABASE " + name); err != nil {
		return "", err
	}
	return c.URL(name), nil
}

func (c *Cluster) exec(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// Stop shuts the server down (fast shutdown, then SIGKILL) and removes
// its directory.
func (c *Cluster) Stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGINT) // fast shutdown: ends sessions, no wait for clients
		select {
		case <-c.done:
		case <-time.After(stopTimeout):
			c.kill()
		}
	}
	os.RemoveAll(c.dir)
}

func (c *Cluster) kill() {
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Kill()
		<-c.done
	}
}

// binDir finds the server binaries: the newest Debian version directory,
// else pg_config's bindir, else initdb on PATH.
func binDir() (string, error) {
	if dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(dirs) > 0 {
		sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
				return d, nil
			}
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := string(bytes.TrimSpace(out))
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNotInstalled
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// credential is who the server runs as: the caller, or under root the
// "postgres" user (Debian's package makes it; useradd makes it if not).
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("running as root, and no postgres user to run the server as: useradd: %v: %s", err, out)
		}
		if u, err = user.Lookup("postgres"); err != nil {
			return nil, err
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
