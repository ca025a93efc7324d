package bench

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	statshttp "github.com/domainstats/domainstats/http"
)

// httpBenchToken is the bearer token of the benchmark's only caller. It is
// a fixed test value that grants access to nothing but the loopback server
// of the benchmark.
const httpBenchToken = "bench-token-4f1c9a"

// BenchmarkHTTP measures GET /api/domains/{domain}/stats end to end on
// loopback, for a domain of 100 machines over 720 hours, against a bare
// net/http handler that writes the same JSON body as a constant. Both
// servers run in the same process as the client. clients=1 sends one
// request at a time; clients=parallel sends from GOMAXPROCS×4 goroutines.
// Compare with benchstat -col /handler.
//
// Metric: req/s.
func BenchmarkHTTP(b *testing.B) {
	store := sizeCounter(b, "store").(*StoreCounter).Store
	domain := sizeSet().domainOfSize(100)
	path := "/api/domains/" + domain.Name + "/stats?lookBackHours=720"

	tokens, err := statshttp.NewStaticTokens(statshttp.StaticToken{
		Token:  httpBenchToken,
		Caller: statshttp.Caller{ID: "bench", Permissions: []string{statshttp.PermissionURLRead}},
	})
	if err != nil {
		b.Fatal(err)
	}
	statsHandler, err := statshttp.NewHandler(store, &statshttp.Options{Authenticator: tokens})
	if err != nil {
		b.Fatal(err)
	}

	statsServer := httptest.NewServer(statsHandler)
	defer statsServer.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()

	// The bare handler serves the bytes that the real handler returned, so
	// both responses have the same size.
	body, err := getBody(client, statsServer.URL+path)
	if err != nil {
		b.Fatal(err)
	}
	bareServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(body)
	}))
	defer bareServer.Close()

	servers := []struct {
		name string
		url  string
	}{
		{"store", statsServer.URL + path},
		{"bare", bareServer.URL + path},
	}
	for _, clients := range []string{"1", "parallel"} {
		for _, server := range servers {
			b.Run(fmt.Sprintf("clients=%s/handler=%s", clients, server.name), func(b *testing.B) {
				b.ReportAllocs()
				if clients == "1" {
					for b.Loop() {
						if _, err := getBody(client, server.url); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.SetParallelism(4)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := getBody(client, server.url); err != nil {
								// FailNow may not run on a RunParallel goroutine.
								b.Error(err)
								return
							}
						}
					})
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}

// getBody sends an authenticated GET to url and returns the body of its
// 200 response, or an error for any other status.
func getBody(client *http.Client, url string) ([]byte, error) {
	request, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	request.Header.Set("Authorization", "Bearer "+httpBenchToken)

	response, err := client.Do(request)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer response.Body.Close()

	body, err := io.ReadAll(response.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", url, err)
	}
	if response.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d, want 200: %s", url, response.StatusCode, body)
	}
	return body, nil
}
