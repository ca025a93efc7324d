package statshttp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/domainstats/domainstats"
)

// defaultLookBackHours is the window used when a request has no
// lookBackHours parameter: 30 days, Defender's default.
const defaultLookBackHours = 720

// odataContextSuffix follows the base URL in @odata.context. It names
// Defender's entity type, which clients may check.
const odataContextSuffix = "/api/$metadata#microsoft.windowsDefenderATP.api.InOrgDomainStats"

// Options configures the handler. A nil *Options takes every default, and
// [NewHandler] then rejects it because it has no authenticator.
type Options struct {
	// Authenticator finds the caller of each request. If nil, NewHandler
	// returns an error unless AllowAnonymous is set.
	Authenticator Authenticator

	// AllowAnonymous serves requests without authentication. Rate limits
	// then apply per remote IP address, so behind a reverse proxy every
	// client shares the proxy's limits. It must not be set together with
	// Authenticator.
	AllowAnonymous bool

	// BaseURL is the scheme, host and optional path prefix that
	// @odata.context starts with, such as "https://stats.example.org" or
	// "https://example.org/defender". If empty, defaults to the request's
	// scheme and Host header, without any prefix stripped before the
	// handler. Set it when the handler is mounted under a prefix or
	// behind a reverse proxy.
	BaseURL string

	// ZeroForUnknown makes a domain without events in the window get 200
	// with prevalence 0 and null first and last seen, as Defender's
	// current documentation describes. If false, such a domain gets 404
	// NotFound, as Defender's documented API once did.
	ZeroForUnknown bool

	// RateLimit turns on per-caller rate limits. If nil, calls are not
	// limited. &RateLimit{} applies Defender's limits.
	RateLimit *RateLimit

	// Now is the clock of the rate limits. If nil, defaults to time.Now.
	// The store's windows use the store's own clock.
	Now func() time.Time

	// Logger receives one line per 5xx response, with the request id and
	// the error. If nil, the handler does not log.
	Logger *slog.Logger
}

// handler serves the domain statistics API. It is safe for concurrent use
// by multiple goroutines.
type handler struct {
	store          *domainstats.Store
	authenticator  Authenticator // nil when anonymous
	baseURL        string        // without a trailing slash, or empty
	zeroForUnknown bool
	limiter        *rateLimiter // nil when calls are not limited
	logger         *slog.Logger // nil when silent
	mux            *http.ServeMux
}

// NewHandler returns an [http.Handler] that serves the statistics of store
// at /api/domains/{domain}/stats. It returns an error when store is nil,
// when opts has no Authenticator and does not set AllowAnonymous, when it
// sets both, or when BaseURL is not an absolute http or https URL.
func NewHandler(store *domainstats.Store, opts *Options) (http.Handler, error) {
	if store == nil {
		return nil, errors.New("statshttp: store is nil")
	}
	if opts == nil {
		opts = &Options{}
	}

	if opts.Authenticator == nil && !opts.AllowAnonymous {
		return nil, errors.New("statshttp: no Authenticator configured; set Options.Authenticator, or set Options.AllowAnonymous to serve without authentication")
	}
	if opts.Authenticator != nil && opts.AllowAnonymous {
		return nil, errors.New("statshttp: Options.Authenticator and Options.AllowAnonymous are both set; set only one")
	}

	baseURL, err := checkBaseURL(opts.BaseURL)
	if err != nil {
		return nil, err
	}

	h := &handler{
		store:          store,
		authenticator:  opts.Authenticator,
		baseURL:        baseURL,
		zeroForUnknown: opts.ZeroForUnknown,
		logger:         opts.Logger,
		mux:            http.NewServeMux(),
	}

	if opts.RateLimit != nil {
		now := opts.Now
		if now == nil {
			now = time.Now
		}
		h.limiter = newRateLimiter(*opts.RateLimit, now)
	}

	// The stats pattern has no method, so that other methods reach
	// serveStats and get an OData 405 body rather than ServeMux's text.
	h.mux.HandleFunc("/api/domains/{domain}/stats", h.serveStats)
	h.mux.HandleFunc("/", h.serveNotFound)
	return h, nil
}

// checkBaseURL validates an Options.BaseURL and returns it without a
// trailing slash.
func checkBaseURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}

	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("statshttp: invalid Options.BaseURL %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("statshttp: invalid Options.BaseURL %q: expected an http or https URL with a host and no user, query or fragment, such as https://stats.example.org", raw)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// ServeHTTP gives every response a request id, then routes the request.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := newRequestID()
	w.Header().Set(headerRequestID, id)
	if cid := r.Header.Get(headerClientRequestID); validClientRequestID(cid) {
		w.Header().Set(headerClientRequestID, cid)
	}
	r = r.WithContext(withRequestID(r.Context(), id))

	// A domain with percent-encoded slashes, such as a pasted URL, can
	// decode to an unclean path that ServeMux would redirect. Route the
	// stats path by its escaped form, so that such a domain gets 400
	// InvalidDomainName.
	if domain, ok := statsPathDomain(r.URL.EscapedPath()); ok {
		r.SetPathValue("domain", domain)
		h.serveStats(w, r)
		return
	}

	// ServeMux redirects a path such as /api//x to its clean form, but
	// under http.StripPrefix the Location it sends lacks the prefix. An
	// unclean path matches no route here, so it gets 404 instead.
	if !isCleanPath(r.URL.Path) {
		h.serveNotFound(w, r)
		return
	}

	h.mux.ServeHTTP(w, r)
}

