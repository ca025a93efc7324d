package statshttp

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzHandler sends arbitrary request lines and headers to handlers over a
// real store. It checks that no handler panics or responds with 5xx, and
// that every error has an OData body whose target is the request-id header.
func FuzzHandler(f *testing.F) {
	seeds := []struct {
		method, target, authorization, clientRequestID string
	}{
		{"GET", "/api/domains/example.com/stats", "Bearer " + readerToken, ""},
		{"GET", "/api/domains/example.com/stats?lookBackHours=48", "Bearer " + readerToken, "abc"},
		{"HEAD", "/api/domains/EXAMPLE.COM/stats?lookbackhours=720", "bearer " + readerToken, ""},
		{"GET", "/api/domains/b%C3%BCcher.example/stats", "Bearer " + readerToken, ""},
		{"GET", "/api/domains/xn--bcher-kva.example/stats?lookBackHours=1", "Bearer " + readerToken, ""},
		{"GET", "/api/domains/a..b/stats", "Bearer " + readerToken, ""},
		{"GET", "/api/domains/%2F%2E%2E%2F/stats", "Bearer " + readerToken, ""},
		{"GET", "/api/domains/%00/stats", "Bearer " + readerToken, ""},
		{"GET", "/api/domains/%FF%FE/stats", "Bearer " + readerToken, ""},
		{"GET", "/api/domains/" + strings.Repeat("a", 300) + ".com/stats", "Bearer " + readerToken, ""},
		{"GET", "/api/domains/" + strings.Repeat("a.", 200) + "com/stats", "Bearer " + readerToken, ""},
		{"GET", "/api/domains/example.com/stats?lookBackHours=99999999999999999999", "Bearer " + readerToken, ""},
		{"GET", "/api/domains/example.com/stats?lookBackHours=%zz", "Bearer " + readerToken, ""},
		{"GET", "/api/domains/example.com/stats?lookBackHours=1;2", "Bearer " + readerToken, ""},
		{"GET", "/api/domains/example.com/stats?lookBackHours=-0", "Bearer " + readerToken, ""},
		{"GET", "/api/domains/example.com/stats?=&&=", "Bearer " + readerToken, ""},
		{"GET", "/api/domains/example.com/stats", "Bearer " + noPermToken, ""},
		{"GET", "/api/domains/example.com/stats", "Bearer", ""},
		{"GET", "/api/domains/example.com/stats", "Basic Zm9vOmJhcg==", ""},
		{"POST", "/api/domains/example.com/stats", "", ""},
		{"OPTIONS", "*", "", ""},
		{"CONNECT", "example.com:443", "", ""},
		{"GET", "http://other.example/api/domains/example.com/stats", "Bearer " + readerToken, ""},
		{"GET", "/api//domains/example.com/stats", "", ""},
		{"GET", "/api/domains/example.com/stats/..", "", ""},
		{"GET", "/", "", ""},
		{"GET", "/api/domains/example.com/stats#fragment", "", "x"},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.authorization, s.clientRequestID)
	}

	store := exampleStore(f)
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	authenticated := authOptions(f)
	authenticated.RateLimit = &RateLimit{}
	authenticated.Now = clock.Now
	handlers := map[string]http.Handler{
		"authenticated": newTestHandler(f, store, authenticated),
		"anonymous":     newTestHandler(f, store, &Options{AllowAnonymous: true, ZeroForUnknown: true}),
	}

	f.Fuzz(func(t *testing.T, method, target, authorization, clientRequestID string) {
		// Keep the clock moving so the rate limits rarely hide the rest.
		clock.Advance(time.Second)

		if strings.ContainsAny(authorization+clientRequestID, "\r\n") {
			return
		}
		raw := method + " " + target + " HTTP/1.1\r\nHost: stats.example\r\n"
		if authorization != "" {
			raw += "Authorization: " + authorization + "\r\n"
		}
		if clientRequestID != "" {
			raw += "Client-Request-Id: " + clientRequestID + "\r\n"
		}
		raw += "\r\n"

		for name, h := range handlers {
			// Parse afresh for each handler, because a handler may change
			// the request it was given.
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
			if err != nil {
				return
			}
			req.RemoteAddr = "127.0.0.1:50000"

			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)

			if w.Code >= 500 {
				t.Fatalf("%s handler answered %q with %d: %s", name, raw, w.Code, w.Body.String())
			}
			checkFuzzBody(t, name, raw, w)
		}
	})
}

// checkFuzzBody checks that a response body is the JSON that its status
// calls for.
func checkFuzzBody(t *testing.T, name, raw string, w *httptest.ResponseRecorder) {
	t.Helper()

	if w.Code == http.StatusOK {
		var body statsBody
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s handler answered %q with a 200 body that is not JSON: %v", name, raw, err)
		}
		return
	}

	var body errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s handler answered %q with %d and a body that is not JSON: %v", name, raw, w.Code, err)
	}
	if body.Error.Code == "" || body.Error.Target != w.Header().Get("request-id") {
		t.Fatalf("%s handler answered %q with %d and error %+v, want a code and the request-id %q as target",
			name, raw, w.Code, body.Error, w.Header().Get("request-id"))
	}
}
