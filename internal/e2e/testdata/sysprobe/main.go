// sysprobe makes the syscalls its arguments name, with arguments that can do
// no harm, and prints "name: ok" or "name: ERRNO" for each, so a test can
// see what a container's seccomp filter and capabilities let through.
// It is built static (CGO_ENABLED=0) into a test image.
package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

func cstr(s string) uintptr {
	b, err := syscall.BytePtrFromString(s)
	if err != nil {
		panic(err)
	}
	return uintptr(unsafe.Pointer(b))
}

const (
	keySpecProcessKeyring = ^uintptr(1) // KEY_SPEC_PROCESS_KEYRING, -2
	keySpecSessionKeyring = ^uintptr(2) // KEY_SPEC_SESSION_KEYRING, -3
	keyctlGetKeyringID    = 0
)

var probes = map[string]func() syscall.Errno{
	"add_key": func() syscall.Errno {
		_, _, e := syscall.Syscall6(syscall.SYS_ADD_KEY, cstr("user"), cstr("sysprobe"), cstr("x"), 1, keySpecProcessKeyring, 0)
		return e
	},
	"keyctl": func() syscall.Errno {
		_, _, e := syscall.Syscall(syscall.SYS_KEYCTL, keyctlGetKeyringID, keySpecSessionKeyring, 0)
		return e
	},
	// A multi-threaded process cannot enter a new user namespace (EINVAL),
	// so this never succeeds; a seccomp filter makes it EPERM first.
	"unshare": func() syscall.Errno {
		_, _, e := syscall.RawSyscall(syscall.SYS_UNSHARE, syscall.CLONE_NEWUSER, 0, 0)
		return e
	},
	// A target that does not exist: where the call is let through, the
	// kernel answers ENOENT (or EPERM without CAP_SYS_ADMIN) and mounts
	// nothing.
	"mount": func() syscall.Errno {
		_, _, e := syscall.Syscall6(syscall.SYS_MOUNT, cstr("none"), cstr("/sysprobe-no-such-dir"), cstr("tmpfs"), 0, 0, 0)
		return e
	},
	// Wrong magic numbers: where the call is let through, the kernel
	// answers EINVAL (or EPERM without CAP_SYS_BOOT) and reboots nothing.
	"reboot": func() syscall.Errno {
		_, _, e := syscall.Syscall6(syscall.SYS_REBOOT, 0, 0, 0, 0, 0, 0)
		return e
	},
	"mkdir": func() syscall.Errno {
		_, _, e := syscall.Syscall(syscall.SYS_MKDIR, cstr("/tmp/sysprobe-dir"), 0o755, 0)
		if e == 0 {
			syscall.Rmdir("/tmp/sysprobe-dir")
		}
		return e
	},
}

func main() {
	for _, name := range os.Args[1:] {
		probe, ok := probes[name]
		if !ok {
			fmt.Printf("%s: unknown probe\n", name)
			os.Exit(2)
		}
		if e := probe(); e != 0 {
			fmt.Printf("%s: %s\n", name, errnoName(e))
		} else {
			fmt.Printf("%s: ok\n", name)
		}
	}
}

func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.EPERM:
		return "EPERM"
	case syscall.EINVAL:
		return "EINVAL"
	case syscall.EACCES:
		return "EACCES"
	case syscall.ENOSYS:
		return "ENOSYS"
	case syscall.ENOENT:
		return "ENOENT"
	}
	return fmt.Sprintf("errno %d (%v)", int(e), e)
}
