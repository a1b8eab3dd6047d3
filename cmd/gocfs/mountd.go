package main

import (
	"context"
	"fmt"
	"log"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gocfs/gocfs/mountd"
)

func init() { registerCommand(newMountdCmd) }

func newMountdCmd() *cobra.Command {
	var policyPath, socket string
	var check bool
	cmd := &cobra.Command{
		Use:   "mountd [--policy FILE] [--socket PATH]",
		Short: "Serve verified mounts to unprivileged users (varlink, io.gocfs.MountImage)",
		Long: `Run the mount service: unprivileged users connect to its Unix socket
(varlink interface io.gocfs.MountImage), name an image (a file descriptor
they pass, or an image of a repository the policy serves), and get back a
detached, read-only, nodev, nosuid mount of it, which they attach in a user
and mount namespace of their own. The service mounts only images that pass
the verifier and are canonical (gocfs's writer reproduces them byte for
byte), with their files taken only from the policy's object stores, and only
for the users and groups the policy names, within its limits.

It runs as root. Started by systemd through gocfs-mountd.socket it takes the
socket it is given; otherwise it listens on --socket. See docs/mountd.md
for the policy file and the protocol. --check reads and checks the policy
and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := mountd.LoadPolicy(policyPath)
			if err != nil {
				return err
			}
			if check {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d stores, %d repositories, %d users, %d groups\n", policyPath, len(p.Stores), len(p.Repositories), len(p.Users), len(p.Groups))
				return nil
			}
			return runMountd(cmd, p, socket)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&policyPath, "policy", mountd.DefaultPolicyFile, "the policy file (JSON)")
	fl.StringVar(&socket, "socket", mountd.DefaultSocket, "the socket to listen on (unless systemd passes one)")
	fl.BoolVar(&check, "check", false, "check the policy file and exit")
	return cmd
}

func runMountd(cmd *cobra.Command, p *mountd.Policy, socket string) error {
	logger := log.New(cmd.ErrOrStderr(), "", 0)
	svc, err := mountd.NewService(p, mountd.WithLog(logger.Printf))
	if err != nil {
		return err
	}
	l, err := mountd.Listen(socket)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger.Printf("gocfs mountd: serving on %s", l.Addr())
	if err := svc.Serve(ctx, l); err != nil {
		return err
	}
	logger.Printf("gocfs mountd: stopped")
	return nil
}
