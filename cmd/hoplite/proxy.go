package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// proxyBackend names the single backend of "hoplite proxy" (in /stats).
const proxyBackend = "upstream"

// proxyCmd is the one-line form, like "caddy reverse-proxy": it builds the
// Config a file with one route "/" to one backend would give, and serves it.
//
// Certificates: --cert and --key if given; else, when --from names a public
// DNS name, ACME for that name (Let's Encrypt production unless --acme-ca
// says otherwise), listening on all interfaces on --from's port (443 if
// none) plus a plain listener on :80 for HTTP-01 and the redirect to https;
// else the internal CA, listening on --from as given.
func (c *cli) proxyCmd(args []string) int {
	cfg, data, code := c.proxyConfig(args)
	if cfg == nil {
		return code
	}
	return c.serve(cfg, data)
}

// proxyConfig parses proxy's flags into a validated Config and the --data
// flag. With a nil Config, code is the exit status (0 after -h).
func (c *cli) proxyConfig(args []string) (_ *Config, data string, code int) {
	fs := c.flags("proxy", "--from HOST[:PORT] --to URL [--to URL ...] [--cert FILE --key FILE] [--acme-ca URL] [--acme-email ADDR] [--acme-root FILE] [--admin ADDR] [--data DIR]")
	from := fs.String("from", "", "`HOST[:PORT]` to serve TLS (h1, h2) and QUIC (h3) on (required); a public DNS name gets an ACME certificate and port 443 by default")
	var to serverList
	fs.Var(&to, "to", "upstream `URL`, http://host[:port] or host:port; repeat for several servers (required)")
	cert := fs.String("cert", "", "certificate chain PEM `FILE` (default: ACME for a public --from, else the internal CA)")
	key := fs.String("key", "", "private key PEM `FILE` (with --cert)")
	acmeCA := fs.String("acme-ca", "", "ACME directory `URL` for a public --from (default: Let's Encrypt production; \"letsencrypt-staging\" for its staging)")
	acmeEmail := fs.String("acme-email", "", "ACME account contact `ADDR` (optional)")
	var acmeRoots fileList
	fs.Var(&acmeRoots, "acme-root", "PEM `FILE` trusted for the ACME CA's HTTPS, for private or test CAs; repeatable")
	admin := fs.String("admin", "", "admin endpoint `ADDR` (default: none)")
	dataFlag := fs.String("data", "", "data `DIR` for the internal CA and ACME storage")
	if code := c.parse(fs, args); code >= 0 {
		return nil, "", code
	}
	usageErr := func(format string, args ...any) (*Config, string, int) {
		fmt.Fprintf(c.stderr, "hoplite proxy: "+format+"\n", args...)
		fs.Usage()
		return nil, "", 2
	}
	host, port, hasPort := splitFrom(*from)
	useACME := *cert == "" && *key == "" && isPublicName(host)
	listen, plain := *from, ""
	if useACME {
		// The name is for the certificate; the CA and clients reach it
		// through DNS, on whatever address this host has (or is
		// forwarded to), so listen on all interfaces.
		if !hasPort {
			port = "443"
		}
		listen, plain = ":"+port, ":80"
	}
	acmeFlags := *acmeCA != "" || *acmeEmail != "" || len(acmeRoots) > 0
	switch {
	case *from == "":
		return usageErr("--from is required")
	case (*cert == "") != (*key == ""):
		return usageErr("--cert and --key go together")
	case !useACME && checkListenAddr(*from) != nil:
		return usageErr("--from %q: %v", *from, checkListenAddr(*from))
	case useACME && checkListenAddr(listen) != nil:
		return usageErr("--from %q: %v", *from, checkListenAddr(listen))
	case len(to) == 0:
		return usageErr("--to is required")
	case acmeFlags && !useACME:
		return usageErr("--acme-ca, --acme-email and --acme-root apply only when --from names a public DNS name and --cert is not given")
	case useACME && checkACMECA(*acmeCA) != nil:
		return usageErr("--acme-ca %q: %v", *acmeCA, checkACMECA(*acmeCA))
	case *admin != "" && checkListenAddr(*admin) != nil:
		return usageErr("--admin %q: %v", *admin, checkListenAddr(*admin))
	case *admin != "" && addrsCollide(listen, *admin):
		return usageErr("--admin %s collides with --from %s", *admin, listen)
	case *admin != "" && plain != "" && addrsCollide(plain, *admin):
		return usageErr("--admin %s collides with the HTTP listener %s", *admin, plain)
	}
	cfg := &Config{
		Listen:      listen,
		PlainListen: plain,
		Admin:       *admin,
		TLS:         TLSConfig{Cert: *cert, Key: *key},
		Routes:      []RouteConfig{{Path: "/", Backend: proxyBackend}},
		Backends:    map[string]BackendConfig{proxyBackend: {Servers: to}},
	}
	if useACME {
		cfg.TLS.ACME = &ACMEConfig{
			Domains:      []string{strings.ToLower(strings.TrimSuffix(host, "."))},
			CA:           *acmeCA,
			Email:        *acmeEmail,
			TrustedRoots: acmeRoots,
		}
	}
	if err := cfg.validate(); err != nil { // the checks above leave little
		fmt.Fprintln(c.stderr, "hoplite proxy:", err)
		return nil, "", 2
	}
	return cfg, *dataFlag, 0
}

// splitFrom splits --from into host and port; without a port (a bare name
// or IPv4 address, or a bracketed IPv6 address) hasPort is false.
func splitFrom(from string) (host, port string, hasPort bool) {
	if h, p, err := net.SplitHostPort(from); err == nil {
		return h, p, true
	}
	if strings.HasPrefix(from, "[") && strings.HasSuffix(from, "]") {
		return from[1 : len(from)-1], "", false
	}
	return from, "", false
}

// isPublicName reports whether host is a DNS name a public CA could issue
// for: a name with a dot, not an IP address, not localhost or a name under
// a suffix that is never publicly delegated (.localhost, RFC 6761 §6.3;
// .local, RFC 6762; .internal, reserved by ICANN for private use;
// .home.arpa, RFC 8375).
func isPublicName(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "" || h == "localhost" || net.ParseIP(h) != nil || !strings.Contains(h, ".") ||
		strings.Contains(h, "*") || checkDNSName(h) != nil {
		return false
	}
	for _, s := range []string{".localhost", ".local", ".internal", ".home.arpa"} {
		if strings.HasSuffix(h, s) {
			return false
		}
	}
	return true
}

// serverList is a repeatable --to flag; each value must parse as a server.
type serverList []string

func (l *serverList) String() string { return strings.Join(*l, ",") }

func (l *serverList) Set(s string) error {
	if _, err := parseServer(s); err != nil {
		return err
	}
	*l = append(*l, s)
	return nil
}

// fileList is a repeatable flag of file names.
type fileList []string

func (l *fileList) String() string { return strings.Join(*l, ",") }

func (l *fileList) Set(s string) error {
	if s == "" {
		return errors.New("empty file name")
	}
	*l = append(*l, s)
	return nil
}
