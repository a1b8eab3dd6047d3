package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestManPages: install-links --man writes a page for every command and
// every personality, and each page mentions each of its command's flags.
func TestManPages(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	c.ok("install-links", "--mount-helper-dir=", "--man", filepath.Join(dir, "man"), filepath.Join(dir, "bin"))
	check := func(cmd *cobra.Command, page string) {
		b, err := os.ReadFile(filepath.Join(dir, "man", page))
		if err != nil {
			t.Errorf("%s: no man page: %v", cmd.CommandPath(), err)
			return
		}
		text := strings.ReplaceAll(string(b), `\-`, "-")
		each := func(f *pflag.Flag) {
			if f.Hidden {
				return
			}
			if !strings.Contains(text, `\fB--`+f.Name+`\fP`) { // in the list of options
				t.Errorf("%s: the man page does not mention --%s", page, f.Name)
			}
		}
		cmd.NonInheritedFlags().VisitAll(each)
		cmd.InheritedFlags().VisitAll(each)
	}
	root := rootCommand()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	n := 0
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		if !cmd.IsAvailableCommand() && cmd != root {
			return
		}
		check(cmd, "man1/"+strings.ReplaceAll(cmd.CommandPath(), " ", "-")+".1")
		n++
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for name, mk := range personalities {
		check(mk(), "man"+manSection(name)+"/"+name+"."+manSection(name))
		n++
	}
	if n < 40 {
		t.Errorf("only %d commands checked", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "man", "man1", "gocfs-gen-man.1")); err == nil {
		t.Errorf("a man page for the hidden gen-man")
	}
}
