package main

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"hoplite/backend"
	"hoplite/frontend"
	"hoplite/tlsconf"
	"hoplite/translate"
)

// minimal is the smallest valid config; error cases append to or edit it.
const minimal = `listen: "localhost:8443"
routes:
  - backend: demo
backends:
  demo:
    servers: ["127.0.0.1:9080"]
`

// acme is minimal with a plain listener (line 7) and an open tls.acme
// mapping (line 9); cases append its fields from line 10.
const acme = minimal + "plain_listen: \":80\"\ntls:\n  acme:\n"

var configErrorTests = []struct {
	name string
	yaml string
	want string // the whole error message
}{
	// The file as a whole.
	{"empty file", ``, `config: hoplite.yaml:1: empty configuration`},
	{"only comments", "# nothing here\n", `config: hoplite.yaml:1: empty configuration`},
	{"null document", "~\n", `config: hoplite.yaml:1: empty configuration`},
	{"syntax error", "listen: \"a:1\"\nroutes:\n  - backend: [demo\n", `config: hoplite.yaml:3: YAML syntax error: did not find expected ',' or ']'`},
	{"unclosed flow sequence", "listen: \"a:1\"\nroutes: [\n  {backend: x}\nbackends: {}\n", `config: hoplite.yaml:2: YAML syntax error: did not find expected ',' or ']'`},
	{"unterminated string", "listen: \"a:1\nroutes: []\n", `config: hoplite.yaml:3: YAML syntax error: found unexpected end of stream`},
	{"mapping value in scalar", "listen: a: b\n", `config: hoplite.yaml:1: YAML syntax error: mapping values are not allowed in this context`},
	{"bad indentation", "listen: \"a:1\"\n  routes: x\n", `config: hoplite.yaml:2: YAML syntax error: did not find expected key`},
	{"tab indentation", "listen: \"a:1\"\ntls:\n\tcert: x\n", `config: hoplite.yaml:3: YAML syntax error: found character that cannot start any token`},
	{"two documents", minimal + "---\nlisten: \"b:1\"\n", `config: hoplite.yaml:7: more than one YAML document; expected one`},
	{"top level list", "- listen\n", `config: hoplite.yaml:1: expected a mapping, got a list`},
	{"top level scalar", "hello\n", `config: hoplite.yaml:1: expected a mapping, got string "hello"`},

	// Unknown and duplicate keys, at every level.
	{"unknown top-level field", minimal + "listn: x\n", `config: hoplite.yaml:7: listn: unknown field`},
	{"unknown downstream field", "downstream:\n  idle_timeout: 2m\n  idle_timot: 2m\n" + minimal, `config: hoplite.yaml:3: downstream.idle_timot: unknown field`},
	{"unknown tls field", "tls:\n  certs: x\n" + minimal, `config: hoplite.yaml:2: tls.certs: unknown field`},
	{"unknown route field", strings.Replace(minimal, "- backend: demo", "- backend: demo\n    prefix: /api", 1), `config: hoplite.yaml:4: routes[0].prefix: unknown field`},
	{"unknown backend field", minimal + "    timeout: 5s\n", `config: hoplite.yaml:7: backends.demo.timeout: unknown field`},
	{"duplicate top-level key", minimal + "listen: \"b:1\"\n", `config: hoplite.yaml:7: listen: duplicate key (first at line 1)`},
	{"duplicate nested key", "downstream:\n  idle_timeout: 2m\n  idle_timeout: 3m\n" + minimal, `config: hoplite.yaml:3: downstream.idle_timeout: duplicate key (first at line 2)`},
	{"duplicate backend name", minimal + "  demo:\n    servers: [\"a:1\"]\n", `config: hoplite.yaml:7: backends.demo: duplicate key (first at line 5)`},
	{"merge key", "base: &b {listen: \"a:1\"}\n<<: *b\n", `config: hoplite.yaml:1: base: unknown field`},
	{"merge key only", "<<: {listen: \"a:1\"}\n", `config: hoplite.yaml:1: <<: merge keys are not supported`},
	{"non-string key", minimal + "1: x\n", `config: hoplite.yaml:7: keys must be strings, got integer 1 (quote it to make it a string)`},
	{"empty backend name", minimal + "  \"\":\n    servers: [\"a:1\"]\n", `config: hoplite.yaml:7: backends.: empty name`},

	// Wrong types.
	{"string for bool", minimal + "http3: \"yes\"\n", `config: hoplite.yaml:7: http3: expected true or false, got string "yes"`},
	{"int for string", strings.Replace(minimal, `"localhost:8443"`, "8443", 1), `config: hoplite.yaml:1: listen: expected a string, got integer 8443 (quote it to make it a string)`},
	{"bool for string", minimal + "admin: true\n", `config: hoplite.yaml:7: admin: expected a string, got boolean true (quote it to make it a string)`},
	{"list for mapping", minimal + "tls: [a]\n", `config: hoplite.yaml:7: tls: expected a mapping, got a list`},
	{"scalar for list", strings.Replace(minimal, `["127.0.0.1:9080"]`, `"127.0.0.1:9080"`, 1), `config: hoplite.yaml:6: backends.demo.servers: expected a list, got string "127.0.0.1:9080"`},
	{"mapping for int", minimal + "    max_waiters: {a: 1}\n", `config: hoplite.yaml:7: backends.demo.max_waiters: expected an integer, got a mapping`},
	{"float for int", minimal + "    max_waiters: 1.5\n", `config: hoplite.yaml:7: backends.demo.max_waiters: expected an integer, got number 1.5`},
	{"string for route", "listen: \"a:1\"\nroutes: [demo]\nbackends: {demo: {servers: [\"b:1\"]}}\n", `config: hoplite.yaml:2: routes[0]: expected a mapping, got string "demo"`},

	// Numbers, durations and sizes.
	{"negative duration", minimal + "    connect_timeout: -5s\n", `config: hoplite.yaml:7: backends.demo.connect_timeout: duration -5s must not be negative`},
	{"duration without unit", minimal + "    response_timeout: 60\n", `config: hoplite.yaml:7: backends.demo.response_timeout: invalid duration "60": want a number with a unit: 500ms, 10s, 2m, 1h`},
	{"bad duration", "downstream:\n  read_header_timeout: soon\n" + minimal, `config: hoplite.yaml:2: downstream.read_header_timeout: invalid duration "soon": want a number with a unit: 500ms, 10s, 2m, 1h`},
	{"duration as list", "downstream:\n  idle_timeout: [1s]\n" + minimal, `config: hoplite.yaml:2: downstream.idle_timeout: expected a duration such as 10s, got a list`},
	{"negative integer", minimal + "    max_idle_per_server: -1\n", `config: hoplite.yaml:7: backends.demo.max_idle_per_server: must not be negative, got -1`},
	{"unknown passive health field", minimal + "    passive_health: {max_failures: 2}\n", `config: hoplite.yaml:7: backends.demo.passive_health.max_failures: unknown field`},
	{"negative fail timeout", minimal + "    passive_health:\n      fail_timeout: -1s\n", `config: hoplite.yaml:8: backends.demo.passive_health.fail_timeout: duration -1s must not be negative`},
	{"negative max fails", minimal + "    passive_health:\n      max_fails: -3\n", `config: hoplite.yaml:8: backends.demo.passive_health.max_fails: must not be negative, got -3`},
	{"expect status typo", minimal + "    health_check:\n      path: /healthz\n      expect_status: 2x\n", `config: hoplite.yaml:9: backends.demo.health_check.expect_status: invalid status "2x": want a code such as 200 or a class such as 2xx`},
	{"expect status out of range", minimal + "    health_check:\n      path: /healthz\n      expect_status: 600\n", `config: hoplite.yaml:9: backends.demo.health_check.expect_status: invalid status "600": want a code such as 200 or a class such as 2xx`},
	{"expect status list", minimal + "    health_check:\n      path: /healthz\n      expect_status: [200, 204]\n", `config: hoplite.yaml:9: backends.demo.health_check.expect_status: expected a status such as 200 or 2xx, got a list`},
	{"health check as bool", minimal + "    health_check: true\n", `config: hoplite.yaml:7: backends.demo.health_check: expected a mapping, got boolean true`},
	{"uint32 overflow", "downstream:\n  max_concurrent_streams: 4294967296\n" + minimal, `config: hoplite.yaml:2: downstream.max_concurrent_streams: 4294967296 is out of range`},
	{"bad size unit", "downstream:\n  max_header_bytes: 64KB\n" + minimal, `config: hoplite.yaml:2: downstream.max_header_bytes: invalid size "64KB": want bytes, or a whole number with B, KiB, MiB or GiB`},
	{"negative size", "downstream:\n  max_header_bytes: -1\n" + minimal, `config: hoplite.yaml:2: downstream.max_header_bytes: size -1 must not be negative`},
	{"fractional size", "downstream:\n  max_header_bytes: 1.5KiB\n" + minimal, `config: hoplite.yaml:2: downstream.max_header_bytes: invalid size "1.5KiB": want bytes, or a whole number with B, KiB, MiB or GiB`},
	{"huge size", "downstream:\n  max_header_bytes: 99999999999999GiB\n" + minimal, `config: hoplite.yaml:2: downstream.max_header_bytes: size "99999999999999GiB" is too large`},
	{"header size over int32", "downstream:\n  max_header_bytes: 4GiB\n" + minimal, `config: hoplite.yaml:2: downstream.max_header_bytes: 4294967296 is too large`},
	{"frame size too small", "downstream:\n  max_read_frame_size: 1KiB\n" + minimal, `config: hoplite.yaml:2: downstream.max_read_frame_size: 1024 is outside the HTTP/2 range 16KiB to 16MiB-1 (RFC 9113 §6.5.2)`},
	{"limit negative", "downstream:\n  max_conns_per_ip: -1\n" + minimal, `config: hoplite.yaml:2: downstream.max_conns_per_ip: -1 is out of range: want 0 to 2147483647, or off`},
	{"limit too large", "downstream:\n  h2_max_resets: 4294967296\n" + minimal, `config: hoplite.yaml:2: downstream.h2_max_resets: 4294967296 is out of range: want 0 to 2147483647, or off`},
	{"limit as word", "downstream:\n  h2_max_empty_frames: none\n" + minimal, `config: hoplite.yaml:2: downstream.h2_max_empty_frames: expected a count or off, got string "none"`},
	{"limit as list", "downstream:\n  h2_max_control_frames: [1]\n" + minimal, `config: hoplite.yaml:2: downstream.h2_max_control_frames: expected a count or off, got a list`},
	{"flood window bad", "downstream:\n  h2_flood_window: 10\n" + minimal, `config: hoplite.yaml:2: downstream.h2_flood_window: invalid duration "10": want a number with a unit: 500ms, 10s, 2m, 1h`},
	{"frame size too large", "downstream:\n  max_read_frame_size: 16MiB\n" + minimal, `config: hoplite.yaml:2: downstream.max_read_frame_size: 16777216 is outside the HTTP/2 range 16KiB to 16MiB-1 (RFC 9113 §6.5.2)`},

	// Addresses.
	{"no listen", minimal[len("listen: \"localhost:8443\"\n"):], `config: hoplite.yaml:1: listen: required (host:port for TLS and HTTP/3)`},
	{"listen without port", strings.Replace(minimal, "localhost:8443", "localhost", 1), `config: hoplite.yaml:1: listen: invalid address "localhost": want host:port`},
	{"listen bad port", strings.Replace(minimal, "localhost:8443", "localhost:https", 1), `config: hoplite.yaml:1: listen: invalid address "localhost:https": invalid port "https"`},
	{"duplicate listen addresses", minimal + "plain_listen: \"localhost:8443\"\n", `config: hoplite.yaml:7: plain_listen: address localhost:8443 collides with listen (localhost:8443)`},
	{"admin collides with wildcard", minimal + "plain_listen: \":8080\"\nadmin: \"127.0.0.1:8080\"\n", `config: hoplite.yaml:8: admin: address 127.0.0.1:8080 collides with plain_listen (:8080)`},
	{"localhost collides with loopback", minimal + "admin: \"127.0.0.1:8443\"\n", `config: hoplite.yaml:7: admin: address 127.0.0.1:8443 collides with listen (localhost:8443)`},

	// TLS.
	{"cert without key", "tls:\n  cert: c.pem\n" + minimal, `config: hoplite.yaml:1: tls.key: required when tls.cert is set`},
	{"key without cert", "tls:\n  key: k.pem\n" + minimal, `config: hoplite.yaml:1: tls.cert: required when tls.key is set`},
	{"names with static cert", "tls:\n  cert: c.pem\n  key: k.pem\n  names: [a.test]\n" + minimal, `config: hoplite.yaml:4: tls.names: only used by the internal CA; remove it, or remove tls.cert and tls.key`},
	{"bad name", "tls:\n  names: [a.test, \"a..b\"]\n" + minimal, `config: hoplite.yaml:2: tls.names[1]: invalid name "a..b": not a DNS name`},
	{"wildcard inside name", "tls:\n  names: [\"a.*.test\"]\n" + minimal, `config: hoplite.yaml:2: tls.names[0]: invalid name "a.*.test": "*" is only allowed as the whole first label, as in *.example.com`},

	// ACME. acme is minimal plus a plain listener, with tls.acme on line 9
	// and its fields from line 10.
	{"acme with static files", minimal + "plain_listen: \":80\"\ntls:\n  cert: c.pem\n  key: k.pem\n  acme:\n    domains: [a.example.com]\n", `config: hoplite.yaml:11: tls.acme: cannot be combined with tls.cert and tls.key; choose one certificate source`},
	{"acme with names", acme + "    domains: [a.example.com]\n  names: [a.test]\n", `config: hoplite.yaml:11: tls.names: only used by the internal CA; remove it, or remove tls.acme`},
	{"acme without domains or on_demand", minimal + "plain_listen: \":80\"\ntls:\n  acme: {email: a@example.com}\n", `config: hoplite.yaml:9: tls.acme: needs domains, on_demand or both`},
	{"acme wildcard domain", acme + "    domains: [a.example.com, \"*.example.com\"]\n", `config: hoplite.yaml:10: tls.acme.domains[1]: invalid domain "*.example.com": wildcard certificates need the DNS-01 challenge, which hoplite does not support; list the names, or put "*.example.com" in on_demand.allow`},
	{"acme IP domain", acme + "    domains:\n      - a.example.com\n      - 192.0.2.1\n", `config: hoplite.yaml:12: tls.acme.domains[1]: invalid domain "192.0.2.1": IP addresses are not supported; use a DNS name`},
	{"acme bad domain", acme + "    domains: [\"a..example.com\"]\n", `config: hoplite.yaml:10: tls.acme.domains[0]: invalid domain "a..example.com": not a DNS name`},
	{"acme duplicate domain", acme + "    domains: [Example.com, example.com.]\n", `config: hoplite.yaml:10: tls.acme.domains[1]: duplicate domain "example.com." (also domains[0])`},
	{"acme http CA", acme + "    domains: [a.example.com]\n    ca: http://ca.test/dir\n", `config: hoplite.yaml:11: tls.acme.ca: invalid CA "http://ca.test/dir": want an https:// ACME directory URL, "letsencrypt" or "letsencrypt-staging"`},
	{"acme unknown CA shortcut", acme + "    domains: [a.example.com]\n    ca: zerossl\n", `config: hoplite.yaml:11: tls.acme.ca: invalid CA "zerossl": want an https:// ACME directory URL, "letsencrypt" or "letsencrypt-staging"`},
	{"acme bad email", acme + "    domains: [a.example.com]\n    email: \"Admin <admin@example.com>\"\n", `config: hoplite.yaml:11: tls.acme.email: invalid email "Admin <admin@example.com>": want a plain address such as admin@example.com`},
	{"acme empty trusted root", acme + "    domains: [a.example.com]\n    trusted_roots:\n      - \"\"\n", `config: hoplite.yaml:12: tls.acme.trusted_roots[0]: empty file name`},
	{"acme half EAB", acme + "    domains: [a.example.com]\n    eab:\n      key_id: kid-1\n", `config: hoplite.yaml:11: tls.acme.eab.mac_key: required when tls.acme.eab.key_id is set`},
	{"acme no challenge", acme + "    domains: [a.example.com]\n    challenges:\n      http_01: false\n      tls_alpn_01: false\n", `config: hoplite.yaml:11: tls.acme.challenges: at least one of http_01 and tls_alpn_01 must be enabled`},
	{"acme http-01 by default without plain_listen", minimal + "tls:\n  acme:\n    domains: [a.example.com]\n", `config: hoplite.yaml:8: tls.acme.challenges.http_01: HTTP-01 needs a plain-HTTP listener on port 80: set plain_listen (such as ":80"), or set http_01: false to use TLS-ALPN-01 only`},
	{"acme http-01 without plain_listen", minimal + "tls:\n  acme:\n    domains: [a.example.com]\n    challenges:\n      tls_alpn_01: true\n      http_01: true\n", `config: hoplite.yaml:12: tls.acme.challenges.http_01: HTTP-01 needs a plain-HTTP listener on port 80: set plain_listen (such as ":80"), or set http_01: false to use TLS-ALPN-01 only`},
	{"acme on_demand without policy", acme + "    on_demand:\n      max_orders_per_minute: 5\n", `config: hoplite.yaml:10: tls.acme.on_demand: needs allow, ask or both: without a policy any client could make hoplite order certificates for names of its choosing`},
	{"acme on_demand empty", acme + "    on_demand: {}\n", `config: hoplite.yaml:10: tls.acme.on_demand: needs allow, ask or both: without a policy any client could make hoplite order certificates for names of its choosing`},
	{"acme on_demand star", acme + "    on_demand:\n      allow: [\"*\"]\n", `config: hoplite.yaml:11: tls.acme.on_demand.allow[0]: invalid name "*": "*" would allow any name; use *.example.com for one label in front of example.com`},
	{"acme on_demand IP", acme + "    on_demand:\n      allow: [a.example.com, 10.0.0.1]\n", `config: hoplite.yaml:11: tls.acme.on_demand.allow[1]: invalid name "10.0.0.1": IP addresses are not obtained on demand; use a DNS name or *.name`},
	{"acme on_demand inner wildcard", acme + "    on_demand:\n      allow: [\"a.*.example.com\"]\n", `config: hoplite.yaml:11: tls.acme.on_demand.allow[0]: invalid name "a.*.example.com": "*" is only allowed as the whole first label, as in *.example.com`},
	{"acme on_demand bad ask", acme + "    on_demand:\n      ask: localhost:9000/ask\n", `config: hoplite.yaml:11: tls.acme.on_demand.ask: invalid URL "localhost:9000/ask": want http:// or https://`},
	{"acme negative order limit", acme + "    on_demand:\n      allow: [\"*.example.com\"]\n      max_orders_per_minute: -1\n", `config: hoplite.yaml:12: tls.acme.on_demand.max_orders_per_minute: must not be negative, got -1`},
	{"acme renew interval without unit", acme + "    domains: [a.example.com]\n    renew_check_interval: 10\n", `config: hoplite.yaml:11: tls.acme.renew_check_interval: invalid duration "10": want a number with a unit: 500ms, 10s, 2m, 1h`},
	{"acme unknown field", acme + "    domain: [a.example.com]\n", `config: hoplite.yaml:10: tls.acme.domain: unknown field`},
	{"acme unknown challenge", acme + "    domains: [a.example.com]\n    challenges: {dns_01: true}\n", `config: hoplite.yaml:11: tls.acme.challenges.dns_01: unknown field`},
	{"acme challenge not bool", acme + "    domains: [a.example.com]\n    challenges: {http_01: \"yes\"}\n", `config: hoplite.yaml:11: tls.acme.challenges.http_01: expected true or false, got string "yes"`},
	{"acme several errors", acme + "    domains: [\"*.example.com\"]\n    ca: ftp://ca\n    on_demand: {}\n",
		"config: hoplite.yaml:10: tls.acme.domains[0]: invalid domain \"*.example.com\": wildcard certificates need the DNS-01 challenge, which hoplite does not support; list the names, or put \"*.example.com\" in on_demand.allow\n" +
			"config: hoplite.yaml:11: tls.acme.ca: invalid CA \"ftp://ca\": want an https:// ACME directory URL, \"letsencrypt\" or \"letsencrypt-staging\"\n" +
			"config: hoplite.yaml:12: tls.acme.on_demand: needs allow, ask or both: without a policy any client could make hoplite order certificates for names of its choosing"},

	// Routes and cross references.
	{"no routes key", "listen: \"a:1\"\nbackends:\n  demo:\n    servers: [\"b:1\"]\n", `config: hoplite.yaml:1: routes: at least one route is required`},
	{"empty routes", strings.Replace(minimal, "routes:\n  - backend: demo\n", "routes: []\n", 1), `config: hoplite.yaml:2: routes: at least one route is required`},
	{"route to unknown backend", strings.Replace(minimal, "- backend: demo", "- backend: demo\n  - path: /api\n    backend: api", 1), `config: hoplite.yaml:5: routes[1].backend: unknown backend "api" (defined: demo)`},
	{"route without backend", strings.Replace(minimal, "- backend: demo", "- backend: demo\n  - path: /x", 1), `config: hoplite.yaml:4: routes[1].backend: required`},
	{"route path without slash", strings.Replace(minimal, "- backend: demo", "- backend: demo\n    path: api", 1), `config: hoplite.yaml:4: routes[0].path: invalid path "api": must start with /`},
	{"route host star", strings.Replace(minimal, "- backend: demo", "- backend: demo\n    host: \"*\"", 1), `config: hoplite.yaml:4: routes[0].host: invalid host "*": leave host empty to match any host`},
	{"route host with port", strings.Replace(minimal, "- backend: demo", "- backend: demo\n    host: a.test:443", 1), `config: hoplite.yaml:4: routes[0].host: invalid host "a.test:443": a host without port`},
	{"route host with scheme", strings.Replace(minimal, "- backend: demo", "- backend: demo\n    host: https://a.test", 1), `config: hoplite.yaml:4: routes[0].host: invalid host "https://a.test": a host only, without scheme or path`},
	{"duplicate route", strings.Replace(minimal, "- backend: demo", "- {host: A.test, path: /, backend: demo}\n  - {host: a.test, backend: demo}", 1), `config: hoplite.yaml:4: routes[1]: same host and path as routes[0]`},

	// Backends.
	{"backend without servers", strings.Replace(minimal, `servers: ["127.0.0.1:9080"]`, "connect_timeout: 1s", 1), `config: hoplite.yaml:5: backends.demo.servers: at least one server is required`},
	{"empty servers", strings.Replace(minimal, `["127.0.0.1:9080"]`, "[]", 1), `config: hoplite.yaml:6: backends.demo.servers: at least one server is required`},
	{"server bad scheme", strings.Replace(minimal, `["127.0.0.1:9080"]`, "\n      - \"a:1\"\n      - \"htp://x\"", 1), `config: hoplite.yaml:8: backends.demo.servers[1]: invalid server "htp://x": scheme must be http`},
	{"server https", strings.Replace(minimal, `127.0.0.1:9080`, `https://a.test`, 1), `config: hoplite.yaml:6: backends.demo.servers[0]: invalid server "https://a.test": upstream TLS is not supported yet`},
	{"server without port", strings.Replace(minimal, `127.0.0.1:9080`, `origin`, 1), `config: hoplite.yaml:6: backends.demo.servers[0]: invalid server "origin": want http://host:port or host:port`},
	{"server with path", strings.Replace(minimal, `127.0.0.1:9080`, `http://a.test/api`, 1), `config: hoplite.yaml:6: backends.demo.servers[0]: invalid server "http://a.test/api": a server has no path or query; routes choose paths`},
	{"server bad port", strings.Replace(minimal, `127.0.0.1:9080`, `http://a.test:0`, 1), `config: hoplite.yaml:6: backends.demo.servers[0]: invalid server "http://a.test:0": invalid port "0"`},
	{"duplicate server", strings.Replace(minimal, `"127.0.0.1:9080"`, `"127.0.0.1:80", "http://127.0.0.1"`, 1), `config: hoplite.yaml:6: backends.demo.servers[1]: duplicate server 127.0.0.1:80 (also servers[0])`},
	{"health check without path", minimal + "    health_check:\n      interval: 5s\n", `config: hoplite.yaml:7: backends.demo.health_check.path: required: a path starting with /, such as /healthz, got ""`},
	{"health check relative path", minimal + "    health_check:\n      interval: 5s\n      path: healthz\n", `config: hoplite.yaml:9: backends.demo.health_check.path: required: a path starting with /, such as /healthz, got "healthz"`},
	{"passive health off with settings", minimal + "    passive_health:\n      max_fails: 2\n      disabled: true\n", `config: hoplite.yaml:9: backends.demo.passive_health.disabled: max_fails and fail_timeout mean nothing when disabled; remove them or the switch`},

	// Several problems: all reported, in line order.
	{"several errors", "routes:\n  - backend: api\nlisten: \"a\"\nbackends:\n  demo:\n    servers: [\"ftp://x\"]\n",
		"config: hoplite.yaml:2: routes[0].backend: unknown backend \"api\" (defined: demo)\n" +
			"config: hoplite.yaml:3: listen: invalid address \"a\": want host:port\n" +
			"config: hoplite.yaml:6: backends.demo.servers[0]: invalid server \"ftp://x\": scheme must be http"},
}

