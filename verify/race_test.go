//go:build race

package verify

// raceEnabled: the race detector allocates on its own, so allocation
// counts are not asserted under it.
const raceEnabled = true
