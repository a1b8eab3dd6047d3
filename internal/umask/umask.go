// Package umask reads the process's file mode creation mask.
package umask

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Get returns the process's umask: from /proc/self/status (Linux 4.7 and
// later), which changes nothing; else by setting it and setting it back
// at once, which a file another goroutine creates in between would see.
func Get() int {
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		if m, ok := parse(string(status)); ok {
			return m
		}
	}
	m := unix.Umask(0o22)
	unix.Umask(m)
	return m
}

// parse reads the Umask line of /proc/self/status's text.
func parse(status string) (int, bool) {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return int(m), err == nil && m <= 0o777
		}
	}
	return 0, false
}
