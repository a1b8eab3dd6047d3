package mountd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/varlink/go/varlink"
	"golang.org/x/sys/unix"
)

// Service serves the [InterfaceName] varlink interface: it mounts the
// images callers name, if the policy lets them and the image is admissible
// ([Admit]), and hands back the mount's file descriptor. Its methods may
// be called from several goroutines.
type Service struct {
	policy *Policy
	vl     *varlink.Service
	logf   func(format string, a ...any)

	mu      sync.Mutex
	callers map[uint32]*callerState // by uid
	wg      sync.WaitGroup          // connections being served
	work    sync.WaitGroup          // requests being worked on, answered or not
	open    atomic.Int64            // connections served by Serve
}

// callerState is what the service counts for one uid.
type callerState struct {
	conns   int         // connections open
	working int         // requests being worked on (answered or not)
	mounts  []time.Time // mounts made within the window
}

// Option configures a [Service].
type Option func(*Service)

// WithLog sends the service's log (each refusal with the caller and why,
// each mount) to logf instead of the standard log package.
func WithLog(logf func(format string, a ...any)) Option {
	return func(s *Service) { s.logf = logf }
}

// NewService returns a service that serves what policy says.
func NewService(policy *Policy, opts ...Option) (*Service, error) {
	if policy == nil {
		return nil, errors.New("mountd: no policy")
	}
	vl, err := varlink.NewService("gocfs", "gocfs mountd", "1", "https://github.com/gocfs/gocfs")
	if err != nil {
		return nil, err
	}
	s := &Service{policy: policy, vl: vl, logf: log.Printf, callers: map[uint32]*callerState{}}
	for _, o := range opts {
		o(s)
	}
	if err := vl.RegisterInterface(&iface{s}); err != nil {
		return nil, err
	}
	return s, nil
}

// Serve accepts connections on l and serves each until ctx is done or l
// fails; it then closes l, waits for the connections being served to end
// and returns the error (nil when ctx ended it).
func (s *Service) Serve(ctx context.Context, l *net.UnixListener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer s.work.Wait()
	defer s.wg.Wait()
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.Close()
			return fmt.Errorf("mountd: accepting: %w", err)
		}
		if s.open.Add(1) > maxConnections {
			s.open.Add(-1)
			s.logf("mountd: more than %d connections: closing a new one", maxConnections)
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.open.Add(-1)
			s.ServeConn(ctx, c)
		}()
	}
}

// ServeConn serves one connection until the peer closes it, it
// misbehaves (a malformed or too large message, too many descriptors), it
// stays idle longer than the policy's timeout, or ctx is done; then it
// closes c.
func (s *Service) ServeConn(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	lim := s.policy.Limits
	mc := &msgConn{c: c, maxMessage: lim.MaxMessage, idle: time.Duration(lim.Timeout)}
	cred, err := peer(c)
	if err != nil {
		s.logf("mountd: connection without credentials: %v", err)
		return
	}
	err = s.policy.Allow(cred.Uid, cred.Gid)
	if err == nil {
		err = s.enter(cred.Uid)
	}
	if err != nil {
		s.refuseConn(ctx, mc, cred, err)
		return
	}
	defer s.leave(cred.Uid)
	ctx = context.WithValue(ctx, callerKey{}, cred)
	for {
		msg, fds, err := mc.readMessage()
		if err != nil {
			if errors.Is(err, errMessageTooLarge) {
				s.logf("mountd: uid %d (pid %d): %v", cred.Uid, cred.Pid, err)
			}
			return
		}
		if err := s.vl.HandleMessageWithFDs(ctx, mc, msg, fds); err != nil {
			s.logf("mountd: uid %d (pid %d): %v", cred.Uid, cred.Pid, err)
			return
		}
	}
}

// refusedWait is how long a refused connection is kept open for its first
// message, to answer it with why.
const refusedWait = time.Second

// maxConnections bounds the connections served at once, all callers
// together (each caller's own bound is the policy's maxConcurrent); a
// connection beyond it is closed at once.
const maxConnections = 1024

// callerKey is the context key of the caller's credentials.
type callerKey struct{}

// caller returns uid's state, made on first use; s.mu must be held.
func (s *Service) caller(uid uint32) *callerState {
	st := s.callers[uid]
	if st == nil {
		st = &callerState{}
		s.callers[uid] = st
	}
	return st
}

// enter counts a new connection of uid, refusing it over the limit.
func (s *Service) enter(uid uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.caller(uid)
	if max := s.policy.Limits.MaxConcurrent; st.conns >= max {
		return refuse(ErrLimitReached, "uid %d already has %d connections open (the policy's maxConcurrent)", uid, st.conns)
	}
	st.conns++
	return nil
}

// leave counts a connection of uid closed.
func (s *Service) leave(uid uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.callers[uid]; st != nil {
		st.conns--
		if st.conns == 0 && st.working == 0 && len(st.mounts) == 0 {
			delete(s.callers, uid)
		}
	}
}

// takeMount counts a mount request of uid, refusing it when the caller has had
// its share within the window.
func (s *Service) takeMount(uid uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.caller(uid)
	lim := s.policy.Limits
	now := time.Now()
	keep := st.mounts[:0]
	for _, t := range st.mounts {
		if now.Sub(t) < time.Duration(lim.Window) {
			keep = append(keep, t)
		}
	}
	st.mounts = keep
	if len(st.mounts) >= lim.MaxMounts {
		return refuse(ErrLimitReached, "uid %d has made %d mount requests in the last %v (the policy's maxMounts per window)", uid, len(st.mounts), time.Duration(lim.Window))
	}
	st.mounts = append(st.mounts, now)
	return nil
}

