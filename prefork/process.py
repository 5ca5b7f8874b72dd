"""Process hygiene for the master and the workers: pidfile, privileges, parent-death signal, OOM hints.

Linux-specific calls (prctl) go through ctypes and degrade to no-ops elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import os
import pwd
import signal
import tempfile

PR_SET_PDEATHSIG = 1
M_TRIM_THRESHOLD = -1  # glibc mallopt parameters
M_MMAP_THRESHOLD = -3


def _libc() -> ctypes.CDLL:
    """The C library, through the process's own symbols (ctypes.util.find_library would run
    ldconfig in a subprocess at every worker start)."""
    return ctypes.CDLL(None, use_errno=True)


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux)."""
    try:
        _libc().prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def tune_malloc() -> None:
    """glibc: keep up to 4 MiB of freed memory at the top of the heap, and take blocks of up to 1 MiB
    from the heap rather than from mmap.

    With the defaults, a request buffer that a request thread frees after the event-loop thread
    allocated it can leave enough free space at the top of the heap for glibc to give it back to the
    kernel (brk), and the next request takes it back, paying a page fault and a page clearing per
    4 KiB: a 64 KiB POST through the threaded worker cost 160 us of CPU instead of about 110.
    """
    try:
        libc = _libc()
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 4 << 20)
    except (OSError, AttributeError):  # not glibc
        pass


def daemonize() -> None:
    """-D: detach from the terminal and the session (double fork), stdio to /dev/null; the pidfile is
    written afterwards by the master, with the daemon's PID."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def release_free_memory() -> None:
    """Give the heap's free pages back to the kernel (glibc malloc_trim), after a burst of big
    request heads was refused or closed."""
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def write_pidfile(path: str) -> None:
    """Atomically (rename) through a temporary file with a random name, created exclusively: a name
    planted in advance (a symlink) can neither be guessed nor followed by a root master."""
    fd, tmp = tempfile.mkstemp(
        prefix=os.path.basename(path) + ".", suffix=".tmp", dir=os.path.dirname(os.path.abspath(path))
    )
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.chmod(tmp, 0o644 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_pidfile(path: str) -> None:
    """Remove ``path`` only if it still names this process (a newer master may own it now)."""
    try:
        with open(path) as f:
            if f.read().strip() != str(os.getpid()):
                return
        os.unlink(path)
    except OSError:
        pass


def resolve_user(user: str | None, group: str | None) -> tuple[int | None, int | None]:
    """Names or numbers -> (uid, gid); raises ValueError naming what does not exist."""
    uid = gid = None
    if user is not None:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise ValueError(f"no such user: {user}") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    if group is not None:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ValueError(f"no such group: {group}") from None
    return uid, gid


def drop_privileges(uid: int | None, gid: int | None) -> None:
    """Switch group, then supplementary groups, then user (the order that cannot fail half-way)."""
    if gid is not None and gid != os.getgid():
        os.setgid(gid)
    if uid is not None and uid != os.getuid():
        os.initgroups(pwd.getpwuid(uid).pw_name, gid if gid is not None else pwd.getpwuid(uid).pw_gid)
        os.setuid(uid)


def kill_quietly(pid: int, sig: int) -> None:
    """Send a signal to a child; one that has already exited (not yet reaped) is not an error."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def oom_kill_count() -> int | None:
    """The cgroup v2 ``oom_kill`` counter of this process's cgroup, when readable."""
    try:
        with open("/proc/self/cgroup") as f:
            path = next(line.split(":", 2)[2].strip() for line in f if line.startswith("0::"))
        with open(f"/sys/fs/cgroup{path}/memory.events") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, StopIteration, ValueError):
        return None
    return None
