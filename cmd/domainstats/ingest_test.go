package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()

	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// appendFile appends data to the file at path.
func appendFile(t *testing.T, path string, data []byte) {
	t.Helper()

	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func gzipData(t *testing.T, data string) []byte {
	t.Helper()

	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestIngestWrongFormatSavesNoPosition(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "wrong.db")
	events := writeFile(t, dir, "events.csv", "domain,machine,time\n"+csvLines(0, 20, "m1"))
	zeek, err := os.ReadFile(filepath.Join("testdata", "dns.log"))
	if err != nil {
		t.Fatal(err)
	}
	zeekLog := writeFile(t, dir, "dns.log", string(zeek))

	// The Zeek file is read, and the CSV file fails without stopping it.
	res := runBinary(t, "ingest", "--db", db, "--format", "zeek", events, zeekLog)
	if res.code != 1 {
		t.Errorf("ingest --format zeek of a CSV file exited with %d, want 1:\n%s", res.code, res.stderr)
	}
	for _, want := range []string{
		"events.csv: no events recorded",
		"read as zeek (set by --format)",
		"21 lines skipped (no_header 21)",
		"the first at line 1: data line before the #fields header",
		"Check --format",
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("ingest output lacks %q:\n%s", want, res.stderr)
		}
	}
	if got := queryStats(t, db, []string{"www.example.com"})["www.example.com"].OrgPrevalence; got == "" || got == "0" {
		t.Errorf("www.example.com prevalence = %q after the Zeek file was read, want more than 0", got)
	}

	// The corrected rerun reads the CSV file from its start.
	res = mustRun(t, "ingest", "--db", db, events)
	if n := linesRead(t, res.stderr); n != 21 {
		t.Errorf("corrected rerun read %d lines, want all 21", n)
	}
	if !strings.Contains(res.stderr, "events_recorded=20") {
		t.Errorf("corrected rerun did not record the 20 events:\n%s", res.stderr)
	}
}

func TestIngestOtherEventsOnlyIsNoError(t *testing.T) {
	dir := t.TempDir()
	sysmon := writeFile(t, dir, "sysmon.json",
		`{"EventID":1,"Hostname":"ws1","UtcTime":"2024-01-02 03:04:05.000","Image":"cmd.exe"}`+"\n")

	// A Sysmon log without DNS queries is read in the right format.
	res := runBinary(t, "ingest", "--db", filepath.Join(dir, "other.db"), sysmon)
	if res.code != 0 {
		t.Errorf("ingest of Sysmon events other than 22 exited with %d, want 0:\n%s", res.code, res.stderr)
	}
}

func TestIngestRestart(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "restart.db")
	log := writeFile(t, dir, "events.csv", "domain,machine,time\n"+csvLines(0, 50, "m1"))

	mustRun(t, "ingest", "--db", db, log)
	if n := linesRead(t, mustRun(t, "ingest", "--db", db, log).stderr); n != 0 {
		t.Errorf("rerun read %d lines, want 0", n)
	}

	res := mustRun(t, "ingest", "--restart", "--db", db, log)
	if n := linesRead(t, res.stderr); n != 51 {
		t.Errorf("ingest --restart read %d lines, want all 51", n)
	}
	if !strings.Contains(res.stderr, "because of --restart") {
		t.Errorf("ingest --restart did not log that it ignores the position:\n%s", res.stderr)
	}

	// Reading the file twice counts each machine once.
	if got := queryStats(t, db, []string{"d0.example.com"})["d0.example.com"].OrgPrevalence; got != "1" {
		t.Errorf("d0.example.com prevalence = %q after --restart, want 1", got)
	}
}

func TestIngestInvalidInputCreatesNoStore(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	good := writeFile(t, dir, "good.csv", "domain,machine,time\n"+csvLines(0, 3, "m1"))

	tests := []struct {
		name    string
		inputs  []string
		wantErr []string
	}{
		{"missing files", []string{filepath.Join(dir, "absent.log"), filepath.Join(dir, "absent2.log")}, []string{"absent.log: no such file", "absent2.log: no such file"}},
		{"directory", []string{good, logs}, []string{"logs is a directory", filepath.Join(logs, "*.log")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".db")
			res := runBinary(t, append([]string{"ingest", "--db", db}, tt.inputs...)...)
			if res.code != 1 {
				t.Errorf("exit status = %d, want 1", res.code)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
				}
			}
			if _, err := os.Stat(db); !os.IsNotExist(err) {
				t.Errorf("failed ingest left a store file behind (stat: %v)", err)
			}
		})
	}
}

func TestIngestLinesReadOfResumedGzip(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "gzip.db")
	log := filepath.Join(dir, "events.csv.gz")
	if err := os.WriteFile(log, gzipData(t, "domain,machine,time\n"+csvLines(0, 14, "m1")), 0o644); err != nil {
		t.Fatal(err)
	}

	if n := linesRead(t, mustRun(t, "ingest", "--db", db, log).stderr); n != 15 {
		t.Errorf("first ingest read %d lines, want 15", n)
	}
	if n := linesRead(t, mustRun(t, "ingest", "--db", db, log).stderr); n != 0 {
		t.Errorf("rerun of an unchanged gzip file reported %d lines read, want 0 as for a plain file", n)
	}

	// A second gzip member is how a compressed log grows.
	appendFile(t, log, gzipData(t, csvLines(14, 20, "m2")))
	if n := linesRead(t, mustRun(t, "ingest", "--db", db, log).stderr); n != 6 {
		t.Errorf("rerun of a grown gzip file read %d lines, want the 6 appended", n)
	}
}

