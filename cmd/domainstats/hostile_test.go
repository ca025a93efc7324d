package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
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
)

// hostileToken is the only token the hostile-input server accepts. Its
// text must never appear in a response body or a log line.
const hostileToken = "hostile-reader-7Qm2xV9pL4sK8dN3"

// lockedBuffer collects the output of a child process while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServe runs domainstats serve as a child process on a free loopback
// port and returns its address and log. The process is stopped with
// SIGTERM when the test ends.
func startServe(t *testing.T) (string, *lockedBuffer) {
	t.Helper()

	dir := t.TempDir()
	db := filepath.Join(dir, "hostile.db")
	mustRun(t, "ingest", "--db", db, sampleLogPath)
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(hostileToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(binary, "serve", "--db", db, "--addr", "127.0.0.1:0", "--token-file", tokens, "--now", "latest")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	// Copy the log into a buffer, and pass the address from its
	// "serving" line.
	log := &lockedBuffer{}
	addrs := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		serving := regexp.MustCompile(`msg=serving addr=(\S+)`)
		scanner := bufio.NewScanner(stderr)
		for scanner.Scan() {
			log.Write(append(scanner.Bytes(), '\n'))
			if m := serving.FindStringSubmatch(scanner.Text()); m != nil {
				addrs <- m[1]
			}
		}
	}()

	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-copied
		if err := cmd.Wait(); err != nil {
			t.Errorf("serve exited with %v after SIGTERM:\n%s", err, log.String())
		}
	})

	select {
	case addr := <-addrs:
		return addr, log
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("serve logged no address within 30 s:\n%s", log.String())
	}
	return "", nil
}

// rawResponse is the outcome of one raw request.
type rawResponse struct {
	status int    // 0 when the server closed the connection without a response
	body   string // the response body
}

// sendRaw sends request bytes as they are, which net/http's client would
// refuse or escape, and reads one response.
func sendRaw(t *testing.T, addr, request string) rawResponse {
	t.Helper()

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))

	// A server that closes early can make the write fail; the read then
	// shows what it sent.
	conn.Write([]byte(request))

	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			return rawResponse{}
		}
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return rawResponse{status: resp.StatusCode, body: string(body)}
}

