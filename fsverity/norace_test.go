//go:build !race

package fsverity

const raceEnabled = false
