//go:build race

package interop

// raceEnabled makes TestMain build the binary under test with -race too.
const raceEnabled = true
