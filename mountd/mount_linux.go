package mountd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/gocfs/gocfs/digest"
	"github.com/gocfs/gocfs/fsverity"
	"github.com/gocfs/gocfs/mount"
	"github.com/gocfs/gocfs/repo"
	storepkg "github.com/gocfs/gocfs/store"
	"github.com/gocfs/gocfs/tree"
	"golang.org/x/sys/unix"
)

// nsGetOwnerUID is NS_GET_OWNER_UID, _IO(0xb7, 0x4): the uid that owns a
// user namespace (Linux 4.11).
const nsGetOwnerUID = 0xb704

// mount serves one Mount request of the caller cred, with the request's
// descriptors fds: policy, image, admission, mount.
func (s *Service) mount(cred *unix.Ucred, req *Request, fds []*os.File) (*os.File, *Reply, error) {
	if err := s.policy.Allow(cred.Uid, cred.Gid); err != nil {
		return nil, nil, err
	}
	verity, err := mount.ParseVerityMode(strings.TrimSpace(req.Verity))
	if req.Verity == "" {
		verity, err = mount.VerityTry, nil
	}
	if err != nil {
		return nil, nil, refuse(ErrBadRequest, "verity %q: want try, require or off", req.Verity)
	}
	userns, err := callerUserNS(cred, req.UserNSFD, fds)
	if err != nil {
		return nil, nil, err
	}
	if err := s.takeMount(cred.Uid); err != nil {
		return nil, nil, err
	}
	img, name, store, err := s.openImage(req, fds)
	if err != nil {
		return nil, nil, err
	}
	defer img.Close()
	st, err := img.Stat()
	if err != nil {
		return nil, nil, refuse(ErrImageRefused, "%s: %v", name, err)
	}
	root, err := admit(img, st.Size(), name)
	if err != nil {
		return nil, nil, err
	}
	if req.ImageFD != nil {
		if err := checkObjectsPublic(root, store); err != nil {
			return nil, nil, err
		}
	}
	sum, err := fsverity.DigestReaderAt(context.Background(), img, st.Size(), fsverity.SHA256, 1)
	if err != nil {
		return nil, nil, refuse(ErrImageRefused, "%s: digest: %v", name, err)
	}
	if want := req.ExpectedDigest; want != "" && !strings.EqualFold(want, fsverity.Hex(sum)) {
		return nil, nil, refuse(ErrImageRefused, "%s has fs-verity digest %s, not the expected %s", name, fsverity.Hex(sum), want)
	}
	var notices []string
	opts := mount.Options{
		Basedirs:  []string{store},
		Verity:    verity,
		NoVerify:  true, // Admit checked these very bytes (a sealed copy)
		ReadOnly:  true,
		IDMapFile: userns,
		Notice:    func(msg string) { notices = append(notices, msg) },
	}
	mnt, err := mount.MountDetached(img, opts)
	if err != nil {
		return nil, nil, refuse(ErrMountFailed, "%s: %v", name, err)
	}
	return mnt, &Reply{Digest: fsverity.Hex(sum), Notices: notices}, nil
}