// statsPathDomain returns the decoded domain of an escaped path of the
// form /api/domains/{domain}/stats. The segments "." and ".." are left to
// ServeMux, which treats them as path steps.
func statsPathDomain(escapedPath string) (string, bool) {
	rest, ok := strings.CutPrefix(escapedPath, "/api/domains/")
	if !ok {
		return "", false
	}
	segment, ok := strings.CutSuffix(rest, "/stats")
	if !ok || segment == "" || segment == "." || segment == ".." || strings.Contains(segment, "/") {
		return "", false
	}
	domain, err := url.PathUnescape(segment)
	if err != nil {
		return "", false
	}
	return domain, true
}

// isCleanPath reports whether p is absolute and already in the form that
// ServeMux would redirect to.
func isCleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}

	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean == p
}

// serveNotFound sends 404 for paths outside the API.
func (h *handler) serveNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, codeNotFound,
		fmt.Sprintf("Resource %s was not found. The only resource is /api/domains/{domain}/stats.", truncateInput(r.URL.Path)),
		requestID(r.Context()))
}

// serveStats handles GET and HEAD on /api/domains/{domain}/stats.
func (h *handler) serveStats(w http.ResponseWriter, r *http.Request) {
	id := requestID(r.Context())

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed,
			fmt.Sprintf("Method %s is not allowed. Use GET or HEAD.", truncateInput(r.Method)), id)
		return
	}

	caller, ok := h.authorize(w, r)
	if !ok {
		return
	}

	if h.limiter != nil {
		d := h.limiter.allow(caller.ID)
		if !d.allowed {
			w.Header().Set("Retry-After", strconv.FormatInt(int64(d.retryAfter/time.Second), 10))
			writeError(w, http.StatusTooManyRequests, codeTooManyRequests, d.message(), id)
			return
		}
	}

	rawDomain := r.PathValue("domain")
	domain, err := domainstats.NormalizeDomain(rawDomain)
	if err != nil {
		h.writeStoreError(w, r, err, rawDomain)
		return
	}

	retention := h.store.Retention()
	lookBackHours, rejection := parseLookBack(r.URL.RawQuery, retention)
	if rejection != "" {
		writeError(w, http.StatusBadRequest, codeInvalidInput, rejection, id)
		return
	}

	stats, err := h.store.StatsLookBack(domain, time.Duration(lookBackHours)*time.Hour)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, h.newStatsBody(r, stats))
	case errors.Is(err, domainstats.ErrNotFound) && h.zeroForUnknown:
		writeJSON(w, http.StatusOK, h.newStatsBody(r, domainstats.Stats{Host: domain}))
	case errors.Is(err, domainstats.ErrNotFound):
		writeError(w, http.StatusNotFound, codeNotFound,
			fmt.Sprintf("Domain %s has no events in the last %s.", domain, hoursText(lookBackHours)), id)
	default:
		h.writeStoreError(w, r, err, rawDomain)
	}
}

// hoursText returns "hour" for 1 and "N hours" otherwise.
func hoursText(n int64) string {
	if n == 1 {
		return "hour"
	}
	return strconv.FormatInt(n, 10) + " hours"
}

// authorize authenticates the request and checks its permission. When it
// returns false, it has already sent the error response.
func (h *handler) authorize(w http.ResponseWriter, r *http.Request) (Caller, bool) {
	id := requestID(r.Context())

	if h.authenticator == nil {
		return Caller{ID: remoteIP(r), Permissions: []string{PermissionURLRead}}, true
	}

	caller, err := h.authenticator.Authenticate(r)
	switch {
	case errors.Is(err, ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeError(w, http.StatusUnauthorized, codeUnauthorized,
			"Unauthorized: the request has no valid bearer token. Send the header \"Authorization: Bearer <token>\".", id)
		return Caller{}, false
	case err != nil:
		h.serveInternalError(w, r, fmt.Errorf("authenticating: %w", err))
		return Caller{}, false
	}

	for _, p := range caller.Permissions {
		if p == PermissionURLRead {
			return caller, true
		}
	}

	w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+PermissionURLRead+`"`)
	writeError(w, http.StatusForbidden, codeForbidden,
		"Forbidden: the caller lacks the "+PermissionURLRead+" permission.", id)
	return Caller{}, false
}

// remoteIP returns the IP address of the request's peer, which identifies
// anonymous callers. It ignores X-Forwarded-For, which a client can forge.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// writeStoreError maps an error of the store to a response. rawDomain is
// the domain as the request spelled it.
func (h *handler) writeStoreError(w http.ResponseWriter, r *http.Request, err error, rawDomain string) {
	id := requestID(r.Context())

	switch {
	case errors.Is(err, domainstats.ErrInvalidDomain):
		writeError(w, http.StatusBadRequest, codeInvalidDomainName,
			fmt.Sprintf("Domain name %s is invalid.", truncateInput(rawDomain)), id)
	case errors.Is(err, domainstats.ErrInvalidLookBack):
		// parseLookBack rejects these first, so this means the store's
		// retention changed between the two calls.
		writeError(w, http.StatusBadRequest, codeInvalidInput,
			"Invalid input lookBackHours: it exceeds the store's retention.", id)
	default:
		h.serveInternalError(w, r, err)
	}
}

// serveInternalError logs err and sends a 500 body without its text.
func (h *handler) serveInternalError(w http.ResponseWriter, r *http.Request, err error) {
	id := requestID(r.Context())

	if h.logger != nil {
		attrs := []slog.Attr{
			slog.String("request_id", id),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Any("error", err),
		}
		if cid := r.Header.Get(headerClientRequestID); validClientRequestID(cid) {
			attrs = append(attrs, slog.String("client_request_id", cid))
		}
		h.logger.LogAttrs(r.Context(), slog.LevelError, "statshttp: request failed", attrs...)
	}

	writeError(w, http.StatusInternalServerError, codeInternalServerError,
		"An internal error occurred. Retry the request, and give the target id to the administrator if it fails again.", id)
}
