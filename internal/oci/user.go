package oci

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

const (
	maxID = 1<<31 - 1 // what runc and glibc accept, as dockerd enforces
	// maxDBSize bounds what a hostile image can make the engine read.
	maxDBSize = 32 << 20
)

// ResolveUser turns a Docker user string ("name", "uid", "uid:gid",
// "name:group", or "" for root) into IDs by reading etc/passwd and etc/group
// inside rootfs, with the lookup rules of runc's and dockerd's user package:
// a number is always an ID and needs no passwd entry, a name must have one,
// and supplementary groups come from etc/group only when no group is given.
func ResolveUser(rootfs, user string) (uid, gid uint32, additionalGids []uint32, home string, err error) {
	if !filepath.IsAbs(rootfs) {
		// An empty rootfs would silently read the host's /etc/passwd.
		return 0, 0, nil, "", fmt.Errorf("rootfs %q is not an absolute path", rootfs)
	}
	name, group, _ := strings.Cut(user, ":")
	if strings.Contains(group, ":") {
		return 0, 0, nil, "", fmt.Errorf("invalid user %q: want user[:group]", user)
	}
	passwd, err := readDB(rootfs, "/etc/passwd")
	if err != nil {
		return 0, 0, nil, "", err
	}
	groups, err := readDB(rootfs, "/etc/group")
	if err != nil {
		return 0, 0, nil, "", err
	}

	home = "/"
	numUID, isNum, err := parseID(name)
	if err != nil {
		return 0, 0, nil, "", err
	}
	// passwd: name:password:uid:gid:gecos:home:shell
	// An entry with a malformed uid or gid is skipped: reading it as 0
	// would make the process root.
	entry := slices.IndexFunc(passwd, func(f []string) bool {
		if len(f) < 4 {
			return false
		}
		id, ok := validID(f[2])
		if _, gok := validID(f[3]); !ok || !gok {
			return false
		}
		if name == "" || isNum {
			return id == numUID
		}
		return f[0] == name
	})
	matchedName := ""
	switch {
	case entry >= 0:
		f := passwd[entry]
		matchedName = f[0]
		uid, _ = validID(f[2])
		gid, _ = validID(f[3])
		if len(f) > 5 && f[5] != "" {
			home = f[5]
		}
	case isNum || name == "":
		uid = numUID
	default:
		return 0, 0, nil, "", fmt.Errorf("unable to find user %s: no matching entries in passwd file", name)
	}

	// group: name:password:gid:member,member
	if group != "" {
		numGID, isNum, err := parseID(group)
		if err != nil {
			return 0, 0, nil, "", err
		}
		i := slices.IndexFunc(groups, func(f []string) bool {
			if len(f) < 3 {
				return false
			}
			id, ok := validID(f[2])
			if !ok {
				return false
			}
			if isNum {
				return id == numGID
			}
			return f[0] == group
		})
		switch {
		case i >= 0:
			gid, _ = validID(groups[i][2])
		case isNum:
			gid = numGID
		default:
			return 0, 0, nil, "", fmt.Errorf("unable to find group %s: no matching entries in group file", group)
		}
		return uid, gid, nil, home, nil
	}
	if matchedName != "" {
		for _, f := range groups {
			if len(f) < 4 || !slices.Contains(strings.Split(f[3], ","), matchedName) {
				continue
			}
			if id, ok := validID(f[2]); ok && !slices.Contains(additionalGids, id) {
				additionalGids = append(additionalGids, id)
			}
		}
	}
	return uid, gid, additionalGids, home, nil
}

// parseID reports whether s is numeric and so must be taken as an ID; a
// number outside the valid range is an error rather than a name.
func parseID(s string) (id uint32, numeric bool, err error) {
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
	case err != nil:
		return 0, false, nil
	case n >= 0 && n <= maxID:
		return uint32(n), true, nil
	}
	return 0, true, fmt.Errorf("uids and gids must be in range 0-%d: %q", maxID, s)
}

func validID(s string) (uint32, bool) {
	id, numeric, err := parseID(s)
	return id, numeric && err == nil
}

// readDB reads a colon-separated database from inside rootfs; a missing file
// is no entries. SecureJoin keeps symlinks in the image (etc -> /etc,
// passwd -> /etc/shadow, ../../) inside rootfs, and the open refuses to
// block on a FIFO or follow a symlink swapped in afterwards.
func readDB(rootfs, name string) ([][]string, error) {
	p, err := securejoin.SecureJoin(rootfs, name)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s in the image is not a regular file", name)
	}
	var entries [][]string
	sc := bufio.NewScanner(io.LimitReader(f, maxDBSize))
	sc.Buffer(nil, maxDBSize) // group lines with many members get long
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			entries = append(entries, strings.Split(line, ":"))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s in the image: %w", name, err)
	}
	return entries, nil
}

// ResolveGroup finds a group by name in the container's /etc/group, or
// takes a number as it is (dockerd's GroupAdd).
func ResolveGroup(rootfs, group string) (uint32, error) {
	if id, ok := validID(group); ok {
		return id, nil
	}
	groups, err := readDB(rootfs, "/etc/group")
	if err != nil {
		return 0, err
	}
	for _, f := range groups {
		if len(f) >= 3 && f[0] == group {
			if id, ok := validID(f[2]); ok {
				return id, nil
			}
		}
	}
	return 0, fmt.Errorf("Unable to find group %s: no matching entries in group file", group)
}
