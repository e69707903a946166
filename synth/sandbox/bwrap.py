"""The bubblewrap command line: every namespace unshared, the runtime read-only, one size-capped tmpfs."""

from __future__ import annotations

from collections.abc import Mapping

from synth.sandbox.limits import MIB, Limits
from synth.sandbox.runtime import Runtime

SANDBOX_UID = 1000  # inside the user namespace; mapped to the unprivileged uid that runs bwrap
FILES_DIR = "/sandbox"  # the harness and its job, read-only
WORKDIR = "/tmp"  # the only writable place: a tmpfs of `limits.tmpfs_mb`


def bwrap_argv(
    bwrap: str,
    runtime: Runtime,
    limits: Limits,
    files: Mapping[str, int],
    seccomp_fd: int | None,
    command: list[str],
) -> list[str]:
    """`files` maps a name under FILES_DIR to an fd bwrap copies it from. The root stays bwrap's own tmpfs,
    remounted read-only at the end: nothing of the host but the runtime is visible (no /etc, /home, /run, /var:
    no host unix sockets, no secrets), and nothing is writable but WORKDIR."""
    argv = [bwrap, "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    argv += ["--unshare-cgroup-try", "--disable-userns", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    argv += ["--hostname", "sandbox", "--die-with-parent", "--new-session"]
    for path in runtime.binds:
        argv += ["--ro-bind", path, path]
    for target, path in runtime.symlinks:
        argv += ["--symlink", target, path]
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmpfs_mb * MIB), "--tmpfs", WORKDIR]
    argv += ["--dir", FILES_DIR]
    for name, fd in files.items():
        argv += ["--ro-bind-data", str(fd), f"{FILES_DIR}/{name}"]
    argv += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", WORKDIR]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    return [*argv, "--", *command]
