package tlsconf

import (
	"strings"
	"testing"
)

func TestNamePolicy(t *testing.T) {
	p, err := newNamePolicy([]string{"proxy.example.test", "*.apps.example.test", "203.0.113.9", "Upper.Example.TEST."})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ok   bool
	}{
		// RFC 6761 localhost.
		{"localhost", true},
		{"LOCALHOST", true},
		{"app.localhost", true},
		{"a.b.localhost", true},
		{"evillocalhost", false},
		{"localhost.example.com", false},
		// Other non-delegable suffixes.
		{"printer.local", true},
		{"db.internal", true},
		{"nas.home.arpa", true},
		{"local", false},
		{"internal", false},
		{"home.arpa", false},
		{"xinternal", false},
		// Addresses.
		{"127.0.0.1", true},
		{"127.8.9.10", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"10.1.2.3", true},
		{"172.16.0.1", true},
		{"192.168.1.10", true},
		{"169.254.1.1", true},
		{"fe80::1", true},
		{"fd12:3456::1", true},
		{"8.8.8.8", false},
		{"2001:4860:4860::8888", false},
		{"0.0.0.0", false},
		{"203.0.113.9", true}, // listed
		{"203.0.113.10", false},
		// Configured names.
		{"proxy.example.test", true},
		{"PROXY.example.test", true},
		{"upper.example.test", true},
		{"other.example.test", false},
		{"a.apps.example.test", true},
		{"apps.example.test", false},     // a wildcard does not cover its base
		{"a.b.apps.example.test", false}, // nor two labels (RFC 6125 §6.4.3)
		// Public names.
		{"example.com", false},
		{"www.google.com", false},
		// Malformed.
		{"", false},
		{"a..localhost", false},
		{"-a.localhost", false},
		{"a b.localhost", false},
		{"*.localhost", false},
		{"x\x00.localhost", false},
		{strings.Repeat("a", 64) + ".localhost", false},
		{strings.Repeat("a.", 126) + "localhost", false}, // 261 octets
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ip := normalizeName(tt.name)
			ok, reason := p.allowed(n, ip)
			if ok != tt.ok {
				t.Errorf("allowed(%q) = %v (%s), want %v", tt.name, ok, reason, tt.ok)
			}
			if !ok && reason == "" {
				t.Errorf("refusal of %q has no reason", tt.name)
			}
		})
	}
}

func TestNamePolicyRejectsBadEntries(t *testing.T) {
	tests := []struct {
		name  string
		entry string
	}{
		{"space", "a b"},
		{"empty", ""},
		{"bare wildcard", "*"},
		{"two-label wildcard", "*.*.example.test"},
		{"partial wildcard", "a*.example.test"},
		{"URL", "https://example.test"},
		{"host:port", "example.test:443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newNamePolicy([]string{"ok.example.test", tt.entry})
			if err == nil {
				t.Fatalf("entry %q accepted", tt.entry)
			}
			if want := "tlsconf: tls.names[1] "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
		})
	}
}
