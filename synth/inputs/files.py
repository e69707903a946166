"""Which files an input may read: regular files whose real location lies inside the root the spec names them
from. A shared spec or a downloaded folder is untrusted: a symlink in a docs folder must not send /etc/shadow
to a model, and a FIFO or a device must not hang a run (or never end).

The root of an input is the folder it names, a glob's fixed prefix (`data` for `data/**/*.jsonl`), or a
named file's own folder. A symlink that leads out of its root is refused unless the input says
`follow_symlinks: true`; a root that is itself a symlink is fine (its target is the root).
"""

from __future__ import annotations

import glob
import stat
from pathlib import Path

from synth.errors import UserError

KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def root_of(pattern: str, base_dir: Path) -> Path:
    """The folder an input pattern (a file, a folder or a glob; relative to `base_dir`) declares as its root."""
    full = base_dir / Path(pattern).expanduser()
    fixed: list[str] = []
    for part in full.parts:
        if glob.has_magic(part):
            return Path(*fixed)
        fixed.append(part)
    return full if full.is_dir() else full.parent


def is_inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def checked_file(path: Path, root: Path, follow_symlinks: bool = False) -> Path:
    """`path` if it is a regular file inside `root` (after symlinks); else a UserError that says what to do."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UserError(f"{path}: no such file (a broken symlink?)") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        kind = KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise UserError(f"{path}: {kind}, not a regular file; inputs are read from regular files only")
    check_inside(path, root, follow_symlinks)
    return path


def check_inside(path: Path, root: Path, follow_symlinks: bool = False) -> None:
    """Refuses a path (file or folder) whose real location lies outside `root`, unless symlinks are followed."""
    if follow_symlinks or is_inside(path, root):
        return
    raise UserError(
        f"{path} leads outside {root} (to {path.resolve()}); inputs are read only inside the folder the spec "
        "names: copy the file in, or set `follow_symlinks: true` on this input if you trust where it leads"
    )
