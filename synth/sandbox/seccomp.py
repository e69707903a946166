"""The syscall filter bwrap loads before the harness starts, built with libseccomp (through `pyseccomp`).

A deny-list in the spirit of Docker's default profile: the calls untrusted Python never needs and that widen
the attack surface (kernel keyrings, BPF, perf, io_uring, mounts, namespaces, ptrace and cross-process memory,
module loading, clocks, reboot). Each fails with EPERM, so code that probes them gets an ordinary OSError.
Without `pyseccomp` or libseccomp the sandbox runs without a filter and says so once (namespaces, rlimits and
the read-only runtime still hold).
"""

from __future__ import annotations

import errno
import logging
import tempfile
from functools import cache

logger = logging.getLogger(__name__)

DENIED = (
    "acct", "add_key", "bpf", "chroot", "clock_adjtime", "clock_settime", "delete_module", "finit_module",
    "fsconfig", "fsmount", "fsopen", "fspick", "init_module", "io_uring_enter", "io_uring_register",
    "io_uring_setup", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "mount", "mount_setattr", "move_mount",
    "name_to_handle_at", "open_by_handle_at", "open_tree", "perf_event_open", "pidfd_getfd", "pivot_root",
    "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace", "quotactl", "reboot", "request_key",
    "setns", "settimeofday", "swapoff", "swapon", "syslog", "umount2", "unshare", "userfaultfd",
)  # fmt: skip


@cache
def filter_bpf() -> bytes | None:
    """The compiled BPF program for bwrap's `--seccomp FD`, or None when libseccomp is not available."""
    try:
        import pyseccomp
    except (ImportError, RuntimeError) as exc:  # RuntimeError: pyseccomp found no libseccomp.so
        logger.warning("sandbox: no seccomp filter (%s); install pyseccomp and libseccomp2 for one", exc)
        return None
    rules = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
    for name in DENIED:
        try:
            rules.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
        except (OSError, ValueError, RuntimeError):  # a syscall this kernel/arch does not have
            continue
    with tempfile.TemporaryFile() as compiled:
        rules.export_bpf(compiled)
        compiled.seek(0)
        return compiled.read()
