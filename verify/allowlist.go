package verify

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrAddressNotAllowed means the callback comes from an address outside the
// configured allow-list.
var ErrAddressNotAllowed = errors.New("source address not allowed")

// AllowList restricts callbacks to the addresses a provider publishes
// (Swedbank Pay: 20.91.170.120/29). It checks the client address the server
// determined, which behind a proxy must come from trusted proxies only.
type AllowList struct {
	prefixes []netip.Prefix
}

// ParseAllowList reads CIDRs ("20.91.170.120/29") and single addresses.
func ParseAllowList(entries []string) (*AllowList, error) {
	a := &AllowList{}
	for _, entry := range entries {
		var prefix netip.Prefix
		var err error
		if strings.Contains(entry, "/") {
			prefix, err = netip.ParsePrefix(entry)
		} else {
			var addr netip.Addr
			if addr, err = netip.ParseAddr(entry); err == nil {
				prefix = netip.PrefixFrom(addr, addr.BitLen())
			}
		}
		if err != nil {
			return nil, fmt.Errorf("allow_ips: %q is not an address or CIDR", entry)
		}
		a.prefixes = append(a.prefixes, prefix.Masked())
	}
	if len(a.prefixes) == 0 {
		return nil, errors.New("allow_ips: no address given")
	}
	return a, nil
}

// Name is the check's name in data.verification.
func (a *AllowList) Name() string { return "ip-allowlist" }

// Allow checks a client address as Caddy reports it ("203.0.113.9",
// "2001:db8::1", possibly with a zone or as IPv4-mapped IPv6).
func (a *AllowList) Allow(clientIP string) error {
	addr, err := netip.ParseAddr(clientIP)
	if err != nil {
		return fmt.Errorf("%w: client address unknown", ErrAddressNotAllowed)
	}
	addr = addr.WithZone("").Unmap()
	for _, p := range a.prefixes {
		if p.Contains(addr) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrAddressNotAllowed, addr)
}