// openImage returns a sealed private copy of the image the request names
// (at most the policy's image size), a name for it in reasons, and the
// object store its files come from. The service opens nothing by a path
// the caller chose: an image passed by descriptor is read through that
// descriptor (with the caller's access to it), and a repository's image
// through the repository of the policy, beneath its directory.
func (s *Service) openImage(req *Request, fds []*os.File) (*os.File, string, string, error) {
	var (
		src   *os.File
		name  string
		store string
		named digest.Digest // a repository image's name
	)
	switch {
	case req.ImageFD != nil && (req.Repository != "" || req.Image != ""):
		return nil, "", "", refuse(ErrBadRequest, "name the image by descriptor or by repository and image, not both")
	case req.ImageFD != nil:
		f, err := passedFile(req.ImageFD, fds, "imageFileDescriptor")
		if err != nil {
			return nil, "", "", err
		}
		if err := checkImageFile(f); err != nil {
			return nil, "", "", err
		}
		pl, err := s.policy.store(req.Store)
		if err != nil {
			return nil, "", "", err
		}
		src, name, store = f, "the image passed", pl.Path
	case req.Repository != "" && req.Image != "":
		if req.Store != "" {
			return nil, "", "", refuse(ErrBadRequest, "a repository's image uses the repository's store; do not name one")
		}
		f, objects, d, err := s.openRepoImage(req.Repository, req.Image)
		if err != nil {
			return nil, "", "", err
		}
		defer f.Close()
		src, name, store, named = f, fmt.Sprintf("image %s of repository %s", req.Image, req.Repository), objects, d
	default:
		return nil, "", "", refuse(ErrBadRequest, "no image: pass imageFileDescriptor, or repository and image")
	}
	img, _, err := mount.SealedCopy(src, name, s.policy.Limits.MaxImageSize)
	if errors.Is(err, mount.ErrTooLarge) {
		return nil, "", "", refuse(ErrLimitReached, "%s is larger than %d bytes (the policy's maxImageSize)", name, s.policy.Limits.MaxImageSize)
	}
	if err != nil {
		return nil, "", "", refuse(ErrImageRefused, "%v", err)
	}
	if !named.IsZero() {
		if err := checkNamed(img, name, named); err != nil {
			img.Close()
			return nil, "", "", err
		}
	}
	return img, name, store, nil
}

// checkNamed checks that the copy img of a repository's image has the
// digest d the repository names it by.
func checkNamed(img *os.File, name string, d digest.Digest) error {
	st, err := img.Stat()
	if err != nil {
		return refuse(ErrImageRefused, "%s: %v", name, err)
	}
	got, err := fsverity.DigestReaderAt(context.Background(), img, st.Size(), d.Algorithm(), 1)
	if err != nil {
		return refuse(ErrImageRefused, "%s: digest: %v", name, err)
	}
	if !d.Equal(d.Algorithm(), got) {
		return refuse(ErrImageRefused, "%s: its content has digest %s, not %s, the repository's name for it (a damaged repository: run gocfs repo fsck)", name, fsverity.Hex(got), d)
	}
	return nil
}

// openRepoImage opens the image called image in the policy's repository
// called name, through the repository (beneath its directory, no symbolic
// link followed), and returns it with the repository's object store and
// the image's digest.
func (s *Service) openRepoImage(name, image string) (*os.File, string, digest.Digest, error) {
	var none digest.Digest
	pl, err := s.policy.repository(name)
	if err != nil {
		return nil, "", none, err
	}
	r, err := repo.Open(pl.Path, repo.Options{ReadOnly: true})
	if err != nil {
		return nil, "", none, refuse(ErrMountFailed, "repository %s: %v", pl.Name, err)
	}
	defer r.Close()
	d, err := r.Resolve(image)
	if err != nil {
		return nil, "", none, refuse(ErrBadRequest, "repository %s: %v", pl.Name, err)
	}
	f, err := r.Store().OpenObject(d)
	if err != nil {
		return nil, "", none, refuse(ErrMountFailed, "repository %s: image %s: %v", pl.Name, d, err)
	}
	return f, r.ObjectsDir(), d, nil
}

