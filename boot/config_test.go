package boot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		text          string
		etc, vr       MountMode
		root          bool
		unknownPrefix string
	}{
		{"", ModeOverlay, ModeBind, false, ""},
		{"[etc]\nmount = \"none\"\n[var]\nmount = \"overlay\"\n", ModeNone, ModeOverlay, false, ""},
		{"[etc]\ntransient = true\n", ModeTransient, ModeBind, false, ""},
		// mount wins over transient, as in composefs-setup-root's mount_subdir.
		{"[var]\nmount = \"bind\"\ntransient = true\n", ModeOverlay, ModeBind, false, ""},
		{"[root]\ntransient = true\n[etc]\nmount = \"bind\"\n", ModeBind, ModeBind, true, ""},
		{"[etc]\nmout = \"none\"\n", ModeOverlay, ModeBind, false, "etc.mout"},
	}
	for _, tt := range tests {
		c, unknown, err := ParseConfig(strings.NewReader(tt.text))
		if err != nil {
			t.Errorf("%q: %v", tt.text, err)
			continue
		}
		if c.EtcMode() != tt.etc || c.VarMode() != tt.vr || c.Root.Transient != tt.root {
			t.Errorf("%q: etc %s var %s root %v", tt.text, c.EtcMode(), c.VarMode(), c.Root.Transient)
		}
		if got := strings.Join(unknown, ","); got != tt.unknownPrefix {
			t.Errorf("%q: unknown keys %q, want %q", tt.text, got, tt.unknownPrefix)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, text := range []string{
		"[etc]\nmount = \"tmpfs\"\n",
		"[var]\nmount = 1\n",
		"[root]\ntransient = \"yes\"\n",
		"[etc\n",
		"[root]\ntransient = true\n", // and /etc an overlay: three overlays deep
		strings.Repeat("#", maxConfigSize+1),
	} {
		if _, _, err := ParseConfig(strings.NewReader(text)); !errors.Is(err, ErrConfig) {
			t.Errorf("ParseConfig(%.40q) = %v, want ErrConfig", text, err)
		}
	}
}

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	// A missing file is the default configuration.
	c, _, err := ReadConfig(filepath.Join(dir, "none.toml"))
	if err != nil || c.EtcMode() != DefaultEtc || c.VarMode() != DefaultVar {
		t.Fatalf("missing file: %+v %v", c, err)
	}
	// A directory or a FIFO in its place is refused, without blocking.
	if _, _, err := ReadConfig(dir); !errors.Is(err, ErrConfig) {
		t.Errorf("directory: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := mkfifo(fifo); err == nil {
		if _, _, err := ReadConfig(fifo); !errors.Is(err, ErrConfig) {
			t.Errorf("fifo: %v", err)
		}
	}
	p := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(p, []byte("[var]\nmount = \"none\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, _, err := ReadConfig(p); err != nil || c.VarMode() != ModeNone {
		t.Errorf("file: %+v %v", c, err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add("[etc]\nmount = \"transient\"\n[var]\nmount = \"none\"\n[root]\ntransient = false\n")
	f.Add("[etc]\ntransient = true\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, _, err := ParseConfig(strings.NewReader(text))
		if err != nil {
			return
		}
		// What parses is valid, and its rendering parses back the same.
		again, _, err := ParseConfig(strings.NewReader(c.String()))
		if err != nil || again.EtcMode() != c.EtcMode() || again.VarMode() != c.VarMode() || again.Root != c.Root {
			t.Fatalf("%q: %q does not parse back: %+v %v", text, c.String(), again, err)
		}
	})
}
