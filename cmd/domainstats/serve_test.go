package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// inProcessServe is a serve command running in the test process.
type inProcessServe struct {
	addr   string
	log    *lockedBuffer
	cancel context.CancelFunc
	done   chan int
}

// startInProcessServe runs serve with args in the test process on a free
// loopback port, and stops it when the test ends.
func startInProcessServe(t *testing.T, args ...string) *inProcessServe {
	t.Helper()

	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	s := &inProcessServe{log: &lockedBuffer{}, cancel: cancel, done: make(chan int, 1)}
	env := environment{stdin: strings.NewReader(""), stdout: io.Discard, stderr: s.log, listening: listening}
	go func() {
		s.done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), env)
	}()

	select {
	case s.addr = <-listening:
	case code := <-s.done:
		cancel()
		t.Fatalf("serve exited with %d before listening:\n%s", code, s.log.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("serve did not listen within 30 s:\n%s", s.log.String())
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// serveStartup runs serve with args in the test process until it listens
// or exits. It returns the exit status, or -1 when serve started
// listening and was stopped, and the log.
func serveStartup(t *testing.T, args ...string) (int, string) {
	t.Helper()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listening := make(chan string, 1)
	done := make(chan int, 1)
	log := &lockedBuffer{}
	env := environment{stdin: strings.NewReader(""), stdout: io.Discard, stderr: log, listening: listening}
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), env)
	}()

	select {
	case code := <-done:
		return code, log.String()
	case <-listening:
		cancel()
		<-done
		return -1, log.String()
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatalf("serve neither listened nor exited within 30 s:\n%s", log.String())
	}
	return 0, ""
}

// stop stops serve and fails the test unless it exits with 0. Later
// calls do nothing.
func (s *inProcessServe) stop(t *testing.T) {
	t.Helper()

	s.cancel()
	code, ok := <-s.done
	if ok && code != 0 {
		t.Errorf("serve exited with %d after cancel:\n%s", code, s.log.String())
	}
	if ok {
		close(s.done)
	}
}

// prevalence returns the orgPrevalence that serve returns for domain, or
// the HTTP status as text when it is not 200.
func (s *inProcessServe) prevalence(t *testing.T, domain string) string {
	t.Helper()

	resp, err := http.Get("http://" + s.addr + "/api/domains/" + domain + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.Status
	}
	var body statsBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.OrgPrevalence
}

func TestServeIngestsAndFollowsFiles(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "follow.db")
	log := writeFile(t, dir, "events.csv", "domain,machine,time\n"+"a.example.com,m1,2024-01-02T03:04:05Z\n")

	s := startInProcessServe(t, "--db", db, "--now", "latest", "--follow-interval", "10ms", log)
	if got := s.prevalence(t, "a.example.com"); got != "1" {
		t.Errorf("a.example.com prevalence = %q right after start, want 1", got)
	}

	appendFile(t, log, []byte("b.example.com,m2,2024-01-02T03:05:00Z\n"+"a.example.com,m3,2024-01-02T03:05:01Z\n"))

	// The follow pass runs on serve's own ticker, so the test polls with
	// a deadline instead of waiting a fixed time.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.log.String(), `msg="follow pass recorded events"`) {
		if time.Now().After(deadline) {
			t.Fatalf("serve logged no follow pass within 20 s of the append:\n%s", s.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.prevalence(t, "b.example.com"); got != "1" {
		t.Errorf("b.example.com prevalence = %q after the append, want 1", got)
	}
	if got := s.prevalence(t, "a.example.com"); got != "2" {
		t.Errorf("a.example.com prevalence = %q after the append, want 2", got)
	}

	s.stop(t)
	for _, want := range []string{`msg="ingested log files at start"`, "events_recorded=2"} {
		if !strings.Contains(s.log.String(), want) {
			t.Errorf("serve log lacks %q:\n%s", want, s.log.String())
		}
	}

	// serve committed the file's position, so ingest finds nothing new.
	if n := linesRead(t, mustRun(t, "ingest", "--db", db, log).stderr); n != 0 {
		t.Errorf("ingest after serve read %d lines, want 0", n)
	}
}

func TestServeFailsOnUnusableFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "unusable.db")
	log := writeFile(t, dir, "events.csv", "domain,machine,time\n"+"a.example.com,m1,2024-01-02T03:04:05Z\n")

	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"wrong format", []string{"--format", "zeek", log}, 1, "Check --format"},
		{"directory", []string{dir}, 1, "is a directory"},
		{"standard input", []string{"-"}, 2, "cannot read standard input"},
		{"negative interval", []string{"--follow-interval", "-1s", log}, 2, "--follow-interval must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--db", db, "--addr", "127.0.0.1:0"}, tt.args...)
			res := runBinary(t, args...)
			if res.code != tt.code {
				t.Errorf("exit status = %d, want %d", res.code, tt.code)
			}
			if !strings.Contains(res.stderr, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, res.stderr)
			}
		})
	}
}

func TestIngestWhileServingNamesServe(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the store's 5 s lock timeout")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "locked.db")
	log := writeFile(t, dir, "events.csv", "domain,machine,time\n"+"a.example.com,m1,2024-01-02T03:04:05Z\n")
	mustRun(t, "ingest", "--db", db, log)
	startInProcessServe(t, "--db", db)

	res := runBinary(t, "ingest", "--db", db, log)
	if res.code != 1 {
		t.Errorf("ingest on a served store exited with %d, want 1", res.code)
	}
	for _, want := range []string{"another domainstats process, such as serve, has it open", "stop that process", "pass the log files to serve"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("lock error lacks %q:\n%s", want, res.stderr)
		}
	}
}

