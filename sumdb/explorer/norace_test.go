//go:build !race

package explorer

// raceEnabled reports whether the tests run with the race detector.
const raceEnabled = false