func TestLoadConfigErrors(t *testing.T) {
	for _, tt := range configErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig("hoplite.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error; config %+v", cfg)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func TestLoadConfigFileErrors(t *testing.T) {
	if _, err := loadConfig("/nonexistent/hoplite.yaml"); err == nil ||
		!strings.HasPrefix(err.Error(), "config: open /nonexistent/hoplite.yaml:") {
		t.Errorf("missing file: %v", err)
	}
}

// TestConfigPlan checks that a config using every field maps onto the
// components' configs field by field.
func TestConfigPlan(t *testing.T) {
	const full = `
listen: ":8443"
http3: false
plain_listen: ":8080"
admin: "127.0.0.1:2019"
data_dir: /var/lib/hoplite
tls:
  names: [proxy.test, "*.apps.test", 10.1.2.3]
downstream:
  read_header_timeout: 5s
  idle_timeout: 90s
  max_header_bytes: 32 KiB
  max_concurrent_streams: 100
  max_read_frame_size: 65536
  max_requests_per_conn: 1000
  keep_alive_header: false
  max_conns_per_ip: 64
  write_stall_timeout: 30s
  h2_flood_window: 5s
  h2_max_resets: 200
  h2_max_control_frames: off
  h2_max_empty_frames: 50
routes:
  - {host: "*.apps.test", path: /api/, backend: api}
  - path: /
    backend: web
backends:
  web:
    servers: ["http://10.0.0.1", "10.0.0.2:8080", "http://[::1]:81/"]
  api:
    servers: ["http://api.internal:9000"]
    connect_timeout: 1s
    response_timeout: 2m
    idle_timeout: 30s
    max_idle_per_server: 8
    max_conns_per_server: 100
    max_waiters: 0
    hint_margin: 2s
    max_requests_per_conn: 500
    max_lifetime: 1h
    buffer_request_body: 1MiB
    passive_health: {max_fails: 5, fail_timeout: 30s}
    health_check:
      path: /healthz?deep=1
      interval: 3s
      timeout: 1s
      healthy_threshold: 4
      unhealthy_threshold: 6
      expect_status: 204
`
	cfg, err := parseConfig("full.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.plan("/flag/dir")
	want := plan{
		TLS: tlsconf.Config{
			DataDir: "/flag/dir",
			Names:   []string{"proxy.test", "*.apps.test", "10.1.2.3"},
		},
		InternalCA: true,
		Frontend: frontend.Config{
			Addr:                 ":8443",
			DisableHTTP3:         true,
			PlainAddr:            ":8080",
			ReadHeaderTimeout:    5 * time.Second,
			IdleTimeout:          90 * time.Second,
			MaxHeaderBytes:       32 << 10,
			MaxConcurrentStreams: 100,
			MaxReadFrameSize:     65536,
			MaxRequestsPerConn:   1000,
			NoKeepAliveHeader:    true,
			MaxConnsPerIP:        64,
			WriteStallTimeout:    30 * time.Second,
			H2FloodWindow:        5 * time.Second,
			H2MaxResets:          200,
			H2MaxControlFrames:   -1,
			H2MaxEmptyFrames:     50,
		},
		Translate: translate.Config{Routes: []translate.Route{
			{Host: "*.apps.test", PathPrefix: "/api/", Backend: "api"},
			{PathPrefix: "/", Backend: "web"},
		}},
		Backends: []backend.Config{
			{
				Name:                  "api",
				Servers:               []string{"api.internal:9000"},
				DialTimeout:           time.Second,
				ResponseHeaderTimeout: 2 * time.Minute,
				IdleTimeout:           30 * time.Second,
				MaxIdlePerServer:      8,
				MaxConnsPerServer:     100,
				HintMargin:            2 * time.Second,
				MaxRequestsPerConn:    500,
				MaxLifetime:           time.Hour,
				BufferRequestBody:     1 << 20,
				PassiveHealth:         backend.PassiveHealth{MaxFails: 5, FailTimeout: 30 * time.Second},
				HealthCheck: &backend.HealthCheck{Path: "/healthz?deep=1", Interval: 3 * time.Second, Timeout: time.Second,
					HealthyThreshold: 4, UnhealthyThreshold: 6, ExpectStatus: backend.StatusRange{Min: 204, Max: 204}},
			},
			{Name: "web", Servers: []string{"10.0.0.1:80", "10.0.0.2:8080", "[::1]:81"}},
		},
		Admin: "127.0.0.1:2019",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan:\n got %+v\nwant %+v", got, want)
	}
	if cfg.DataDir != "/var/lib/hoplite" {
		t.Errorf("data_dir = %q", cfg.DataDir)
	}

	// Static certificates; absent sections mean zero (component defaults).
	cfg, err = parseConfig("static.yaml", []byte("listen: \"a:1\"\ntls: {cert: c.pem, key: k.pem}\ndownstream:\nroutes: [{backend: b}]\nbackends: {b: {servers: [\"c:2\"]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.plan("")
	if p.InternalCA || p.TLS.CertFile != "c.pem" || p.TLS.KeyFile != "k.pem" {
		t.Errorf("static TLS plan: %+v", p.TLS)
	}
	if p.Frontend.DisableHTTP3 || p.Frontend.IdleTimeout != 0 || p.Frontend.MaxHeaderBytes != 0 {
		t.Errorf("defaults not zero: %+v", p.Frontend)
	}
}

// TestDefaultConfig checks the built-in config: it loads, and says what
// the documentation promises.
func TestDefaultConfig(t *testing.T) {
	onDisk, err := os.ReadFile("default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(onDisk) != string(defaultConfig) {
		t.Fatal("embedded config differs from default.yaml")
	}
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.plan("/data")
	switch {
	case p.Frontend.Addr != "localhost:8443", p.Frontend.DisableHTTP3, !p.InternalCA,
		p.Frontend.PlainAddr != "127.0.0.1:8080", p.Admin != "127.0.0.1:2019":
		t.Errorf("listeners: %+v", p)
	case len(p.Translate.Routes) != 1 || p.Translate.Routes[0] != (translate.Route{PathPrefix: "/", Backend: "demo"}):
		t.Errorf("routes: %+v", p.Translate.Routes)
	case len(p.Backends) != 1 || p.Backends[0].Name != "demo" ||
		!reflect.DeepEqual(p.Backends[0].Servers, []string{"127.0.0.1:9080"}):
		t.Errorf("backends: %+v", p.Backends)
	}
	// The explicit values in the reference config are the documented
	// frontend defaults, so writing them changes nothing.
	if f := p.Frontend; f.ReadHeaderTimeout != frontend.DefaultReadHeaderTimeout ||
		f.IdleTimeout != frontend.DefaultIdleTimeout ||
		f.MaxHeaderBytes != frontend.DefaultMaxHeaderBytes ||
		f.MaxConcurrentStreams != frontend.DefaultMaxConcurrentStreams ||
		f.MaxReadFrameSize != frontend.DefaultMaxReadFrameSize ||
		f.MaxConnsPerIP != frontend.DefaultMaxConnsPerIP ||
		f.WriteStallTimeout != frontend.DefaultWriteStallTimeout ||
		f.H2FloodWindow != frontend.DefaultH2FloodWindow ||
		f.H2MaxResets != frontend.DefaultH2MaxResets ||
		f.H2MaxControlFrames != frontend.DefaultH2MaxControl ||
		f.H2MaxEmptyFrames != frontend.DefaultH2MaxEmptyFrames {
		t.Errorf("downstream values differ from frontend defaults: %+v", f)
	}
}

func TestParseServer(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"http://127.0.0.1:9080", "127.0.0.1:9080", ""},
		{"http://origin", "origin:80", ""},
		{"HTTP://origin:81/", "origin:81", ""},
		{"origin:8080", "origin:8080", ""},
		{"[::1]:8080", "[::1]:8080", ""},
		{"http://[::1]", "[::1]:80", ""},
		{"https://origin", "", "upstream TLS is not supported yet"},
		{"htp://x", "", "scheme must be http"},
		{"http://u:p@origin", "", "user info is not allowed"},
		{"http://origin?x=1", "", "a server has no path or query; routes choose paths"},
		{"http://:80", "", "missing host"},
		{"origin", "", "want http://host:port or host:port"},
		{"origin:99999", "", `invalid port "99999"`},
		{"", "", "want http://host:port or host:port"},
	}
	for _, tt := range tests {
		got, err := parseServer(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && err.Error() != tt.err) {
			t.Errorf("parseServer(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestSizeAndDuration(t *testing.T) {
	cfg, err := parseConfig("s.yaml", []byte(minimal+`downstream:
  max_header_bytes: 1 MiB
  max_read_frame_size: 16384B
  read_header_timeout: 0
  idle_timeout: 1h30m
`))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Downstream
	if d.MaxHeaderBytes != 1<<20 || d.MaxReadFrameSize != 16384 || d.ReadHeaderTimeout != 0 ||
		time.Duration(d.IdleTimeout) != 90*time.Minute {
		t.Errorf("downstream = %+v", d)
	}
}

func TestAliases(t *testing.T) {
	cfg, err := parseConfig("a.yaml", []byte(`listen: "a:1"
routes: [{backend: one}, {path: /two, backend: two}]
backends:
  one: &common
    servers: ["b:1"]
    idle_timeout: 5s
  two: *common
`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Backends["one"], cfg.Backends["two"]) {
		t.Errorf("alias not resolved: %+v", cfg.Backends)
	}
}

// FuzzLoadConfig checks that the loader never panics and that every
// failure is a located config error.
func FuzzLoadConfig(f *testing.F) {
	f.Add(defaultConfig)
	f.Add([]byte(minimal))
	for _, tt := range configErrorTests {
		f.Add([]byte(tt.yaml))
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("backends: {x: &b {servers: [*b]}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseConfig("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: fuzz.yaml") {
				t.Fatalf("error without location: %v", err)
			}
			return
		}
		cfg.plan("/data")
	})
}

// TestConfigPlanACME checks that tls.acme maps onto tlsconf.ACMEConfig
// field by field, and that absent fields are tlsconf's zero defaults.
func TestConfigPlanACME(t *testing.T) {
	const full = `
listen: ":443"
plain_listen: ":80"
tls:
  acme:
    domains: [example.com, www.example.com]
    ca: letsencrypt-staging
    email: admin@example.com
    trusted_roots: [/etc/hoplite/private-ca.pem]
    eab: {key_id: kid-1, mac_key: bWFjLWtleQ}
    storage: /var/lib/hoplite/acme
    challenges: {http_01: false}
    on_demand:
      allow: ["*.example.com"]
      ask: http://127.0.0.1:9000/ask
      max_orders_per_minute: 5
    renew_check_interval: 1h
routes: [{backend: b}]
backends: {b: {servers: ["c:2"]}}
`
	cfg, err := parseConfig("acme.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.plan("/data")
	want := tlsconf.Config{DataDir: "/data", ACME: &tlsconf.ACMEConfig{
		Domains:            []string{"example.com", "www.example.com"},
		CA:                 "letsencrypt-staging",
		Email:              "admin@example.com",
		TrustedRoots:       []string{"/etc/hoplite/private-ca.pem"},
		EAB:                &tlsconf.EAB{KeyID: "kid-1", MACKey: "bWFjLWtleQ"},
		Storage:            "/var/lib/hoplite/acme",
		DisableHTTP01:      true,
		OnDemand:           &tlsconf.OnDemandConfig{Allow: []string{"*.example.com"}, Ask: "http://127.0.0.1:9000/ask", MaxOrdersPerMinute: 5},
		RenewCheckInterval: time.Hour,
	}}
	if p.InternalCA || !reflect.DeepEqual(p.TLS, want) {
		t.Errorf("plan:\n got %+v %+v\nwant %+v %+v", p.TLS, p.TLS.ACME, want, want.ACME)
	}

	cfg, err = parseConfig("small.yaml", []byte("listen: \":443\"\nplain_listen: \":80\"\ntls: {acme: {domains: [example.com]}}\nroutes: [{backend: b}]\nbackends: {b: {servers: [\"c:2\"]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p = cfg.plan("/data")
	if want := (tlsconf.ACMEConfig{Domains: []string{"example.com"}}); p.InternalCA || !reflect.DeepEqual(*p.TLS.ACME, want) {
		t.Errorf("defaults: %+v", p.TLS.ACME)
	}
}

// TestDefaultConfigACMEBlock keeps the commented tls.acme reference in
// default.yaml honest: uncommented, it loads, and its values are the
// documented defaults where it says so.
func TestDefaultConfigACMEBlock(t *testing.T) {
	lines := strings.Split(string(defaultConfig), "\n")
	start := slices.Index(lines, "  # acme:")
	if start < 0 {
		t.Fatal(`default.yaml has no "  # acme:" block`)
	}
	end := start
	for end < len(lines) && strings.HasPrefix(lines[end], "  # ") {
		lines[end] = "  " + strings.TrimPrefix(lines[end], "  # ")
		end++
	}
	cfg, err := parseConfig("default.yaml", []byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("uncommented acme block:\n%s\n%v", strings.Join(lines[start:end], "\n"), err)
	}
	p := cfg.plan("/data")
	a := p.TLS.ACME
	if p.InternalCA || a == nil {
		t.Fatalf("plan: %+v", p)
	}
	want := tlsconf.ACMEConfig{
		Domains:      []string{"example.com", "www.example.com"},
		TrustedRoots: []string{},
		OnDemand:     &tlsconf.OnDemandConfig{Allow: []string{"*.example.com"}, MaxOrdersPerMinute: tlsconf.DefaultMaxOrdersPerMinute},
	}
	if !reflect.DeepEqual(*a, want) {
		t.Errorf("acme block: %+v %+v", a, a.OnDemand)
	}
}

// TestDefaultConfigHealth keeps the health sections of default.yaml
// honest: the passive values shown are backend's defaults, and the
// commented health_check block, uncommented, loads with the documented
// defaults.
func TestDefaultConfigHealth(t *testing.T) {
	lines := strings.Split(string(defaultConfig), "\n")
	start := slices.Index(lines, "    # health_check:")
	if start < 0 {
		t.Fatal(`default.yaml has no "    # health_check:" block`)
	}
	for i := start; i < len(lines) && strings.HasPrefix(lines[i], "    # "); i++ {
		lines[i] = "    " + strings.TrimPrefix(lines[i], "    # ")
	}
	cfg, err := parseConfig("default.yaml", []byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("uncommented health_check block: %v", err)
	}
	b := cfg.plan("/data").Backends[0]
	if want := (backend.PassiveHealth{MaxFails: 3, FailTimeout: 10 * time.Second}); b.PassiveHealth != want {
		t.Errorf("passive_health: %+v, want %+v", b.PassiveHealth, want)
	}
	want := backend.HealthCheck{Path: "/healthz", Interval: 5 * time.Second, Timeout: 2 * time.Second,
		HealthyThreshold: 2, UnhealthyThreshold: 3, ExpectStatus: backend.StatusRange{Min: 200, Max: 299}}
	if b.HealthCheck == nil || *b.HealthCheck != want {
		t.Errorf("health_check: %+v, want %+v", b.HealthCheck, want)
	}
	if _, err := backend.New(b); err != nil {
		t.Error(err)
	}
}
