package statshttp_test

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/domainstats/domainstats"
	statshttp "github.com/domainstats/domainstats/http"
)

// This example mounts the handler under /defender beside a route of the
// host program and queries it as a Defender client would.
func ExampleNewHandler() {
	dir, err := os.MkdirTemp("", "statshttp-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A fixed clock makes the window, and so the output, reproducible.
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	store, err := domainstats.Open(filepath.Join(dir, "stats.db"), &domainstats.Options{
		Now: func() time.Time { return now },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	for i, machine := range []string{"laptop-1", "laptop-2", "server-7"} {
		at := now.Add(-time.Duration(3-i) * time.Hour)
		if err := store.Record("updates.example.com", machine, at); err != nil {
			log.Fatal(err)
		}
	}

	tokens, err := statshttp.NewStaticTokens(statshttp.StaticToken{
		Token:  "soar-0b9d2c41e7",
		Caller: statshttp.Caller{ID: "soar", Permissions: []string{statshttp.PermissionURLRead}},
	})
	if err != nil {
		log.Fatal(err)
	}

	handler, err := statshttp.NewHandler(store, &statshttp.Options{
		Authenticator: tokens,
		BaseURL:       "https://soc.example.org/defender",
		RateLimit:     &statshttp.RateLimit{},
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/defender/", http.StripPrefix("/defender", handler))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	server := httptest.NewServer(mux)
	defer server.Close()

	req, err := http.NewRequest(http.MethodGet, server.URL+"/defender/api/domains/Updates.Example.com/stats?lookBackHours=24", nil)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer soar-0b9d2c41e7")

	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status)
	fmt.Println(string(body))

	// Output:
	// 200 OK
	// {"@odata.context":"https://soc.example.org/defender/api/$metadata#microsoft.windowsDefenderATP.api.InOrgDomainStats","host":"updates.example.com","orgPrevalence":"3","organizationPrevalence":3,"orgFirstSeen":"2024-05-01T09:00:00Z","orgLastSeen":"2024-05-01T11:00:00Z"}
}