// checkObjectsPublic checks that every object the tree's files take their
// content from is in store and readable by every user (the object, its
// directory and the store searchable and readable by others): the
// overlay reads objects with the service's credentials, and an image a
// caller made must not give it content the caller could not read itself
// (a file of another image, known by its digest, in a private store). An
// image of a repository the policy serves is the administrator's, and is
// not held to this.
func checkObjectsPublic(root *tree.Node, store string) error {
	var st unix.Stat_t
	if err := unix.Stat(store, &st); err != nil {
		return refuse(ErrMountFailed, "object store %s: %v", store, err)
	}
	if st.Mode&0o001 == 0 {
		return refuse(ErrImageRefused, "object store %s is not searchable by others, so no image passed by a caller may use it (name a repository's image instead)", store)
	}
	s, err := storepkg.Open(store, storepkg.Options{ReadOnly: true})
	if err != nil {
		return refuse(ErrMountFailed, "object store %s: %v", store, err)
	}
	defer s.Close()
	dirs := map[string]bool{}
	return root.Walk(func(path string, n *tree.Node) error {
		if n.LinkTo != nil || !n.IsRegular() || n.Payload == "" {
			return nil
		}
		d, err := digest.ParseObjectPath(n.Payload)
		if err != nil {
			return refuse(ErrImageRefused, "%s: object %q: %v", path, n.Payload, err)
		}
		rel := d.ObjectPath()
		if sub := rel[:2]; !dirs[sub] {
			if err := unix.Stat(store+"/"+sub, &st); err != nil || st.Mode&0o001 == 0 {
				return refuse(ErrImageRefused, "%s: object directory %s/%s is missing or not searchable by others", path, store, sub)
			}
			dirs[sub] = true
		}
		f, err := s.OpenPath(rel)
		if err != nil {
			return refuse(ErrImageRefused, "%s: object %s: %v", path, rel, err)
		}
		err = unix.Fstat(int(f.Fd()), &st)
		f.Close()
		if err != nil || st.Mode&0o004 == 0 {
			return refuse(ErrImageRefused, "%s: object %s/%s is not readable by others (mode %#o), so an image passed by a caller may not use it", path, store, rel, st.Mode&0o7777)
		}
		return nil
	})
}

// passedFile returns the descriptor at index *i among fds.
func passedFile(i *int, fds []*os.File, what string) (*os.File, error) {
	if *i < 0 || *i >= len(fds) {
		return nil, refuse(ErrBadRequest, "%s %d: the call carries %d descriptors", what, *i, len(fds))
	}
	return fds[*i], nil
}

// checkImageFile refuses an image descriptor that is not a regular file
// opened for reading, or that lives on a FUSE file system (whose server,
// maybe the caller, could stall the service's reads).
func checkImageFile(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return refuse(ErrImageRefused, "the image passed: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return refuse(ErrImageRefused, "the image passed is not a regular file (mode %#o)", st.Mode&unix.S_IFMT)
	}
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return refuse(ErrImageRefused, "the image passed: %v", err)
	}
	if fl&unix.O_PATH != 0 || fl&unix.O_ACCMODE == unix.O_WRONLY {
		return refuse(ErrImageRefused, "the image passed is not open for reading")
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &sfs); err != nil {
		return refuse(ErrImageRefused, "the image passed: %v", err)
	}
	if sfs.Type == unix.FUSE_SUPER_MAGIC {
		return refuse(ErrImageRefused, "the image passed is on a FUSE file system; copy it to a local one")
	}
	return nil
}

// callerUserNS returns the user namespace passed for an id-mapped mount
// (nil when none is asked for), after checking that it is one and that
// the caller owns it: an id mapping shows the image's files as owned by
// the ids the namespace maps to, which must be the caller's own.
func callerUserNS(cred *unix.Ucred, i *int, fds []*os.File) (*os.File, error) {
	if i == nil {
		return nil, nil
	}
	f, err := passedFile(i, fds, "userNamespaceFileDescriptor")
	if err != nil {
		return nil, err
	}
	t, err := unix.IoctlRetInt(int(f.Fd()), 0xb703) // NS_GET_NSTYPE
	if err != nil || t != unix.CLONE_NEWUSER {
		return nil, refuse(ErrBadRequest, "userNamespaceFileDescriptor is not a user namespace (pass /proc/self/ns/user)")
	}
	owner, err := unix.IoctlGetUint32(int(f.Fd()), nsGetOwnerUID)
	if err != nil {
		return nil, refuse(ErrBadRequest, "userNamespaceFileDescriptor: owner: %v", err)
	}
	if cred.Uid != 0 && owner != cred.Uid {
		return nil, refuse(ErrPermissionDenied, "the user namespace passed belongs to uid %d, not to the caller (uid %d)", owner, cred.Uid)
	}
	return f, nil
}
