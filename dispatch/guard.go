package dispatch

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"github.com/pimhook/pimhook"
)

// ErrTargetForbidden is the sentinel wrapped by every refusal of the Guard,
// so callers can tell "we would not connect" from "we could not connect"
// with errors.Is. It is a *pimhook.Error so that pimhook.ErrorCode reports
// CodeTargetForbidden for it wherever it surfaces.
var ErrTargetForbidden = &pimhook.Error{
	Kind:    pimhook.KindInvalid,
	Code:    pimhook.CodeTargetForbidden,
	Field:   "callback_url",
	Message: "the callback URL's address is not allowed",
}

// Guard keeps deliveries away from pimhook's own network: loopback, private,
// link-local and cloud metadata addresses, and the other ranges that are not
// the public internet. A callback URL is chosen by a customer, so without it
// any company could make pimhook probe its internal services.
//
// The zero value and a nil *Guard refuse every such range with no exceptions.
type Guard struct {
	allow []netip.Prefix
}

// NewGuard returns a Guard that still lets through addresses inside the allow
// prefixes. Tests and local development allow-list loopback to reach a
// receiver on the same machine.
func NewGuard(allow []netip.Prefix) *Guard {
	g := &Guard{allow: make([]netip.Prefix, 0, len(allow))}
	for _, p := range allow {
		if p.IsValid() {
			g.allow = append(g.allow, p.Masked())
		}
	}
	return g
}

// ParseCIDRs parses a comma-separated list of CIDR prefixes, as a
// configuration option or environment variable carries an allow list. Space
// around items is ignored, empty items are skipped, and a bare address stands
// for itself alone (a /32 or /128).
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("parse CIDR %q: %w", item, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("parse CIDR %q: %w", item, err)
		}
		a = a.WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// refused lists the ranges that netip's predicates do not already cover.
var refused = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"; 0.x.y.z reaches the local host on Linux
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT, internal to the provider
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking, used inside some data centres
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, including the broadcast address
	netip.MustParsePrefix("::/96"),          // deprecated IPv4-compatible addresses, e.g. ::127.0.0.1
	netip.MustParsePrefix("100::/64"),       // discard-only
	netip.MustParsePrefix("fd00:ec2::/32"),  // AWS's IPv6 metadata service lives at fd00:ec2::254
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
}

// nat64 is the well-known NAT64 prefix: such an address reaches the IPv4
// address in its last 32 bits, so that address is what must be checked.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Allowed reports whether a connection to ip may be made: true for public
// addresses and for anything an allow prefix contains, false for every
// internal or reserved range and for invalid addresses.
func (g *Guard) Allowed(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.WithZone("")
	// ::ffff:127.0.0.1 reaches 127.0.0.1: judge the IPv4 address it maps.
	ip = ip.Unmap()
	if g != nil {
		for _, p := range g.allow {
			if p.Contains(ip) {
				return true
			}
		}
	}
	if nat64.Contains(ip) {
		b := ip.As16()
		return g.Allowed(netip.AddrFrom4([4]byte(b[12:])))
	}
	if ip.IsLoopback() || ip.IsUnspecified() || ip.IsPrivate() ||
		ip.IsLinkLocalUnicast() || ip.IsMulticast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range refused {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// Control checks the address a socket is about to connect to. Installed as
// net.Dialer.Control it runs after DNS resolution, on the very IP being
// dialled, so a host name that resolves to a public address when a webhook is
// created and to an internal one later (DNS rebinding) is still refused.
// The error wraps ErrTargetForbidden.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		host, _, splitErr := net.SplitHostPort(address)
		if splitErr != nil {
			host = address
		}
		a, perr := netip.ParseAddr(host)
		if perr != nil {
			// Fail closed: an address we cannot read is not one we can vouch for.
			return fmt.Errorf("dial %s %s: unreadable address: %w", network, address, ErrTargetForbidden)
		}
		ap = netip.AddrPortFrom(a, 0)
	}
	if !g.Allowed(ap.Addr()) {
		return fmt.Errorf("dial %s %s: %w", network, ap.Addr(), ErrTargetForbidden)
	}
	return nil
}

// CheckURL refuses, when a webhook is created, a callback URL whose host is
// plainly internal: an IP literal the Guard refuses, or localhost. That gives
// the user a clear 4xx answer at once instead of failed deliveries later.
// Other host names are not resolved here: what they resolve to can change, so
// the check that matters is Control's, at dial time. ctx is taken so that a
// resolving check can be added later without changing callers.
//
// A refusal is a KindInvalid *pimhook.Error with code CodeTargetForbidden on
// field callback_url; a URL that does not parse gets CodeInvalidURL.
func (g *Guard) CheckURL(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return pimhook.FieldError(pimhook.CodeInvalidURL, "callback_url", "callback_url is not a URL: %v", err)
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		// localhost resolves to both loopback addresses; an allow list that
		// names either one lets it through, as dialling would.
		if g.Allowed(netip.IPv6Loopback()) || g.Allowed(netip.AddrFrom4([4]byte{127, 0, 0, 1})) {
			return nil
		}
		return pimhook.FieldError(pimhook.CodeTargetForbidden, "callback_url",
			"callback_url points at %q, which is this machine", u.Hostname())
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil // a host name: checked when it is dialled
	}
	if !g.Allowed(ip) {
		return pimhook.FieldError(pimhook.CodeTargetForbidden, "callback_url",
			"callback_url points at %s, a loopback, private, link-local or reserved address", ip)
	}
	return nil
}