// get builds a GET request for target with an Authorization header, unless
// authorization is empty, and extra header lines.
func get(target, authorization string, headers ...string) string {
	var b strings.Builder
	b.WriteString("GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
	if authorization != "" {
		b.WriteString("Authorization: " + authorization + "\r\n")
	}
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// leakMarkers are texts that only internal errors, panics or secrets put
// in a body or log line.
var leakMarkers = []string{hostileToken, hostileToken[:12], "goroutine ", "panic", "runtime error", "bbolt", "bolt.", ".go:"}

func TestServeHostileInput(t *testing.T) {
	addr, log := startServe(t)
	bearer := "Bearer " + hostileToken
	stats := "/api/domains/www.example.com/stats"

	tests := []struct {
		name    string
		request string
		// want is the expected status: 0 for a closed connection, -1 for
		// any 4xx.
		want int
	}{
		{"valid request", get(stats, bearer), 200},
		{"path of 9 KB in one label", get("/api/domains/"+strings.Repeat("a", 9000)+"/stats", bearer), 400},
		{"path of 9 KB in many labels", get("/api/domains/"+strings.Repeat("a.", 4500)+"com/stats", bearer), 400},
		{"path of 9 KB of segments", get("/api/domains/"+strings.Repeat("x/", 4500)+"stats", bearer), 404},
		{"request line of 100 KB", get("/api/domains/"+strings.Repeat("a", 100_000)+"/stats", bearer), 431},
		{"encoded dot-dot-slash as domain", get("/api/domains/..%2F..%2Fetc%2Fpasswd/stats", bearer), -1},
		{"encoded dots as domain", get("/api/domains/%2e%2e/stats", bearer), -1},
		{"encoded slash in domain", get("/api/domains/example.com%2Fstats/stats", bearer), -1},
		{"raw dot-dot segments", get("/api/domains/../../../etc/passwd", bearer), 404},
		{"encoded dot-dot before the API", get("/%2e%2e/%2e%2e/api/domains/www.example.com/stats", bearer), -1},
		{"raw NUL in path", get("/api/domains/www\x00.example.com/stats", bearer), 400},
		{"encoded NUL in domain", get("/api/domains/www%00.example.com/stats", bearer), 400},
		{"raw invalid UTF-8 in path", get("/api/domains/www\xff\xfe.example.com/stats", bearer), -1},
		{"encoded invalid UTF-8 in domain", get("/api/domains/www%FF%FE.example.com/stats", bearer), 400},
		{"overlong UTF-8 dot", get("/api/domains/www%C0%AEexample.com/stats", bearer), 400},
		{"huge lookBackHours", get(stats+"?lookBackHours=99999999999999999999999999", bearer), 400},
		{"lookBackHours above retention", get(stats+"?lookBackHours=721", bearer), 400},
		{"negative lookBackHours", get(stats+"?lookBackHours=-1", bearer), 400},
		{"zero lookBackHours", get(stats+"?lookBackHours=0", bearer), 400},
		{"empty lookBackHours", get(stats+"?lookBackHours=", bearer), 400},
		{"lookBackHours with exponent", get(stats+"?lookBackHours=1e3", bearer), 400},
		{"lookBackHours twice", get(stats+"?lookBackHours=1&lookBackHours=2", bearer), 400},
		{"lookBackHours in both spellings", get(stats+"?lookBackHours=1&lookbackhours=2", bearer), 400},
		{"lookBackHours 3,000 times", get(stats+"?"+strings.Repeat("lookBackHours=1&", 3000), bearer), 400},
		{"lookBackHours 5,000 times, past 64 KB", get(stats+"?"+strings.Repeat("lookBackHours=1&", 5000), bearer), 431},
		{"lookBackHours with NUL", get(stats+"?lookBackHours=1%00", bearer), 400},
		{"no Authorization", get(stats, ""), 401},
		{"Bearer without token", get(stats, "Bearer"), 401},
		{"Bearer with spaces only", get(stats, "Bearer    "), 401},
		{"Basic credentials", get(stats, "Basic aG9zdGlsZTpyZWFkZXI="), 401},
		{"token with a byte added", get(stats, bearer+"x"), 401},
		{"token missing a byte", get(stats, bearer[:len(bearer)-1]), 401},
		// RFC 7235 allows one or more spaces after the scheme.
		{"token after two spaces", get(stats, "Bearer  "+hostileToken), 200},
		{"token with trailing text", get(stats, bearer+" extra"), 401},
		{"token in another scheme", get(stats, "Token "+hostileToken), 401},
		{"non-ASCII token", get(stats, "Bearer ŧøķëñ"), 401},
		{"raw NUL in Authorization", get(stats, "Bearer hostile\x00reader"), 400},
		{"Authorization of 60 KB", get(stats, "Bearer "+strings.Repeat("A", 60_000)), 401},
		{"Authorization of 100 KB", get(stats, "Bearer "+strings.Repeat("A", 100_000)), 431},
		{"Authorization twice", get(stats, bearer, "Authorization: Bearer other"), 401},
		// RFC 9112 lets a server replace an obsolete line fold with a
		// space, as net/http does.
		{"header folded over two lines", get(stats, "Bearer", " "+hostileToken), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sendRaw(t, addr, tt.request)
			switch {
			case tt.want == -1 && (got.status < 400 || got.status > 499):
				t.Errorf("status %d, want a 4xx; body: %.300s", got.status, got.body)
			case tt.want != -1 && got.status != tt.want:
				t.Errorf("status %d, want %d; body: %.300s", got.status, tt.want, got.body)
			}
			for _, marker := range leakMarkers {
				if strings.Contains(got.body, marker) {
					t.Errorf("body contains %q: %.300s", marker, got.body)
				}
			}
			t.Logf("status %d, %d-byte body", got.status, len(got.body))
		})
	}

	for _, line := range strings.Split(log.String(), "\n") {
		for _, marker := range leakMarkers[:2] {
			if strings.Contains(line, marker) {
				t.Errorf("serve log line contains %q: %s", marker, line)
			}
		}
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("serve logged an error: %s", line)
		}
	}
}

// TestServeCutsOffSlowClient sends the headers of a request one byte at a
// time, slower than serve's ReadHeaderTimeout allows, and checks that the
// server closes the connection while other clients are still served.
func TestServeCutsOffSlowClient(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for serve's 5-second header timeout")
	}
	addr, _ := startServe(t)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// Read in the background: the server's close shows up as EOF.
	closed := make(chan time.Time, 1)
	go func() {
		io.Copy(io.Discard, conn)
		closed <- time.Now()
	}()

	started := time.Now()
	request := get("/api/domains/www.example.com/stats", "Bearer "+hostileToken)
	const interval = 250 * time.Millisecond
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	sent := 0
	var cutOff time.Time

	// 60 bytes at 4 per second take 15 s, three times the timeout.
sending:
	for sent < 60 {
		select {
		case cutOff = <-closed:
			break sending
		case <-ticker.C:
		}
		if _, err := conn.Write([]byte{request[sent]}); err != nil {
			cutOff = time.Now()
			break
		}
		sent++
		if sent == 8 {
			if res := sendRaw(t, addr, request); res.status != 200 {
				t.Errorf("a normal request during the slow one got %d, want 200", res.status)
			}
		}
	}
	if cutOff.IsZero() {
		t.Fatalf("server still reading the headers after %d bytes in %s", sent, time.Since(started).Round(time.Millisecond))
	}

	elapsed := cutOff.Sub(started)
	if elapsed < readHeaderTimeout-time.Second || elapsed > readHeaderTimeout+3*time.Second {
		t.Errorf("server cut the slow client off after %s, want about the %s ReadHeaderTimeout", elapsed.Round(time.Millisecond), readHeaderTimeout)
	}
	t.Logf("server closed the connection after %s and %d header bytes", elapsed.Round(time.Millisecond), sent)
}
