package main

// Dynamic shell completion ("gocfs completion bash|zsh|fish" writes the
// scripts, cobra's): image and stream names read from the repository the
// command line names, read-only, within a time limit, and never an error
// (no repository, a locked one: no candidates).

import (
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/repo"
)

// completeTimeout bounds the wait for the repository (its lock is shared,
// but a garbage collection holds it exclusively).
const completeTimeout = 2 * time.Second

// completeImages completes the first n arguments of cmd with the
// repository's image references, as NAME and refs/NAME; the arguments
// after them with file names.
func completeImages(cmd *cobra.Command, rf *repoFlags, n int) {
	cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) >= n {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return imageCandidates(rf, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeImageFlag completes the value of cmd's flag with image
// references.
func completeImageFlag(cmd *cobra.Command, rf *repoFlags, flag string) {
	cmd.RegisterFlagCompletionFunc(flag, func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return imageCandidates(rf, toComplete), cobra.ShellCompDirectiveNoFileComp
	})
}

// completeStreams completes cmd's argument with the repository's split
// streams (content identifiers and refs/NAME).
func completeStreams(cmd *cobra.Command, rf *repoFlags) {
	cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names, _ := withRepo(rf, func(r *repo.Repo) ([]string, error) { return r.Streams() })
		return withPrefix(names, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// imageCandidates lists the references starting with prefix, as NAME and
// as refs/NAME (cfsctl offers both).
func imageCandidates(rf *repoFlags, prefix string) []string {
	refs, _ := withRepo(rf, func(r *repo.Repo) ([]string, error) {
		refs, err := r.Refs()
		names := make([]string, 0, 2*len(refs))
		for _, ref := range refs {
			names = append(names, ref.Name, "refs/"+ref.Name)
		}
		return names, err
	})
	return withPrefix(refs, prefix)
}

// withRepo opens the repository read-only and calls fn, giving up after
// completeTimeout.
func withRepo(rf *repoFlags, fn func(*repo.Repo) ([]string, error)) ([]string, error) {
	path, err := rf.repoPath()
	if err != nil {
		return nil, err
	}
	type result struct {
		names []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		r, err := repo.Open(path, repo.Options{ReadOnly: true})
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer r.Close()
		names, err := fn(r)
		done <- result{names, err}
	}()
	select {
	case res := <-done:
		return res.names, res.err
	case <-time.After(completeTimeout):
		return nil, nil
	}
}

func withPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}
