package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/domainstats/domainstats"
	"github.com/google/go-cmp/cmp"
)

// binary is the domainstats command built once for the tests that run it
// as a child process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "domainstats-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "domainstats")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build domainstats:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}

	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is the outcome of one command run.
type result struct {
	stdout string
	stderr string
	code   int
}

// runBinary runs the built command with args and returns its output.
func runBinary(t *testing.T, args ...string) result {
	t.Helper()

	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()

	var exitErr *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("run domainstats %v: %v", args, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// mustRun runs the command and fails the test unless it exits with 0.
func mustRun(t *testing.T, args ...string) result {
	t.Helper()

	res := runBinary(t, args...)
	if res.code != 0 {
		t.Fatalf("domainstats %s exited with %d:\n%s", strings.Join(args, " "), res.code, res.stderr)
	}
	return res
}

// statsBody is the part of the stats JSON body that the tests compare.
type statsBody struct {
	Host          string  `json:"host"`
	OrgPrevalence string  `json:"orgPrevalence"`
	OrgFirstSeen  *string `json:"orgFirstSeen"`
	OrgLastSeen   *string `json:"orgLastSeen"`
}

// queryStats runs stats --now latest for domains and returns the bodies by
// host.
func queryStats(t *testing.T, db string, domains []string) map[string]statsBody {
	t.Helper()

	args := append([]string{"stats", "--db", db, "--now", "latest"}, domains...)
	res := runBinary(t, args...)
	if res.code != 0 {
		t.Fatalf("stats exited with %d:\n%s\n%s", res.code, res.stderr, firstLines(res.stdout, 5))
	}

	bodies := map[string]statsBody{}
	for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		var body statsBody
		if err := json.Unmarshal([]byte(line), &body); err != nil {
			t.Fatalf("stats printed invalid JSON %q: %v", line, err)
		}
		bodies[body.Host] = body
	}
	return bodies
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// expectedStats accumulates the stats that a test computes from a log by
// itself, keyed by the normalized domain.
type expectedStats struct {
	machines map[string]map[string]bool
	first    map[string]time.Time
	last     map[string]time.Time
	rejected map[string]bool
}

func newExpectedStats() *expectedStats {
	return &expectedStats{
		machines: map[string]map[string]bool{},
		first:    map[string]time.Time{},
		last:     map[string]time.Time{},
		rejected: map[string]bool{},
	}
}

func (e *expectedStats) add(domain, machine string, at time.Time) {
	name, err := domainstats.NormalizeDomain(domain)
	if err != nil {
		e.rejected[domain] = true
		return
	}
	if e.machines[name] == nil {
		e.machines[name] = map[string]bool{}
		e.first[name], e.last[name] = at, at
	}
	e.machines[name][machine] = true
	if at.Before(e.first[name]) {
		e.first[name] = at
	}
	if at.After(e.last[name]) {
		e.last[name] = at
	}
}

func (e *expectedStats) domains() []string {
	var names []string
	for name := range e.machines {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (e *expectedStats) bodies() map[string]statsBody {
	bodies := map[string]statsBody{}
	for name, machines := range e.machines {
		first := e.first[name].UTC().Format(time.RFC3339)
		last := e.last[name].UTC().Format(time.RFC3339)
		bodies[name] = statsBody{Host: name, OrgPrevalence: strconv.Itoa(len(machines)), OrgFirstSeen: &first, OrgLastSeen: &last}
	}
	return bodies
}

// sharedData returns the path of a file in the telemetry folder beside the
// module root, or skips the test when it is absent.
func sharedData(t *testing.T, name string) string {
	t.Helper()

	path := filepath.Join("..", "..", "..", "shared", "data", name)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("shared telemetry %s is absent (%v); it lives beside the module root in CI", name, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func TestIngestSharedZeekLog(t *testing.T) {
	path := sharedData(t, "zeek-wrccdc-2018/dns.log.gz")
	db := filepath.Join(t.TempDir(), "zeek.db")
	mustRun(t, "ingest", "--db", db, path)

	// Compute the expected statistics from a plain split of the log.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	want := newExpectedStats()
	names := map[string]bool{}
	scanner := bufio.NewScanner(zr)
	for scanner.Scan() {
		if strings.HasPrefix(scanner.Text(), "#") {
			continue
		}
		columns := strings.Split(scanner.Text(), "\t")
		query := columns[9]
		if query == "-" || query == "(empty)" {
			continue
		}
		names[strings.TrimSuffix(strings.ToLower(query), ".")] = true

		// ingest skips a query that is an IP address, such as this log's
		// 10.47.7.30, as no domain.
		if _, err := netip.ParseAddr(query); err == nil {
			continue
		}

		sec, err := strconv.ParseInt(strings.Split(columns[0], ".")[0], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		want.add(query, columns[2], time.Unix(sec, 0))
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1649 {
		t.Errorf("the log has %d distinct query names, want 1,649", len(names))
	}

	got := queryStats(t, db, want.domains())
	if diff := cmp.Diff(want.bodies(), got); diff != "" {
		t.Errorf("stats of %d domains mismatch (-want +got):\n%s", len(want.machines), diff)
	}
	t.Logf("%d names checked, %d rejected by NormalizeDomain", len(want.machines), len(want.rejected))

	first, last := "2018-03-24T17:15:23Z", "2018-03-24T17:36:14Z"
	wantGoogle := statsBody{Host: "www.google.com", OrgPrevalence: "27", OrgFirstSeen: &first, OrgLastSeen: &last}
	if diff := cmp.Diff(wantGoogle, got["www.google.com"]); diff != "" {
		t.Errorf("www.google.com mismatch (-want +got):\n%s", diff)
	}
}

func TestIngestSharedSysmonEvents(t *testing.T) {
	path := sharedData(t, "sysmon-otrf/dns-query-events.ndjson")
	db := filepath.Join(t.TempDir(), "sysmon.db")
	res := mustRun(t, "ingest", "--db", db, path)
	if !strings.Contains(res.stderr, "events_recorded=130") {
		t.Errorf("summary lacks events_recorded=130:\n%s", res.stderr)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type record struct{ Hostname, QueryName, UtcTime string }
	var (
		records  []record
		machines = map[string]bool{}
		names    = map[string]bool{}
		newest   time.Time
	)
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		at, err := time.Parse("2006-01-02 15:04:05.000", r.UtcTime)
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, r)
		machines[r.Hostname] = true
		names[strings.ToLower(r.QueryName)] = true
		if at.After(newest) {
			newest = at
		}
	}
	if len(names) != 56 {
		t.Errorf("the log has %d distinct names, want 56", len(names))
	}
	if len(machines) != 7 {
		t.Errorf("the log has %d machines, want 7", len(machines))
	}

	// The lab sets span 2019 to 2023, and a window of the default 720
	// hours that ends at the newest event holds only the 2023 set.
	want := newExpectedStats()
	for _, r := range records {
		at, _ := time.Parse("2006-01-02 15:04:05.000", r.UtcTime)
		if at.After(newest.Add(-domainstats.DefaultLookBack)) {
			want.add(r.QueryName, r.Hostname, at)
		}
	}
	inWindow := want.domains()
	wantBodies := want.bodies()

	// Every name, also those outside the window, must be accepted.
	all := newExpectedStats()
	for _, r := range records {
		all.add(r.QueryName, r.Hostname, newest)
	}
	if len(all.rejected) > 0 || len(all.machines) != 56 {
		t.Errorf("NormalizeDomain accepted %d names and rejected %v, want all 56 accepted", len(all.machines), all.rejected)
	}

	got := queryStats(t, db, inWindow)
	if diff := cmp.Diff(wantBodies, got); diff != "" {
		t.Errorf("stats mismatch (-want +got):\n%s", diff)
	}
}

// linesRead returns the lines_read value of an ingest summary.
func linesRead(t *testing.T, stderr string) int {
	t.Helper()

	m := regexp.MustCompile(`lines_read=(\d+)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no lines_read in the ingest summary:\n%s", stderr)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func csvLines(from, to int, machine string) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "d%d.example.com,%s,2024-01-02T03:%02d:%02dZ\n", i%7, machine, i/60%60, i%60)
	}
	return b.String()
}

func TestIngestGrownLog(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "events.csv")
	db := filepath.Join(dir, "grown.db")

	first := "domain,machine,time\n" + csvLines(0, 100, "m1")
	if err := os.WriteFile(log, []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := linesRead(t, mustRun(t, "ingest", "--db", db, log).stderr); n != 101 {
		t.Errorf("first ingest read %d lines, want 101", n)
	}

	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(csvLines(100, 130, "m2")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	if n := linesRead(t, mustRun(t, "ingest", "--db", db, log).stderr); n != 30 {
		t.Errorf("second ingest read %d lines, want only the 30 appended", n)
	}

	fresh := filepath.Join(dir, "fresh.db")
	mustRun(t, "ingest", "--db", fresh, log)
	domains := []string{"d0.example.com", "d1.example.com", "d2.example.com", "d3.example.com", "d4.example.com", "d5.example.com", "d6.example.com"}
	if diff := cmp.Diff(queryStats(t, fresh, domains), queryStats(t, db, domains)); diff != "" {
		t.Errorf("stats after two ingests differ from one ingest (-want +got):\n%s", diff)
	}
}

func TestIngestRotatedFile(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "events.csv")
	db := filepath.Join(dir, "rotated.db")

	if err := os.WriteFile(log, []byte("domain,machine,time\n"+csvLines(0, 100, "m1")), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "ingest", "--db", db, log)

	// Rotation moves the old file away and starts a new one at the path.
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	rotated := "domain,machine,time\n" + "new.example.com,m9,2024-01-02T04:00:00Z\n" + csvLines(0, 150, "m3")
	if err := os.WriteFile(log, []byte(rotated), 0o644); err != nil {
		t.Fatal(err)
	}

	if n := linesRead(t, mustRun(t, "ingest", "--db", db, log).stderr); n != 152 {
		t.Errorf("ingest after rotation read %d lines, want all 152", n)
	}
	got := queryStats(t, db, []string{"new.example.com", "d0.example.com"})
	if got["new.example.com"].OrgPrevalence != "1" {
		t.Errorf("new.example.com prevalence = %q, want 1", got["new.example.com"].OrgPrevalence)
	}
	if got["d0.example.com"].OrgPrevalence != "2" {
		t.Errorf("d0.example.com prevalence = %q, want 2 (m1 and m3)", got["d0.example.com"].OrgPrevalence)
	}
}

func TestIngestTruncatedFileRereads(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "events.csv")
	db := filepath.Join(dir, "truncated.db")

	if err := os.WriteFile(log, []byte("domain,machine,time\n"+csvLines(0, 100, "m1")), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "ingest", "--db", db, log)

	// copytruncate rotation keeps the inode but rewrites the content.
	if err := os.WriteFile(log, []byte("domain,machine,time\n"+csvLines(5, 20, "m4")), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := linesRead(t, mustRun(t, "ingest", "--db", db, log).stderr); n != 16 {
		t.Errorf("ingest after truncation read %d lines, want all 16", n)
	}
}

func TestIngestResumeAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and ingests a 300,000-line log")
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "dns.log")

	var domains, machines []string
	for i := range 3000 {
		domains = append(domains, fmt.Sprintf("host%d.zone%d.example.com", i, i%17))
	}
	for i := range 250 {
		machines = append(machines, fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256))
	}
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeZeekDNSLog(f, 300_000, domains, machines, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), 7); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	whole := filepath.Join(dir, "whole.db")
	mustRun(t, "ingest", "--db", whole, log)

	// Kill the ingest once it has committed part of the log, then rerun
	// the same command.
	killed := filepath.Join(dir, "killed.db")
	cmd := exec.Command(binary, "ingest", "--verbose", "--db", killed, log)
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	committed := make(chan struct{})
	go func() {
		scanner := bufio.NewScanner(stderrPipe)
		once := false
		for scanner.Scan() {
			if !once && strings.Contains(scanner.Text(), "msg=committed") {
				once = true
				close(committed)
			}
		}
	}()
	select {
	case <-committed:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("ingest logged no commit within a minute")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if err == nil {
		t.Log("ingest finished before SIGKILL arrived, so the rerun reads nothing new")
	} else if !strings.Contains(err.Error(), "killed") {
		t.Fatalf("ingest ended with %v, want death by SIGKILL", err)
	}

	res := mustRun(t, "ingest", "--db", killed, log)
	if err != nil && !strings.Contains(res.stderr, "msg=resuming") {
		t.Errorf("rerun after SIGKILL did not resume from a checkpoint:\n%s", res.stderr)
	}
	t.Logf("rerun read %d of %d lines", linesRead(t, res.stderr), 300_010)

	if diff := cmp.Diff(queryStats(t, whole, domains), queryStats(t, killed, domains)); diff != "" {
		t.Errorf("stats after SIGKILL and rerun differ from an uninterrupted run (-want +got):\n%s", diff)
	}
}

func TestIngestFailures(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	badLine := write("bad.csv", "domain,machine,time\na.example.com,m1,2024-01-02T03:04:05Z\nnot,enough\nb.example.com,m1,2024-01-02T03:04:06Z\n")

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown format", []string{"ingest", "--db", filepath.Join(dir, "a.db"), write("prose.txt", "hello world\n")}, 1, "unknown format"},
		{"unreadable gzip", []string{"ingest", "--db", filepath.Join(dir, "b.db"), write("bad.gz", "\x1f\x8b\x00\x00garbage")}, 1, "unreadable gzip"},
		{"missing file", []string{"ingest", "--db", filepath.Join(dir, "c.db"), filepath.Join(dir, "absent.log")}, 1, "no such file"},
		{"strict bad line", []string{"ingest", "--strict", "--db", filepath.Join(dir, "d.db"), badLine}, 1, "bad.csv:3: skipped (malformed)"},
		{"bad format flag", []string{"ingest", "--format", "syslog", badLine}, 2, "unknown format"},
		{"no files", []string{"ingest", "--db", filepath.Join(dir, "e.db")}, 2, "no input files"},
		{"stats without store", []string{"stats", "--db", filepath.Join(dir, "absent.db"), "www.example.com"}, 1, "run domainstats ingest first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runBinary(t, tt.args...)
			if res.code != tt.wantCode {
				t.Errorf("exit status = %d, want %d", res.code, tt.wantCode)
			}
			if !strings.Contains(res.stderr, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, res.stderr)
			}
		})
	}
}

func TestIngestCountsSkippedLines(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "mixed.csv")
	content := "domain,machine,time\n" +
		"a.example.com,m1,2024-01-02T03:04:05Z\n" +
		"not,enough\n" +
		"bad domain!,m1,2024-01-02T03:04:05Z\n" +
		",m1,2024-01-02T03:04:05Z\n" +
		"b.example.com,m1,later\n"
	if err := os.WriteFile(log, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}

	res := mustRun(t, "ingest", "--db", filepath.Join(dir, "mixed.db"), log)
	for _, want := range []string{
		"lines_read=6", "events_recorded=1", "skipped=4",
		"skipped_invalid_domain=1", "skipped_invalid_time=1", "skipped_malformed=1", "skipped_missing_domain=1",
		"line=3 reason=malformed",
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("ingest output lacks %q:\n%s", want, res.stderr)
		}
	}
}

func TestIngestStandardInput(t *testing.T) {
	db := filepath.Join(t.TempDir(), "stdin.db")
	cmd := exec.Command(binary, "ingest", "--db", db, "-")
	cmd.Stdin = strings.NewReader("domain,machine,time\nstdin.example.com,m1,2024-01-02T03:04:05Z\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ingest - failed: %v\n%s", err, out)
	}

	got := queryStats(t, db, []string{"stdin.example.com"})
	if got["stdin.example.com"].OrgPrevalence != "1" {
		t.Errorf("stdin.example.com prevalence = %q, want 1", got["stdin.example.com"].OrgPrevalence)
	}
}

func TestSubcommandHelp(t *testing.T) {
	tests := []struct {
		command string
		want    []string
	}{
		{"ingest", []string{"-db", "-format", "-strict"}},
		{"stats", []string{"-lookback", "hours", "-now", "latest"}},
		{"serve", []string{"-addr", "-token-file", "duration"}},
		{"verify", []string{"-db", "checksum", "status 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			res := runBinary(t, tt.command, "--help")
			if res.code != 0 {
				t.Errorf("%s --help exited with %d", tt.command, res.code)
			}
			for _, want := range tt.want {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("%s --help lacks %q:\n%s", tt.command, want, res.stderr)
				}
			}
		})
	}
}

func TestServeMatchesStats(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "serve.db")
	mustRun(t, "ingest", "--db", db, sampleLogPath)

	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# readers\nreader-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan int, 1)
	var stderr bytes.Buffer
	env := environment{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr, listening: listening}
	go func() {
		done <- run(ctx, []string{"serve", "--db", db, "--addr", "127.0.0.1:0", "--token-file", tokens, "--now", "latest", "--base-url", defaultBaseURL}, env)
	}()

	var addr string
	select {
	case addr = <-listening:
	case code := <-done:
		cancel()
		t.Fatalf("serve exited with %d before listening:\n%s", code, stderr.String())
	}

	get := func(token string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/api/domains/www.example.com/stats", nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}

	status, served := get("reader-token")
	if status != http.StatusOK {
		t.Errorf("GET with a reader token: status %d, want 200: %s", status, served)
	}
	if status, _ := get(""); status != http.StatusUnauthorized {
		t.Errorf("GET without a token: status %d, want 401", status)
	}

	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exited with %d after cancel:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Errorf("serve did not log its stop:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "reader-token") {
		t.Errorf("serve logged a token:\n%s", stderr.String())
	}

	// The store is closed now, so stats can open it.
	printed := mustRun(t, "stats", "--db", db, "--now", "latest", "www.example.com").stdout
	if diff := cmp.Diff(served+"\n", printed); diff != "" {
		t.Errorf("stats output differs from the served body (-want +got):\n%s", diff)
	}
}
