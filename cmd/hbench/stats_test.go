package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"one value", []time.Duration{7}, 50, 7},
		{"one value p99", []time.Duration{7}, 99, 7},
		{"median of odd count", []time.Duration{1, 2, 3, 4, 5}, 50, 3},
		{"median of even count is the lower middle", []time.Duration{1, 2, 3, 4}, 50, 2},
		{"p99 of 1..100", hundred, 99, 99},
		{"p50 of 1..100", hundred, 50, 50},
		{"p100 is the max", hundred, 100, 100},
		{"p99 of 10 values is the max", hundred[:10], 99, 10},
		{"tiny p is the min", hundred, 0.001, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	lat := []time.Duration{5, 1, 4, 2, 3}
	s := summarize(lat)
	want := stats{N: 5, P50: 3, P90: 5, P99: 5, Max: 5}
	if s != want {
		t.Errorf("summarize = %+v, want %+v", s, want)
	}
	if lat[0] != 1 || lat[4] != 5 {
		t.Errorf("summarize did not sort in place: %v", lat)
	}
	if s := summarize(nil); s != (stats{}) {
		t.Errorf("summarize(nil) = %+v, want zero", s)
	}
}
