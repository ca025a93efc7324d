package ingest

import (
	"net/netip"
	"strings"
)

// urlHost reduces a RemoteUrl to its host. Defender writes a URL with a
// scheme, path and query, a host with a port, a bare host or IP address,
// or an IPv6 literal with or without brackets. The host is cut out by
// hand rather than with net/url, because net/url rejects a whole URL over
// a bad percent escape in its path or a port that is not a number. It also
// reads a bare IPv6 address as a host and a port.
func urlHost(remoteURL string) string {
	rest := strings.TrimSpace(remoteURL)
	if _, afterScheme, ok := strings.Cut(rest, "://"); ok {
		rest = afterScheme
	}
	rest = strings.TrimPrefix(rest, "//")

	if end := strings.IndexAny(rest, "/?#"); end >= 0 {
		rest = rest[:end]
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		rest = rest[at+1:]
	}
	return hostWithoutPort(rest)
}

// hostWithoutPort removes the port from a host such as "example.com:8080"
// or "[2001:db8::1]:443", and the brackets from an IPv6 literal. A value
// with more than one colon and no brackets is a bare IPv6 address and is
// returned as it is.
func hostWithoutPort(host string) string {
	if inner, ok := strings.CutPrefix(host, "["); ok {
		if end := strings.IndexByte(inner, ']'); end >= 0 {
			return inner[:end]
		}
		return host
	}
	if strings.Count(host, ":") == 1 {
		host, _, _ = strings.Cut(host, ":")
	}
	return host
}

// isIPAddress reports whether host is an IPv4 or IPv6 address literal,
// with or without brackets and an IPv6 zone such as %eth0.
func isIPAddress(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	_, err := netip.ParseAddr(host)
	return err == nil
}
