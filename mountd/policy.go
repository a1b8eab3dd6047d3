package mountd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// DefaultPolicyFile is where gocfs mountd reads its policy unless told
// otherwise.
const DefaultPolicyFile = "/etc/gocfs/mountd.json"

// maxPolicySize bounds the policy file read.
const maxPolicySize = 1 << 20

// Policy says what the service serves and to whom. It is read from a JSON
// file (see docs/mountd.md):
//
//	{
//	  "stores": [{"name": "objects", "path": "/composefs/objects"}],
//	  "repositories": [{"name": "system", "path": "/sysroot/composefs"}],
//	  "users": ["alice", "1000"],
//	  "groups": ["composefs"],
//	  "limits": {"maxImageSize": 268435456, "maxConcurrent": 2,
//	             "maxMounts": 64, "window": "1m", "timeout": "30s"}
//	}
type Policy struct {
	// Stores are the object stores an image passed by descriptor may
	// take its file content from.
	Stores []Place `json:"stores"`
	// Repositories are the repositories whose images may be named.
	Repositories []Place `json:"repositories"`
	// Users and Groups say who may use the service: a caller whose uid
	// (or user name) is in Users, or who is a member (per the user
	// database) of a group in Groups. Root may always. Entries are names
	// or decimal ids.
	Users  []string `json:"users"`
	Groups []string `json:"groups"`
	// Limits bound what one caller (uid) may ask for.
	Limits Limits `json:"limits"`
}

// Place is a named directory of the policy: an object store or a
// repository. Path must be absolute and clean.
type Place struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// Limits bound what one caller may ask of the service. Zero values mean
// the defaults ([DefaultLimits]).
type Limits struct {
	// MaxImageSize is the largest image accepted, in bytes.
	MaxImageSize int64 `json:"maxImageSize,omitempty"`
	// MaxConcurrent is how many connections one caller may hold open,
	// and how many of its requests are worked on at once (one given up
	// on for taking too long counts until it ends).
	MaxConcurrent int `json:"maxConcurrent,omitempty"`
	// MaxMounts is how many mount requests one caller gets per Window
	// (refused ones count too: checking an image costs the service).
	MaxMounts int `json:"maxMounts,omitempty"`
	// Window is the period MaxMounts counts over.
	Window Duration `json:"window,omitempty"`
	// Timeout bounds one request, from its first byte to the reply, and
	// how long a connection may stay idle.
	Timeout Duration `json:"timeout,omitempty"`
	// MaxMessage is the largest request message accepted, in bytes.
	MaxMessage int `json:"maxMessage,omitempty"`
}

// DefaultLimits are the limits a policy gets where it sets none.
var DefaultLimits = Limits{
	MaxImageSize:  256 << 20,
	MaxConcurrent: 2,
	MaxMounts:     64,
	Window:        Duration(time.Minute),
	Timeout:       Duration(30 * time.Second),
	MaxMessage:    64 << 10,
}

// Duration is a time.Duration that reads and writes as a string ("30s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string ("30s", "1m").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v <= 0 {
		return fmt.Errorf("duration %q: must be positive", s)
	}
	*d = Duration(v)
	return nil
}

// LoadPolicy reads and checks the policy file at path.
func LoadPolicy(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mountd policy: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("mountd policy %s: %w", path, err)
	}
	if len(b) > maxPolicySize {
		return nil, fmt.Errorf("mountd policy %s: larger than %d bytes", path, maxPolicySize)
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("mountd policy %s: %w", path, err)
	}
	return p, nil
}

// ParsePolicy parses and checks a policy (JSON, unknown fields refused),
// filling in the default limits.
func ParsePolicy(b []byte) (*Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return &p, nil
}

// check validates the places and fills in default limits.
func (p *Policy) check() error {
	if len(p.Stores) == 0 && len(p.Repositories) == 0 {
		return errors.New("no stores and no repositories: nothing to serve")
	}
	seen := map[string]bool{}
	for _, pl := range append(slices.Clone(p.Stores), p.Repositories...) {
		if pl.Name == "" {
			return fmt.Errorf("place %q has no name", pl.Path)
		}
		if !filepath.IsAbs(pl.Path) || filepath.Clean(pl.Path) != pl.Path {
			return fmt.Errorf("%s: path %q must be absolute and clean", pl.Name, pl.Path)
		}
		if seen[pl.Name] {
			return fmt.Errorf("name %q given twice", pl.Name)
		}
		seen[pl.Name] = true
	}
	l, d := &p.Limits, DefaultLimits
	if l.MaxImageSize < 0 || l.MaxConcurrent < 0 || l.MaxMounts < 0 || l.MaxMessage < 0 {
		return errors.New("limits must not be negative")
	}
	if l.MaxImageSize == 0 {
		l.MaxImageSize = d.MaxImageSize
	}
	if l.MaxConcurrent == 0 {
		l.MaxConcurrent = d.MaxConcurrent
	}
	if l.MaxMounts == 0 {
		l.MaxMounts = d.MaxMounts
	}
	if l.Window == 0 {
		l.Window = d.Window
	}
	if l.Timeout == 0 {
		l.Timeout = d.Timeout
	}
	if l.MaxMessage == 0 {
		l.MaxMessage = d.MaxMessage
	}
	return nil
}

// store returns the store called name (by name or path); "" is the first.
func (p *Policy) store(name string) (Place, error) {
	if name == "" && len(p.Stores) > 0 {
		return p.Stores[0], nil
	}
	for _, s := range p.Stores {
		if s.Name == name || s.Path == name {
			return s, nil
		}
	}
	if name == "" {
		return Place{}, refuse(ErrBadRequest, "the policy has no object store for images passed by descriptor")
	}
	return Place{}, refuse(ErrBadRequest, "object store %q is not one the policy serves", name)
}

// repository returns the repository called name (by name or path).
func (p *Policy) repository(name string) (Place, error) {
	for _, r := range p.Repositories {
		if r.Name == name || r.Path == name {
			return r, nil
		}
	}
	return Place{}, refuse(ErrBadRequest, "repository %q is not one the policy serves", name)
}

// Allow returns nil when the caller with this uid and gid may use the
// service, and a *Refusal saying why not otherwise. Group membership is
// the user database's (the caller's primary gid counts too).
func (p *Policy) Allow(uid, gid uint32) error {
	if uid == 0 {
		return nil
	}
	uidStr := strconv.FormatUint(uint64(uid), 10)
	u, uerr := user.LookupId(uidStr)
	for _, want := range p.Users {
		if want == uidStr || (uerr == nil && want == u.Username) {
			return nil
		}
	}
	groups := []string{strconv.FormatUint(uint64(gid), 10)}
	if uerr == nil {
		if ids, err := u.GroupIds(); err == nil {
			groups = append(groups, ids...)
		}
	}
	for _, want := range p.Groups {
		for _, g := range groups {
			if want == g {
				return nil
			}
			if grp, err := user.LookupGroupId(g); err == nil && grp.Name == want {
				return nil
			}
		}
	}
	who := "uid " + uidStr
	if uerr == nil {
		who += " (" + u.Username + ")"
	}
	return refuse(ErrPermissionDenied, "%s is not allowed by the policy: not among its users, nor a member of its groups", who)
}