// refuseConn answers the first request of a connection that is refused
// as a whole with err, then returns (the caller closes it).
func (s *Service) refuseConn(ctx context.Context, mc *msgConn, cred *unix.Ucred, err error) {
	s.logf("mountd: refused uid %d (pid %d): %v", cred.Uid, cred.Pid, err)
	// A refused caller gets a moment to send its request, not the policy's
	// timeout: connections it opens beyond its limit must not pile up.
	mc.idle = refusedWait
	msg, fds, rerr := mc.readMessage()
	closeFiles(fds)
	if rerr != nil {
		return
	}
	var call struct {
		Oneway bool `json:"oneway"`
	}
	if json.Unmarshal(msg, &call) != nil || call.Oneway {
		return
	}
	b, _ := json.Marshal(varlinkError(err))
	mc.Write(ctx, append(b, 0))
}

// varlinkError is the error reply for err.
func varlinkError(err error) map[string]any {
	var r *Refusal
	if !errors.As(err, &r) {
		r = &Refusal{Kind: ErrMountFailed, Reason: err.Error()}
	}
	return map[string]any{"error": errorNames[r.Kind], "parameters": errorParams{Reason: r.Reason}}
}

// iface is the varlink interface, dispatching to the service.
type iface struct{ s *Service }

func (i *iface) VarlinkGetName() string        { return InterfaceName }
func (i *iface) VarlinkGetDescription() string { return interfaceDescription }

func (i *iface) VarlinkDispatch(ctx context.Context, call varlink.Call, method string) error {
	fds := call.RequestFDs()
	defer closeFiles(fds)
	if method != "Mount" {
		return call.ReplyMethodNotFound(ctx, method)
	}
	cred, _ := ctx.Value(callerKey{}).(*unix.Ucred)
	if cred == nil {
		return errors.New("mountd: call without caller")
	}
	var req Request
	if err := call.GetParameters(&req); err != nil {
		return i.s.reply(ctx, call, cred, nil, nil, refuse(ErrBadRequest, "parameters: %v", err))
	}
	rctx, cancel := context.WithTimeout(ctx, time.Duration(i.s.policy.Limits.Timeout))
	defer cancel()
	mnt, rep, err := i.s.mountTimed(rctx, cred, &req, fds)
	if mnt != nil {
		defer mnt.Close()
	}
	// The reply has the connection's time, not the request's: a refusal
	// for taking too long must still reach the caller.
	return i.s.reply(ctx, call, cred, mnt, rep, err)
}

// reply sends the reply (with the mount descriptor) or the error, and
// logs what was done.
func (s *Service) reply(ctx context.Context, call varlink.Call, cred *unix.Ucred, mnt *os.File, rep *Reply, err error) error {
	who := "uid " + strconv.FormatUint(uint64(cred.Uid), 10) + " (pid " + strconv.Itoa(int(cred.Pid)) + ")"
	if err != nil {
		s.logf("mountd: refused %s: %v", who, err)
		e := varlinkError(err)
		return call.ReplyError(ctx, e["error"].(string), e["parameters"])
	}
	s.logf("mountd: mounted image %s for %s", rep.Digest, who)
	return call.ReplyWithFDs(ctx, rep, []*os.File{mnt})
}

// startWork counts a request of uid being worked on, refusing it when the
// caller has maxConcurrent of them already (requests given up on for
// taking too long count until they end).
func (s *Service) startWork(uid uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.caller(uid)
	if st.working >= s.policy.Limits.MaxConcurrent {
		return refuse(ErrLimitReached, "uid %d has %d requests being worked on (the policy's maxConcurrent)", uid, st.working)
	}
	st.working++
	s.work.Add(1)
	return nil
}

// endWork counts a request of uid done.
func (s *Service) endWork(uid uint32) {
	s.mu.Lock()
	if st := s.callers[uid]; st != nil {
		st.working--
	}
	s.mu.Unlock()
	s.work.Done()
}

// mountTimed runs mount, giving up when ctx ends first (the mount then
// made, if any, is closed when it is done).
func (s *Service) mountTimed(ctx context.Context, cred *unix.Ucred, req *Request, fds []*os.File) (*os.File, *Reply, error) {
	type result struct {
		mnt *os.File
		rep *Reply
		err error
	}
	// The request's descriptors stay open until the work is done.
	own := make([]*os.File, len(fds))
	for i, f := range fds {
		d, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			closeFiles(own)
			return nil, nil, refuse(ErrMountFailed, "duplicating a passed descriptor: %v", err)
		}
		own[i] = os.NewFile(uintptr(d), f.Name())
	}
	if err := s.startWork(cred.Uid); err != nil {
		closeFiles(own)
		return nil, nil, err
	}
	done := make(chan result) // unbuffered: a result nobody takes is closed below
	go func() {
		defer s.endWork(cred.Uid)
		defer closeFiles(own)
		mnt, rep, err := s.mount(cred, req, own)
		select {
		case done <- result{mnt, rep, err}:
		case <-ctx.Done():
			if mnt != nil {
				mnt.Close()
			}
		}
	}()
	select {
	case r := <-done:
		return r.mnt, r.rep, r.err
	case <-ctx.Done():
		return nil, nil, refuse(ErrLimitReached, "the request took longer than %v (the policy's timeout)", time.Duration(s.policy.Limits.Timeout))
	}
}
