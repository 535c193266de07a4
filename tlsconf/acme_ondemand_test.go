package tlsconf

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOnDemandPolicy(t *testing.T) {
	var (
		mu    sync.Mutex
		asked []string
	)
	ask := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.RawQuery)
		mu.Unlock()
		switch r.URL.Query().Get("domain") {
		case "yes.test":
			w.WriteHeader(http.StatusOK)
		case "created.test":
			w.WriteHeader(http.StatusCreated) // only 200 allows
		case "moved.test":
			http.Redirect(w, r, "/elsewhere?domain=yes.test", http.StatusFound)
		case "slow.test":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			http.Error(w, "no", http.StatusForbidden)
		}
	}))
	defer ask.Close()

	managed := map[string]bool{"managed.example.test": true}
	allowOnly, err := newOnDemandPolicy(OnDemandConfig{Allow: []string{"Exact.Example.Test", "*.wild.example.test"}}, managed, nil)
	if err != nil {
		t.Fatal(err)
	}
	withAsk, err := newOnDemandPolicy(OnDemandConfig{Allow: []string{"*.wild.example.test"}, Ask: ask.URL + "/check?token=abc"}, managed, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		policy *onDemandPolicy
		host   string
		want   string // "" allows; else a substring of the refusal
	}{
		{"exact", allowOnly, "exact.example.test", ""},
		{"exact, other case, trailing dot", allowOnly, "EXACT.example.test.", ""},
		{"wildcard label", allowOnly, "a.wild.example.test", ""},
		{"wildcard apex", allowOnly, "wild.example.test", "not in the on-demand allow list"},
		{"wildcard two labels", allowOnly, "a.b.wild.example.test", "not in the on-demand allow list"},
		{"suffix is not a label", allowOnly, "xwild.example.test", "not in the on-demand allow list"},
		{"managed domain", allowOnly, "managed.example.test", "is a managed domain"},
		{"IP address", allowOnly, "192.0.2.1", "is an IP address"},
		{"invalid name", allowOnly, "bad name!", "not a valid host name"},
		{"empty", allowOnly, "", "not a valid host name"},
		{"unlisted", allowOnly, "other.test", "not in the on-demand allow list"},
		{"ask 200", withAsk, "yes.test", ""},
		{"ask 403", withAsk, "no.test", `ask endpoint answered "403 Forbidden" for "no.test"`},
		{"ask 201", withAsk, "created.test", `ask endpoint answered "201 Created"`},
		{"ask redirect not followed", withAsk, "moved.test", "redirects are not followed"},
		{"allow-list before ask", withAsk, "z.wild.example.test", ""},
		{"managed before ask", withAsk, "managed.example.test", "is a managed domain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.decide(context.Background(), tt.host)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	mu.Lock()
	got := strings.Join(asked, " ")
	mu.Unlock()
	// Only names off the allow list were asked, with the URL's own query
	// kept and the name escaped.
	if want := "domain=yes.test&token=abc domain=no.test&token=abc domain=created.test&token=abc domain=moved.test&token=abc"; got != want {
		t.Errorf("asked:\n got %s\nwant %s", got, want)
	}

	// The handshake's context bounds the question.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := withAsk.decide(ctx, "slow.test"); err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Errorf("slow ask: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("slow ask took %v", d)
	}
	// An unreachable ask endpoint refuses.
	down, err := newOnDemandPolicy(OnDemandConfig{Ask: "http://127.0.0.1:1/ask"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := down.decide(context.Background(), "a.test"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("unreachable ask: %v", err)
	}
}

func TestTokenBucket(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := newTokenBucket(3, clock.Now)
	takes := func(n int) (got int) {
		for range n {
			if b.take() {
				got++
			}
		}
		return got
	}
	if got := takes(5); got != 3 {
		t.Fatalf("full bucket gave %d tokens, want the burst of 3", got)
	}
	clock.Set(clock.Now().Add(19 * time.Second))
	if takes(1) != 0 {
		t.Error("token before 20s (3 per minute)")
	}
	clock.Set(clock.Now().Add(time.Second))
	if got := takes(3); got != 1 {
		t.Errorf("after 20s: %d tokens, want 1", got)
	}
	clock.Set(clock.Now().Add(time.Hour))
	if got := takes(10); got != 3 {
		t.Errorf("after an hour: %d tokens, want the burst of 3", got)
	}
	clock.Set(clock.Now().Add(-time.Minute)) // a clock step back adds nothing
	if takes(1) != 0 {
		t.Error("token after the clock went back")
	}
}