func TestIngestUnknownFormatNamesFormats(t *testing.T) {
	dir := t.TempDir()
	prose := writeFile(t, dir, "prose.txt", "hello world\n")

	res := runBinary(t, "ingest", "--db", filepath.Join(dir, "prose.db"), prose)
	if res.code != 1 {
		t.Errorf("exit status = %d, want 1", res.code)
	}
	if !strings.Contains(res.stderr, "--format zeek, zeek-json, sysmon, defender or csv") {
		t.Errorf("unknown format error does not name the formats --format forces:\n%s", res.stderr)
	}
}

func TestIngestSysmonECS(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "ecs.db")
	log := writeFile(t, dir, "sysmon-ecs.json",
		`{"@timestamp":"2024-03-01T14:00:00Z","host":{"name":"ws1"},"event":{"code":"22","module":"sysmon"},"dns":{"question":{"name":"evil.example.net"}}}`+"\n"+
			`{"@timestamp":"2024-03-01T14:05:00Z","host":{"name":"ws2"},"event":{"code":"22","module":"sysmon"},"dns":{"question":{"name":"evil.example.net"}}}`+"\n"+
			`{"@timestamp":"2024-03-01T14:06:00Z","host":{"name":"ws3"},"event":{"code":"3","module":"sysmon"},"destination":{"ip":"192.0.2.1"}}`+"\n")

	res := mustRun(t, "ingest", "--db", db, log)
	if !strings.Contains(res.stderr, "format=sysmon") {
		t.Errorf("ingest did not detect Sysmon:\n%s", res.stderr)
	}
	got := queryStats(t, db, []string{"evil.example.net"})["evil.example.net"]
	if got.OrgPrevalence != "2" {
		t.Errorf("evil.example.net prevalence = %q, want 2", got.OrgPrevalence)
	}
	if got.OrgLastSeen == nil || *got.OrgLastSeen != "2024-03-01T14:05:00Z" {
		t.Errorf("evil.example.net last seen = %v, want 2024-03-01T14:05:00Z", got.OrgLastSeen)
	}
}

func TestIngestLogsRetentionChange(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "retention.db")
	log := writeFile(t, dir, "events.csv", "domain,machine,time\n"+csvLines(0, 3, "m1"))

	if res := mustRun(t, "ingest", "--db", db, log); strings.Contains(res.stderr, "retention changed") {
		t.Errorf("first ingest logged a retention change:\n%s", res.stderr)
	}

	res := mustRun(t, "ingest", "--retention", "48", "--db", db, log)
	if !strings.Contains(res.stderr, `msg="retention changed"`) || !strings.Contains(res.stderr, "previous_hours=720 hours=48") {
		t.Errorf("ingest --retention 48 did not log the change from 720 hours:\n%s", res.stderr)
	}

	if res := mustRun(t, "ingest", "--retention", "48", "--db", db, log); strings.Contains(res.stderr, "retention changed") {
		t.Errorf("ingest with the stored retention logged a change:\n%s", res.stderr)
	}
}

func TestIngestHelpDocumentsBehaviour(t *testing.T) {
	res := runBinary(t, "ingest", "--help")
	for _, want := range []string{
		"-restart",
		"lines_read counts the lines read in this run",
		"RFC 3339",
		"2024-03-01 14:00:00",
		"read as UTC",
		"epoch seconds",
		"milliseconds",
		"check --format",
		"ip_address for a host that is an IPv4 or IPv6",
		"the other files are still read",
	} {
		if !strings.Contains(strings.ToLower(res.stderr), strings.ToLower(want)) {
			t.Errorf("ingest --help lacks %q:\n%s", want, res.stderr)
		}
	}
}

func TestIngestGoesOnAfterFailedFiles(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "failed.db")
	prose := writeFile(t, dir, "prose.txt", "hello world\n")
	badGzip := writeFile(t, dir, "bad.gz", "\x1f\x8b\x00\x00garbage")
	absent := filepath.Join(dir, "absent.log")
	good := writeFile(t, dir, "good.csv", "domain,machine,time\n"+csvLines(0, 3, "m1"))

	res := runBinary(t, "ingest", "--db", db, prose, badGzip, absent, good)
	if res.code != 1 {
		t.Errorf("exit status = %d, want 1:\n%s", res.code, res.stderr)
	}
	for _, want := range []string{
		`file=` + prose + ` error="` + prose + `: ingest: unknown format`,
		`file=` + badGzip + ` error="ingest: ` + badGzip + `: unreadable gzip stream`,
		`file=` + absent + ` error="input ` + absent + `: no such file"`,
		"files=1 files_failed=3",
		"3 of 4 inputs failed and were not read in full, see the errors logged above: " + prose + ", " + badGzip + ", " + absent + "\n",
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("ingest output lacks %q:\n%s", want, res.stderr)
		}
	}

	// The good file after the failed ones was read.
	if got := queryStats(t, db, []string{"d0.example.com"})["d0.example.com"].OrgPrevalence; got != "1" {
		t.Errorf("d0.example.com prevalence = %q, want 1", got)
	}
}

func TestIngestStrictStopsAtFailedFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "strict.db")
	prose := writeFile(t, dir, "prose.txt", "hello world\n")
	good := writeFile(t, dir, "good.csv", "domain,machine,time\n"+csvLines(0, 3, "m1"))

	res := runBinary(t, "ingest", "--strict", "--db", db, prose, good)
	if res.code != 1 {
		t.Errorf("exit status = %d, want 1:\n%s", res.code, res.stderr)
	}
	for _, want := range []string{"prose.txt: ingest: unknown format", "files=0"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("ingest --strict output lacks %q:\n%s", want, res.stderr)
		}
	}
}
