package smart

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Redirect URIs. fosite matches a requested redirect URI against the registered ones by string,
// except that a loopback one (http://127.0.0.1 or http://[::1]) matches on any port for every
// client, and it looks at the host only, so http://evil%2f@127.0.0.1:8765/ passed as a loopback
// URI. Billy checks first, with its own rules, and only then lets fosite run:
//
//   - a redirect URI is an absolute https URL, or http on a loopback host (localhost, 127.0.0.1,
//     [::1]), in the canonical form net/url gives it, without userinfo or a fragment; this holds at
//     registration and again at authorization (for clients registered before the rule);
//   - at authorization it equals a registered one, character for character;
//   - except for native apps (application_type native, RFC 8252 section 7.3): an http redirect URI
//     on a loopback IP literal may differ from a registered one on the same address, path and query
//     in its port only, since the app listens on whatever port is free.

// checkRedirectURI says what is wrong with a redirect URI, or nil.
func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("redirect URI %q is not a URL", raw)
	case strings.Contains(raw, "#"):
		return fmt.Errorf("redirect URI %q has a fragment", raw)
	case u.User != nil:
		return fmt.Errorf("redirect URI %q has userinfo (a name before @)", raw)
	case !u.IsAbs() || u.Opaque != "" || u.Host == "":
		return fmt.Errorf("redirect URI %q is not an absolute URL with a host", raw)
	case u.String() != raw:
		// Escapes in the host, spaces, an upper-case scheme...: one spelling per URI, so that exact
		// matching means what it says.
		return fmt.Errorf("redirect URI %q is not in canonical form (%q)", raw, u.String())
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return nil
	}
	return fmt.Errorf("redirect URI %q: want an https URL, or http on localhost, 127.0.0.1 or [::1]", raw)
}

func isLoopbackHost(host string) bool {
	return host == "localhost" || isLoopbackIP(host)
}

func isLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// errRedirectURI is the authorization's refusal of a redirect URI (never redirected to).
var errRedirectURI = errors.New("the redirect_uri is not one registered for this client")

// matchRedirectURI checks a requested redirect URI (empty: the client's only registered one)
// against c's registration.
func matchRedirectURI(requested string, c *Client) error {
	if requested == "" {
		if len(c.RedirectURIs) != 1 {
			return errors.New("redirect_uri is required: the client has several registered")
		}
		requested = c.RedirectURIs[0]
	}
	if err := checkRedirectURI(requested); err != nil {
		return err
	}
	for _, r := range c.RedirectURIs {
		if r == requested && checkRedirectURI(r) == nil {
			return nil
		}
	}
	if !c.Native {
		return errRedirectURI
	}
	req, _ := url.Parse(requested) // checked above
	if req.Scheme != "http" || !isLoopbackIP(req.Hostname()) {
		return errRedirectURI
	}
	for _, r := range c.RedirectURIs {
		reg, err := url.Parse(r)
		if err != nil || checkRedirectURI(r) != nil {
			continue
		}
		if reg.Scheme == "http" && reg.Hostname() == req.Hostname() && reg.EscapedPath() == req.EscapedPath() && reg.RawQuery == req.RawQuery {
			return nil
		}
	}
	return errRedirectURI
}
