//go:build race

package frontend

// raceEnabled reports whether the race detector is on.
const raceEnabled = true
