package main

import (
	"slices"
	"time"
)

// stats summarizes a run's latencies.
type stats struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

// summarize sorts lat in place and returns its percentiles; all zero when
// lat is empty.
func summarize(lat []time.Duration) stats {
	slices.Sort(lat)
	s := stats{N: len(lat)}
	if len(lat) == 0 {
		return s
	}
	s.P50 = percentile(lat, 50)
	s.P90 = percentile(lat, 90)
	s.P99 = percentile(lat, 99)
	s.Max = lat[len(lat)-1]
	return s
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted, by the
// nearest-rank method: the smallest value with at least p% of the values
// at or below it. sorted must not be empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(p / 100 * float64(len(sorted)))
	if float64(rank) < p/100*float64(len(sorted)) {
		rank++ // ceiling
	}
	rank = max(rank, 1)
	return sorted[min(rank, len(sorted))-1]
}
