package translate

import "testing"

func TestConnectionSpecific(t *testing.T) {
	tests := []struct {
		name, value string
		want        bool
	}{
		{"connection", "keep-alive", true},
		{"keep-alive", "timeout=5", true},
		{"proxy-connection", "close", true},
		{"transfer-encoding", "chunked", true},
		{"upgrade", "websocket", true},
		{"te", "trailers", false},
		{"te", " Trailers ", false},
		{"te", "gzip", true},
		{"te", "trailers, gzip", true},
		{"Connection", "close", true},
		{"content-length", "3", false},
		{"x-custom", "1", false},
	}
	for _, tt := range tests {
		if got := ConnectionSpecific(tt.name, tt.value); got != tt.want {
			t.Errorf("ConnectionSpecific(%q, %q) = %v, want %v", tt.name, tt.value, got, tt.want)
		}
	}
}
