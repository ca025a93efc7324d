// Package statshttp serves the domain statistics of a [domainstats.Store]
// over HTTP in the shape of Microsoft Defender for Endpoint's "Get domain
// statistics" API, so that scripts written against Defender work against an
// organisation's own telemetry by changing only the base URL.
//
// Import it as
//
//	import statshttp "github.com/domainstats/domainstats/http"
//
// The folder is named http, but the package is named statshttp, so it does
// not shadow net/http and importers need no alias. The explicit name above
// only documents that.
//
// # Endpoint
//
// [NewHandler] returns an [http.Handler] that serves one route:
//
//	GET /api/domains/{domain}/stats[?lookBackHours=N]
//
// and HEAD on the same path. A 200 response is a JSON object with the
// fields @odata.context, host, orgPrevalence (a string, as in Defender's
// documented example), organizationPrevalence (the same count as a
// number, as current Defender responses carry it), orgFirstSeen and
// orgLastSeen. Times are RFC 3339 in UTC with second precision and a
// trailing Z, such as 2017-07-30T13:23:48Z. Fractions of a second are
// truncated. The host field is the domain as [domainstats.NormalizeDomain]
// returns it.
//
// lookBackHours is a whole number of hours from 1 to the store's retention
// (720 with the default retention of 30 days). It defaults to 720, or to
// the retention when that is shorter. The store rounds the window outward
// to whole UTC hours. The parameter name is matched without regard to
// case, because Defender's documentation spells it both lookBackHours and
// lookbackhours. A repeated parameter, an unknown parameter or a query
// string that cannot be decoded is rejected with 400.
//
// # Errors
//
// Every error response has the OData body Defender sends:
//
//	{"error":{"code":"InvalidDomainName","message":"Domain name a..b is invalid.","target":"<request id>"}}
//
// The codes and statuses are:
//
//   - InvalidDomainName and InvalidInput: 400.
//   - Unauthorized: 401, with WWW-Authenticate: Bearer.
//   - Forbidden: 403, for a caller without the permission, with
//     WWW-Authenticate: Bearer error="insufficient_scope".
//   - NotFound: 404, for a domain without events in the window and for
//     unknown paths.
//   - MethodNotAllowed: 405, with Allow: GET, HEAD.
//   - TooManyRequests: 429, with Retry-After in seconds.
//   - InternalServerError: 500. Its body never contains the text of the
//     internal error.
//
// The handler logs each 5xx to
// [Options.Logger], when set, with the request id and the error.
//
// # Request ids
//
// Every response, success or error, carries a fresh request id in the
// request-id header: 16 bytes from crypto/rand written as a version 4 UUID,
// the shape of Defender's ids. Error bodies repeat it in "target". When the
// request carries a client-request-id header of 1 to 128 printable ASCII
// characters, the response echoes it so that a client can match responses
// to its own ids, and the 5xx log line includes it.
//
// # Authentication and rate limits
//
// Requests are authenticated by default: [NewHandler] rejects options
// without an [Options.Authenticator] unless [Options.AllowAnonymous] is
// set. [StaticTokens] accepts a fixed set of bearer tokens, each with its
// caller id and permissions, and compares tokens in constant time. A caller
// needs the URL.Read.All permission ([PermissionURLRead]). The handler
// writes no token to a response or a log, but it logs the errors of a
// custom Authenticator as they are.
//
// [Options.RateLimit] turns on per-caller limits with Defender's defaults
// of 100 calls per minute and 1,500 calls per hour.
//
// # Mounting
//
// The handler serves paths that start with /api/. To serve it under a
// prefix, strip the prefix, and set [Options.BaseURL] so that
// @odata.context names the public address:
//
//	mux := http.NewServeMux()
//	mux.Handle("/defender/", http.StripPrefix("/defender", handler))
//	mux.HandleFunc("GET /healthz", healthz) // the host's own routes
//
// # Caveats
//
// The counts are those of the store: exact up to its exact limit
// ([domainstats.Options.ExactLimit]) and HyperLogLog estimates above it.
// The rate limits are token buckets, so a caller that has used its hourly
// budget gets one more call every 2.4 seconds rather than waiting for a
// fixed window to reset. Requests that fail authentication are not rate
// limited, because they have no caller to charge.
package statshttp
