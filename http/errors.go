package statshttp

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// Error codes sent in the "code" field of an error body. They are the codes
// of Defender's API for the same conditions.
const (
	codeInvalidDomainName   = "InvalidDomainName"
	codeInvalidInput        = "InvalidInput"
	codeUnauthorized        = "Unauthorized"
	codeForbidden           = "Forbidden"
	codeNotFound            = "NotFound"
	codeMethodNotAllowed    = "MethodNotAllowed"
	codeTooManyRequests     = "TooManyRequests"
	codeInternalServerError = "InternalServerError"
)

// Response header names.
const (
	headerRequestID       = "request-id"
	headerClientRequestID = "client-request-id"
)

// maxEchoedBytes caps how much of a client's input an error message
// repeats, so a long path does not come back as a long body.
const maxEchoedBytes = 256

// maxClientRequestIDBytes caps the client-request-id value that is echoed.
const maxClientRequestIDBytes = 128

// errorBody is the OData error envelope.
type errorBody struct {
	Error errorDetail `json:"error"`
}

// errorDetail is the object inside the OData error envelope. Target carries
// the request id, as in Defender's responses.
type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target"`
}

// newRequestID returns 16 random bytes formatted as a version 4 UUID.
func newRequestID() string {
	var b [16]byte

	// crypto/rand.Read never returns an error since Go 1.24: it crashes
	// the program instead when the system source fails.
	_, _ = rand.Read(b[:])

	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80

	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}

// validClientRequestID reports whether id may be echoed in a response
// header: 1 to maxClientRequestIDBytes printable ASCII characters.
func validClientRequestID(id string) bool {
	if id == "" || len(id) > maxClientRequestIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// truncateInput shortens client input that goes into an error message to
// at most maxEchoedBytes, cutting at a UTF-8 boundary and marking the cut.
func truncateInput(s string) string {
	if len(s) <= maxEchoedBytes {
		return s
	}

	cut := maxEchoedBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// writeJSON encodes v as the response body with the given status. It sets
// Content-Length so that HEAD responses carry it too.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var body []byte
	if stats, ok := v.(statsBody); ok {
		// The 200 body is written by hand, because encoding/json's
		// reflection was a measurable share of each request.
		body = stats.appendJSON(make([]byte, 0, 320))
	} else {
		var err error
		body, err = marshalJSON(v)
		if err != nil {
			// The response types hold only strings, numbers and pointers
			// to strings, which always encode.
			panic("statshttp: encoding a response body: " + err.Error())
		}
	}

	// Assigning prepared values skips the key canonicalization of
	// Header.Set; net/http does not modify header values.
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["Cache-Control"] = cacheControlNoStore
	h["X-Content-Type-Options"] = contentTypeOptionsNoSniff
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

var (
	contentTypeJSON           = []string{"application/json"}
	cacheControlNoStore       = []string{"no-store"}
	contentTypeOptionsNoSniff = []string{"nosniff"}
)

// marshalJSON encodes v compactly without escaping <, > and &, which the
// base URL may contain.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}

	// Encode appends a newline, which Defender's bodies do not have.
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// writeError sends an OData error body whose target is requestID.
func writeError(w http.ResponseWriter, status int, code, message, requestID string) {
	writeJSON(w, status, errorBody{Error: errorDetail{
		Code:    code,
		Message: message,
		Target:  requestID,
	}})
}
