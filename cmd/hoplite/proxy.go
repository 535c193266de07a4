package main

import (
	"fmt"
	"strings"
)

// proxyBackend names the single backend of "hoplite proxy" (in /stats).
const proxyBackend = "upstream"

// proxyCmd is the one-line form, like "caddy reverse-proxy": it builds the
// Config a file with one route "/" to one backend would give, and serves it.
func (c *cli) proxyCmd(args []string) int {
	fs := c.flags("proxy", "--from HOST:PORT --to URL [--to URL ...] [--cert FILE --key FILE] [--admin ADDR] [--data DIR]")
	from := fs.String("from", "", "`HOST:PORT` to serve TLS (h1, h2) and QUIC (h3) on (required)")
	var to serverList
	fs.Var(&to, "to", "upstream `URL`, http://host[:port] or host:port; repeat for several servers (required)")
	cert := fs.String("cert", "", "certificate chain PEM `FILE` (default: the internal CA)")
	key := fs.String("key", "", "private key PEM `FILE` (with --cert)")
	admin := fs.String("admin", "", "admin endpoint `ADDR` (default: none)")
	data := fs.String("data", "", "data `DIR` for the internal CA")
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	usageErr := func(format string, args ...any) int {
		fmt.Fprintf(c.stderr, "hoplite proxy: "+format+"\n", args...)
		fs.Usage()
		return 2
	}
	switch {
	case *from == "":
		return usageErr("--from is required")
	case checkListenAddr(*from) != nil:
		return usageErr("--from %q: %v", *from, checkListenAddr(*from))
	case len(to) == 0:
		return usageErr("--to is required")
	case (*cert == "") != (*key == ""):
		return usageErr("--cert and --key go together")
	case *admin != "" && checkListenAddr(*admin) != nil:
		return usageErr("--admin %q: %v", *admin, checkListenAddr(*admin))
	case *admin != "" && addrsCollide(*from, *admin):
		return usageErr("--admin %s collides with --from %s", *admin, *from)
	}
	cfg := &Config{
		Listen:   *from,
		Admin:    *admin,
		TLS:      TLSConfig{Cert: *cert, Key: *key},
		Routes:   []RouteConfig{{Path: "/", Backend: proxyBackend}},
		Backends: map[string]BackendConfig{proxyBackend: {Servers: to}},
	}
	if err := cfg.validate(); err != nil { // the checks above should leave nothing
		fmt.Fprintln(c.stderr, "hoplite proxy:", err)
		return 2
	}
	return c.serve(cfg, *data)
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