func TestVerifyWhileServingNamesServe(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the store's 5 s lock timeout")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "locked.db")
	log := writeFile(t, dir, "events.csv", "domain,machine,time\n"+"a.example.com,m1,2024-01-02T03:04:05Z\n")
	mustRun(t, "ingest", "--db", db, log)
	startInProcessServe(t, "--db", db)

	res := runBinary(t, "verify", "--db", db)
	if res.code != 1 {
		t.Errorf("verify on a served store exited with %d, want 1", res.code)
	}
	for _, want := range []string{"another domainstats process, such as serve, has it open", "stop that process"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("lock error lacks %q:\n%s", want, res.stderr)
		}
	}
}

func TestServeTokenFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "tokens.db")
	mustRun(t, "ingest", "--db", db, sampleLogPath)

	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		code    int // -1 for a serve that starts
		want    []string
		notWant []string
	}{
		{
			name:    "private file",
			content: "# readers\ntok-a\ntok-b URL.Read.All\n",
			mode:    0o600,
			code:    -1,
			want:    []string{`msg="loaded bearer tokens"`, "tokens=2"},
			notWant: []string{"tok-a", "tok-b", "accessible to group or others"},
		},
		{
			name:    "readable by others",
			content: "tok-a\n",
			mode:    0o644,
			code:    -1,
			want:    []string{"token file is accessible to group or others", "mode=0644", "tokens=1"},
			notWant: []string{"tok-a"},
		},
		{
			name:    "unknown permission",
			content: "# readers\ntok-a URL.Read.All,Machine.Read.All\n",
			mode:    0o600,
			code:    1,
			want:    []string{"line 2", `unknown permission "Machine.Read.All"`, "the only known permission is URL.Read.All"},
			notWant: []string{"tok-a"},
		},
		{
			name:    "comma without space",
			content: "\ntok-a,URL.Read.All\n",
			mode:    0o600,
			code:    1,
			want:    []string{"line 2", "separate the token and its permissions with a space"},
			notWant: []string{"tok-a"},
		},
		{
			name:    "three fields",
			content: "tok-a\ntok-b URL.Read.All, URL.Read.All\n",
			mode:    0o600,
			code:    1,
			want:    []string{"line 2"},
			notWant: []string{"tok-b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokens := filepath.Join(t.TempDir(), "tokens")
			if err := os.WriteFile(tokens, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(tokens, tt.mode); err != nil {
				t.Fatal(err)
			}

			code, log := serveStartup(t, "--db", db, "--token-file", tokens)
			if code != tt.code {
				t.Errorf("exit status = %d, want %d (-1 is a serve that started)", code, tt.code)
			}

			for _, want := range tt.want {
				if !strings.Contains(log, want) {
					t.Errorf("serve output lacks %q:\n%s", want, log)
				}
			}
			for _, notWant := range tt.notWant {
				if strings.Contains(log, notWant) {
					t.Errorf("serve output contains %q:\n%s", notWant, log)
				}
			}
		})
	}
}

// waitForLog polls the serve log until it contains want, because follow
// passes run on serve's own ticker.
func waitForLog(t *testing.T, s *inProcessServe, want string) {
	t.Helper()

	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log %q within 20 s:\n%s", want, s.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServeFollowsFileCreatedLater(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "later.db")
	absent := filepath.Join(dir, "later.csv")
	empty := writeFile(t, dir, "empty.csv", "")

	s := startInProcessServe(t, "--db", db, "--now", "latest", "--follow-interval", "10ms", absent, empty)
	waitForLog(t, s, `msg="ingested log files at start"`)

	writeFile(t, dir, "later.csv", "domain,machine,time\n"+"a.example.com,m1,2024-01-02T03:04:05Z\n")
	appendFile(t, empty, []byte("domain,machine,time\n"+"b.example.com,m2,2024-01-02T03:04:06Z\n"))
	waitForLog(t, s, "file read without error again")
	deadline := time.Now().Add(20 * time.Second)
	for s.prevalence(t, "a.example.com") != "1" || s.prevalence(t, "b.example.com") != "1" {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not record the events of the files within 20 s:\n%s", s.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	s.stop(t)
	log := s.log.String()
	for _, want := range []string{
		"file=" + absent + ` error="stat ` + absent + `: no such file or directory"`,
		"file=" + empty + ` error="` + empty + `: ingest: unknown format: the input is empty`,
	} {
		if n := strings.Count(log, want); n != 1 {
			t.Errorf("serve logged %q %d times, want once:\n%s", want, n, log)
		}
	}
}

func TestServeLeavesPartialLastLine(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "partial.db")
	log := writeFile(t, dir, "events.csv", "domain,machine,time\n"+
		"a.example.com,m1,2024-01-02T03:04:05Z\n"+
		"b.example.com,m2,2024-01-0")

	s := startInProcessServe(t, "--db", db, "--now", "latest", "--follow-interval", "10ms", log)
	if got := s.prevalence(t, "b.example.com"); got != "404 Not Found" {
		t.Errorf("b.example.com = %q before its line is complete, want 404 Not Found", got)
	}

	appendFile(t, log, []byte("2T03:05:00Z\n"))
	waitForLog(t, s, `msg="follow pass recorded events"`)
	if got := s.prevalence(t, "b.example.com"); got != "1" {
		t.Errorf("b.example.com prevalence = %q after its line was completed, want 1", got)
	}

	s.stop(t)
	for _, want := range []string{`msg="skipped line"`, "skipped=1"} {
		if strings.Contains(s.log.String(), want) {
			t.Errorf("serve log contains %q, but no line was skipped:\n%s", want, s.log.String())
		}
	}
	for _, want := range []string{"lines_read=2", "lines_read=1 events_recorded=1"} {
		if !strings.Contains(s.log.String(), want) {
			t.Errorf("serve log lacks %q:\n%s", want, s.log.String())
		}
	}
}
