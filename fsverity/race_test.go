//go:build race

package fsverity

const raceEnabled = true
