package mountd

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"stores":[{"name":"o","path":"/composefs/objects"}],"users":["alice"],"limits":{"maxMounts":3,"window":"10s"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Limits.MaxMounts != 3 || time.Duration(p.Limits.Window) != 10*time.Second {
		t.Errorf("limits given: %+v", p.Limits)
	}
	if p.Limits.MaxImageSize != DefaultLimits.MaxImageSize || p.Limits.Timeout != DefaultLimits.Timeout || p.Limits.MaxMessage != DefaultLimits.MaxMessage {
		t.Errorf("defaults not filled in: %+v", p.Limits)
	}
	for _, tc := range []struct{ policy, err string }{
		{`{}`, "nothing to serve"},
		{`{"stores":[{"name":"o","path":"relative"}]}`, "absolute and clean"},
		{`{"stores":[{"name":"o","path":"/a/../b"}]}`, "absolute and clean"},
		{`{"stores":[{"path":"/a"}]}`, "no name"},
		{`{"stores":[{"name":"o","path":"/a"}],"repositories":[{"name":"o","path":"/b"}]}`, "given twice"},
		{`{"stores":[{"name":"o","path":"/a"}],"limits":{"maxMounts":-1}}`, "negative"},
		{`{"stores":[{"name":"o","path":"/a"}],"limits":{"window":"-1s"}}`, "positive"},
		{`{"stores":[{"name":"o","path":"/a"}],"limits":{"window":10}}`, "duration"},
		{`{"stores":[{"name":"o","path":"/a"}],"user":["typo"]}`, "unknown field"},
	} {
		if _, err := ParsePolicy([]byte(tc.policy)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParsePolicy(%s) = %v, want an error saying %q", tc.policy, err, tc.err)
		}
	}
}

func TestPolicyPlaces(t *testing.T) {
	p := &Policy{Stores: []Place{{Name: "a", Path: "/a"}, {Name: "b", Path: "/b"}}, Repositories: []Place{{Name: "r", Path: "/r"}}}
	for name, want := range map[string]string{"": "/a", "b": "/b", "/b": "/b"} {
		if got, err := p.store(name); err != nil || got.Path != want {
			t.Errorf("store(%q) = %v, %v; want %s", name, got, err, want)
		}
	}
	if _, err := p.store("/etc"); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "not one the policy serves") {
		t.Errorf("store(/etc) = %v", err)
	}
	if _, err := p.repository("/a"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("a store is no repository: %v", err)
	}
}

func TestAllow(t *testing.T) {
	p := &Policy{Stores: []Place{{Name: "a", Path: "/a"}}, Users: []string{"1234", "root"}, Groups: []string{"4242"}}
	for _, tc := range []struct {
		uid, gid uint32
		ok       bool
	}{{0, 0, true}, {1234, 1, true}, {1235, 4242, true}, {1235, 1, false}} {
		err := p.Allow(tc.uid, tc.gid)
		if (err == nil) != tc.ok {
			t.Errorf("Allow(%d, %d) = %v, want allowed %v", tc.uid, tc.gid, err, tc.ok)
		}
		if err != nil && (!errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), "uid 1235")) {
			t.Errorf("refusal %v does not name the uid", err)
		}
	}
}

// FuzzParsePolicy: whatever the bytes, ParsePolicy answers, and a policy
// it accepts, written back as JSON, parses to the same policy.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"stores":[{"name":"o","path":"/composefs/objects"}],"users":["alice"],"limits":{"maxMounts":3,"window":"10s"}}`))
	f.Add([]byte(`{"repositories":[{"name":"r","path":"/r"}],"groups":["4242"],"limits":{"timeout":"1m","maxImageSize":1000}}`))
	f.Add([]byte(`{"stores":[{"name":"o","path":"/a"}],"limits":{"window":"-1s"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("marshal %+v: %v", p, err)
		}
		q, err := ParsePolicy(again)
		if err != nil {
			t.Fatalf("the policy %s, written back as %s, is refused: %v", b, again, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("the policy %s parses to %+v, written back to %+v", b, p, q)
		}
	})
}
