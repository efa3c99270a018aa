package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// childEnv marks a process started by the harness to run a role. The test
// binary, which cannot take subcommands, checks it in TestMain.
const childEnv = "PIMHOOK_BENCH_CHILD"

// child is a process the harness started and must end.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser // nil for pimhook
	done  chan struct{}  // closed when the process has exited
	err   error          // the exit status, once done is closed
}

func (c *child) wait() {
	c.err = c.cmd.Wait()
	close(c.done)
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop asks the process to end (closing its stdin, or sig), waits up to
// grace and then kills it.
func (c *child) stop(sig os.Signal, grace time.Duration) error {
	if c.stdin != nil {
		c.stdin.Close()
	}
	if sig != nil {
		_ = c.cmd.Process.Signal(sig)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s did not stop within %v: killed", c.name, grace)
	}
	if c.err != nil {
		return fmt.Errorf("%s: %w", c.name, c.err)
	}
	return nil
}

// startRole starts this binary again in a hidden role and returns the
// address it announces on its first line of output. extra files are the
// child's descriptors 3 and up.
func startRole(ctx context.Context, role string, extra ...*os.File) (*child, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("start %s: %w", role, err)
	}
	cmd := exec.Command(self, role)
	cmd.Env = append(os.Environ(), childEnv+"="+role)
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = childAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", fmt.Errorf("start %s: %w", role, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", fmt.Errorf("start %s: %w", role, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", role, err)
	}
	c := &child{name: role, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go c.wait()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case addr := <-line:
		if addr != "" {
			return c, addr, nil
		}
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	_ = c.stop(nil, time.Second)
	return nil, "", fmt.Errorf("start %s: it announced no address (%v)", role, c.err)
}

// buildPimhook builds ./cmd/pimhook into dir and returns the binary's path.
func buildPimhook(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "pimhook")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/pimhook/pimhook/cmd/pimhook")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build pimhook: %w\n%s", err, out)
	}
	return bin, nil
}

// benchAPIKey is the API key every pimhook the harness starts is given.
const benchAPIKey = "phk_pimhook_bench"

// pimhookProc is a pimhook server the harness started, with its own data
// directory.
type pimhookProc struct {
	*child
	api     *api
	logPath string
	// debug is the base URL of its profiles, when cfg.Profiles asks for them.
	debug string
}

// startPimhook starts `pimhook serve` on a fresh data directory under dir
// and waits until it answers /healthz.
func startPimhook(ctx context.Context, bin, dir string, cfg Config) (*pimhookProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("start pimhook: %w", err)
	}
	addr, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("start pimhook: %w", err)
	}
	logPath := filepath.Join(dir, "pimhook.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start pimhook: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve",
		"--listen", addr,
		"--data-dir", filepath.Join(dir, "data"),
		"--api-key", benchAPIKey,
		"--allow-targets", "127.0.0.0/8",
		"--shared-workers", strconv.Itoa(cfg.SharedWorkers),
		"--log-level", cfg.LogLevel,
	)
	debug := ""
	if cfg.Profiles != "" {
		daddr, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("start pimhook: %w", err)
		}
		cmd.Args = append(cmd.Args, "--debug-listen", daddr)
		debug = "http://" + daddr
	}
	// Only the flags configure it: no PIMHOOK_* from the caller's shell.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIMHOOK_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pimhook: %w", err)
	}
	c := &child{name: "pimhook", cmd: cmd, done: make(chan struct{})}
	go c.wait()
	p := &pimhookProc{child: c, api: newAPI("http://"+addr, benchAPIKey, cfg.Clients), logPath: logPath, debug: debug}
	if err := p.waitHealthy(ctx); err != nil {
		_ = c.stop(syscall.SIGKILL, 5*time.Second)
		return nil, fmt.Errorf("start pimhook: %w\n%s", err, p.logTail())
	}
	return p, nil
}

func (p *pimhookProc) waitHealthy(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.api.base+"/healthz", nil)
		if resp, err := p.api.hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("pimhook exited: %v", p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return errors.New("pimhook did not answer /healthz within 60s")
}

// shutdown stops pimhook with SIGTERM, as an operator would, and kills it
// if it takes longer than its drain timeout allows.
func (p *pimhookProc) shutdown() error {
	p.api.hc.CloseIdleConnections()
	return p.stop(syscall.SIGTERM, 30*time.Second)
}

// logTail returns the end of pimhook's log, for error messages.
func (p *pimhookProc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "pimhook log (end):\n" + string(b)
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// procStatusKiB returns a field of /proc/<pid>/status in KiB (VmHWM is the
// peak resident set, VmRSS the current one); 0 where there is no /proc.
func procStatusKiB(pid int, field string) int64 {
	return procStatusKiBFile(fmt.Sprintf("/proc/%d/status", pid), field)
}

// procStatusKiBFile reads a "Field: N kB" line of a /proc file.
func procStatusKiBFile(path, field string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(field+":")); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(string(f[0]), 10, 64)
				return n
			}
		}
	}
	return 0
}

// resetPeakRSS resets the VmHWM of pid to its current resident set, as
// Linux allows through /proc/<pid>/clear_refs, and reports whether it could.
func resetPeakRSS(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on
// every Linux architecture Go runs on.
const clockTicks = 100

// procCPU returns the user and system CPU time pid used so far; 0 where
// there is no /proc.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state is field 3; utime and stime are 14 and 15.
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * time.Second / clockTicks
}

// profile fetches one of pimhook's pprof profiles (path and query under
// /debug/pprof/) into file; it does nothing unless profiles were asked for.
func (p *pimhookProc) profile(ctx context.Context, path, file string) error {
	if p.debug == "" {
		return nil
	}
	return save(ctx, p.debug+"/debug/pprof/"+path, file)
}

// snapshot saves pimhook's /metrics, whose Go runtime and process figures
// tell where memory the heap profile does not show went; it does nothing
// unless profiles were asked for.
func (p *pimhookProc) snapshot(ctx context.Context, file string) error {
	if p.debug == "" {
		return nil
	}
	return save(ctx, p.api.base+"/metrics", file)
}

// save writes what a GET of url answers into file.
func save(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("get %s: %w", url, err)
	}
	return f.Close()
}
