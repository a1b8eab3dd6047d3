package repo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Lock takes the repository lock, as composefs-rs does: flock(2) on the
// repository directory, shared by everything that adds to the repository
// or reads it, exclusive for garbage collection. The returned function
// releases it. A package that adds to the repository by itself (writing
// objects, then links that refer to them) holds it shared until its links
// are made, so that garbage collection stays out. While holding it, the
// caller must not call Repo methods that lock (they would wait for an
// exclusive lock held, or hold off one waited for).
//
// Waiting for the lock ends when ctx is done (the error is then ctx's):
// a command interrupted while it waits exits at once. Options.Notice is
// told what is waited for.
//
// flock(2) lets new shared holders in while an exclusive one waits, so a
// steady stream of imports could hold garbage collection off forever. To
// give it its turn, the tmp/ directory serves as a second lock, taken
// first: garbage collection holds it exclusively, so that no new
// operation starts while it waits for those under way to end; the others
// hold it shared only until they have the repository lock. (cfsctl does
// not know this one; it only makes waiting fair, the repository lock
// alone keeps garbage collection apart from imports.)
func (r *Repo) Lock(ctx context.Context, exclusive bool) (unlock func(), err error) {
	fd, err := unix.Openat(r.root.Fd(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("repo: locking %s: %w", r.dir, err)
	}
	turn := -1
	if r.tmp != nil {
		if t, err := unix.Openat(r.tmp.Fd(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			turn = t
		}
	}
	release := func() {
		if turn >= 0 {
			unix.Close(turn)
		}
		unix.Close(fd)
	}
	if turn >= 0 {
		if err := r.flock(ctx, turn, exclusive, "the repository's queue (tmp/)"); err != nil {
			release()
			return nil, err
		}
	}
	if err := r.flock(ctx, fd, exclusive, "the repository"); err != nil {
		release()
		return nil, err
	}
	if !exclusive && turn >= 0 {
		unix.Close(turn)
		turn = -1
	}
	return release, nil
}

// lockPoll bounds the time between two attempts at a lock held by
// another process.
const lockPoll = 100 * time.Millisecond

// flock locks fd (what names it, for messages), saying so through
// Notice if it has to wait, and polling so that ctx can end the wait (a
// blocking flock(2) can't be interrupted: Go restarts it after a signal).
func (r *Repo) flock(ctx context.Context, fd int, exclusive bool, what string) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	err := unix.Flock(fd, how|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		if exclusive {
			r.notice("waiting for other processes holding %s lock on %s, to take it exclusively", what, r.dir)
		} else {
			r.notice("waiting for another process holding %s lock on %s (exclusively)", what, r.dir)
		}
		for delay := 5 * time.Millisecond; ; delay = min(2*delay, lockPoll) {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("repo: waiting for the lock on %s: %w", r.dir, context.Cause(ctx))
			case <-t.C:
			}
			err = unix.Flock(fd, how|unix.LOCK_NB)
			if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("repo: locking %s: %w", r.dir, err)
	}
	return nil
}
