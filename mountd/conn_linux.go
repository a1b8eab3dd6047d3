package mountd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxFDsPerMessage bounds the descriptors one request may carry (an image
// and a user namespace are all the Mount method takes).
const maxFDsPerMessage = 4

// msgConn is the service's side of one connection: varlink messages
// (JSON, each ended by a NUL byte) with descriptors passed as SCM_RIGHTS.
// It does its own framing, rather than varlink/go's, to bound what a
// caller can make the service hold: a message larger than maxMessage, or
// carrying more than maxFDsPerMessage descriptors, ends the connection.
// It implements varlink.ReadWriterContext and varlink.FDReadWriter, so
// varlink/go's Service dispatches the messages and writes the replies.
type msgConn struct {
	c          *net.UnixConn
	maxMessage int
	idle       time.Duration
	buf        []byte     // bytes received past the last message
	fds        []*os.File // descriptors received with buf
}

// errMessageTooLarge ends a connection whose message is too large.
var errMessageTooLarge = errors.New("message too large")

// readMessage returns the next message (without its NUL) and the
// descriptors that came with it, which the caller closes.
func (m *msgConn) readMessage() (_ []byte, _ []*os.File, retErr error) {
	defer func() {
		if retErr != nil {
			closeFiles(m.fds)
			m.fds = nil
		}
	}()
	oob := make([]byte, unix.CmsgSpace(maxFDsPerMessage*4))
	for {
		if i := bytes.IndexByte(m.buf, 0); i >= 0 {
			msg := bytes.Clone(m.buf[:i])
			m.buf = append(m.buf[:0], m.buf[i+1:]...)
			fds := m.fds
			m.fds = nil
			return msg, fds, nil
		}
		if len(m.buf) >= m.maxMessage {
			return nil, nil, fmt.Errorf("%w: more than %d bytes without an end", errMessageTooLarge, m.maxMessage)
		}
		if m.idle > 0 {
			m.c.SetReadDeadline(time.Now().Add(m.idle))
		}
		chunk := make([]byte, min(m.maxMessage-len(m.buf), 1<<16))
		n, oobn, flags, _, err := m.c.ReadMsgUnix(chunk, oob)
		if oobn > 0 {
			if ferr := m.takeRights(oob[:oobn]); ferr != nil {
				return nil, nil, ferr
			}
		}
		if flags&unix.MSG_CTRUNC != 0 {
			return nil, nil, fmt.Errorf("more than %d descriptors with one message", maxFDsPerMessage)
		}
		if err != nil {
			return nil, nil, err
		}
		if n == 0 {
			return nil, nil, errors.New("connection closed")
		}
		m.buf = append(m.buf, chunk[:n]...)
	}
}

// takeRights keeps the descriptors of SCM_RIGHTS messages in oob.
func (m *msgConn) takeRights(oob []byte) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("control message: %w", err)
	}
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue // not SCM_RIGHTS (credentials): nothing to keep
		}
		for _, fd := range fds {
			m.fds = append(m.fds, os.NewFile(uintptr(fd), "passed descriptor"))
		}
	}
	if len(m.fds) > maxFDsPerMessage {
		return fmt.Errorf("more than %d descriptors with one message", maxFDsPerMessage)
	}
	return nil
}

// deadline sets the write deadline from ctx.
func (m *msgConn) deadline(ctx context.Context) {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(m.idle)
	}
	m.c.SetWriteDeadline(d)
}

// Write writes buf whole.
func (m *msgConn) Write(ctx context.Context, buf []byte) (int, error) {
	m.deadline(ctx)
	return m.c.Write(buf)
}

// WriteWithFDs writes buf whole, with fds attached to its first byte.
func (m *msgConn) WriteWithFDs(ctx context.Context, buf []byte, fds []*os.File) (int, error) {
	m.deadline(ctx)
	ints := make([]int, len(fds))
	for i, f := range fds {
		ints[i] = int(f.Fd())
	}
	n, _, err := m.c.WriteMsgUnix(buf, syscall.UnixRights(ints...), nil)
	runtime.KeepAlive(fds)
	if err != nil {
		return n, err
	}
	if n < len(buf) {
		k, err := m.c.Write(buf[n:])
		return n + k, err
	}
	return n, nil
}

// Read is not used: the service reads whole messages (readMessage).
func (m *msgConn) Read(ctx context.Context, buf []byte) (int, error) {
	return 0, errors.ErrUnsupported
}

// ReadBytes is not used: the service reads whole messages (readMessage).
func (m *msgConn) ReadBytes(ctx context.Context, delim byte) ([]byte, error) {
	return nil, errors.ErrUnsupported
}

// ReadBytesWithFDs is not used: the service reads whole messages.
func (m *msgConn) ReadBytesWithFDs(ctx context.Context, delim byte) ([]byte, []*os.File, error) {
	return nil, nil, errors.ErrUnsupported
}

// closeFiles closes every file of fs.
func closeFiles(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// peer returns the credentials of the process at the other end of c, as
// the kernel recorded them when it connected (SO_PEERCRED).
func peer(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var serr error
	err = rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("SO_PEERCRED: %w", err)
	}
	return cred, nil
}
