"""What a lab host's sshd sees of the filesystem: this machine's, with every write kept private.

A lab host shares this machine's filesystem, and Ansible over SSH writes as root with init_root
"/". So its sshd runs in a mount namespace of its own (`unshare --mount --uts --propagation
private`, started inside the host's network namespace), set up here before sshd is exec'd:

- every directory at the top of / gets an overlay: the real directory below, the host's own
  upper and work directories above, so whatever a playbook writes lands there. The uppers live
  in the host's lab directory (`fs/upper/<dir>`) and can be read from outside; the top directory
  that holds the lab directory itself gets a tmpfs for its upper instead (an upper inside its
  own lower is undefined behaviour for overlayfs);
- homes, temporary directories and /run (/root, /home, /tmp, /var/tmp, /dev/shm, /run) are fresh
  tmpfs, as on a new host: Ansible's remote temp (/root/.ansible/tmp) lands there, and
  /run/docker.sock is a link to the host's own dockerd;
- / itself is then made read-only in this namespace, so a path that no overlay covers fails
  with EROFS rather than reach the real root; /proc/sys and /sys are read-only too (kernel
  settings are this machine's);
- the host's lab directory (and its dockerd's) is mounted back over its own path, so sshd's log
  and keys are the real files;
- every nsfs mount inherited from this machine (other labs' network namespaces) is detached:
  this namespace must not keep them alive;
- the hostname is the host's own (UTS namespace).

Run as `python -m cockpit.lab.confine SPEC_JSON` with the spec {"host_dir", "hostname", "keep",
"links", "argv"}; on success the process becomes `argv` (sshd), keeping its PID. Anything that
fails stops it before sshd runs: a host that cannot be confined never takes a connection.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import re
import socket
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MNT_DETACH = 2
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 1
SYS_MOUNT_SETATTR = 442  # the same number on x86_64 and the generic table (arm64)

# Mounted anew rather than overlaid: the kernel's trees, and the device nodes.
KERNEL_TREES = ("/proc", "/sys", "/dev")
# Empty, as on a new host: homes (this machine's dotfiles, such as a shell profile that puts
# another Python first on the PATH, are not the lab host's), temporary directories, and /run
# (this machine's daemons' sockets are not the lab host's).
FRESH = {"/root": "0700", "/home": "0755", "/tmp": "1777", "/run": "0755"}
FRESH_INSIDE = {"/var/tmp": "1777"}  # below an overlaid tree
MS_PRIVATE = 1 << 18

_OCTAL = re.compile(r"\\([0-7]{3})")  # how /proc/self/mountinfo escapes space, tab, newline, backslash

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


class ConfineError(OSError):
    pass


def _b(s: str | None) -> bytes | None:
    return None if s is None else s.encode()


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        err = ctypes.get_errno()
        raise ConfineError(err, f"mount {fstype or 'bind'} on {target}: {os.strerror(err)}")


def umount(target: str) -> None:
    if _libc.umount2(_b(target), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise ConfineError(err, f"umount {target}: {os.strerror(err)}")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def read_only_tree(path: str) -> None:
    """`path` and every mount below it read-only (mount_setattr, Linux 5.12); the top mount
    alone on an older kernel."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    fn = _libc.syscall
    fn.restype = ctypes.c_long
    r = fn(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(-100), ctypes.c_char_p(path.encode()),
           ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
    if r != 0:
        mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def mountinfo() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount this process sees."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            point = _OCTAL.sub(lambda m: chr(int(m[1], 8)), left.split()[4])  # \040 is a space
            out.append((point, right.split()[0]))
    return out


def _inside(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def top_dirs() -> list[str]:
    """The directories at the top of / to overlay (links such as /bin -> usr/bin follow them)."""
    out = []
    for entry in sorted(os.scandir("/"), key=lambda e: e.name):
        path = "/" + entry.name
        if entry.is_dir(follow_symlinks=False) and path not in KERNEL_TREES and entry.name != "lost+found":
            out.append(path)
    return out


def overlay(tree: str, base: str) -> None:
    name = tree.strip("/").replace("/", "_")
    upper, work = os.path.join(base, "upper", name), os.path.join(base, "work", name)
    os.makedirs(upper, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    mount("overlay", tree, "overlay", 0, f"lowerdir={tree},upperdir={upper},workdir={work}")


def confine(host_dir: str, hostname: str, keep: list[str] = (), links: dict[str, str] | None = None) -> None:
    """This process's mount and UTS namespaces made into the lab host's (see the module's notes).
    `keep`: more directories of the lab shown as they are (the host's dockerd directory);
    `links`: symbolic links to make in the host's fresh /run (its docker.sock)."""
    host_dir = os.path.realpath(host_dir)
    socket.sethostname(hostname)
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing of ours propagates out
    for point, fstype in reversed(mountinfo()):  # other network namespaces stay out of ours
        if fstype == "nsfs":
            umount(point)
    kept = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in [host_dir, *map(os.path.realpath, keep)]]
    _private_trees(host_dir)
    for path, fd in kept:  # the lab's own directories, as they are, over whatever now covers them
        os.makedirs(path, exist_ok=True)
        mount(f"/proc/self/fd/{fd}", path, None, MS_BIND)
        os.close(fd)
    for link, target in (links or {}).items():
        os.symlink(target, link)
    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    mount("/proc/sys", "/proc/sys", None, MS_BIND)
    mount(None, "/proc/sys", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    read_only_tree("/sys")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory


def _private_trees(host_dir: str) -> None:
    """An overlay or a fresh tmpfs over every directory at the top of /."""
    trees = top_dirs()
    holder = next((t for t in trees if _inside(host_dir, t)), None)
    volatile = os.path.join(host_dir, "volatile")
    os.makedirs(volatile, exist_ok=True)
    mount("tmpfs", volatile, "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=0755")
    for tree in trees:  # the holder last: until then host_dir is reached through the real tree
        if tree not in FRESH and tree != holder:
            overlay(tree, os.path.join(host_dir, "fs"))
    if holder is not None and holder not in FRESH:
        overlay(holder, volatile)
    for tree in trees:
        if tree in FRESH:
            mount("tmpfs", tree, "tmpfs", MS_NOSUID | MS_NODEV, f"size=256m,mode={FRESH[tree]}")
    for tree, mode in FRESH_INSIDE.items():
        if os.path.isdir(tree):
            mount("tmpfs", tree, "tmpfs", MS_NOSUID | MS_NODEV, f"size=256m,mode={mode}")


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    try:
        confine(spec["host_dir"], spec["hostname"], spec.get("keep", []), spec.get("links", {}))
    except OSError as e:
        print(f"lab host {spec['hostname']}: cannot confine its sshd: {e}", file=sys.stderr, flush=True)
        return 2
    os.execv(spec["argv"][0], spec["argv"])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
