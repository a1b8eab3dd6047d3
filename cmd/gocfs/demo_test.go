package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := runDemo(&out, t.TempDir()+"/demo", false); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	want := []string{"digest: ", "reproducible", "verified", "demo passed"}
	if os.Geteuid() == 0 {
		want = append(want, "mounted at", "the mounted tree equals the source", "unmounted")
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("demo output lacks %q:\n%s", w, out.String())
		}
	}
}
