"""Which file system a path is on, and whether SQLite may trust its locks there.

SQLite's locking is unreliable on network file systems (NFS, SMB/CIFS, FUSE mounts such as
sshfs or s3fs): two machines writing one store through them can corrupt the catalog. The embedded
store refuses such a directory (``CAIRN_ALLOW_NETWORK_FS=true`` overrides); many machines share a
store through ``cairn server`` instead.
"""

from __future__ import annotations

import os

NETWORK_TYPES = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "ceph", "glusterfs", "9p", "lustre"}
)
_LOCAL_FUSE = frozenset({"fuseblk"})  # NTFS/exFAT drivers on a local disk


def _unescape(field: str) -> str:
    # /proc/self/mountinfo escapes space, tab, newline and backslash as octal (\040, ...).
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def filesystem_type(path: str, mountinfo: str | None = None) -> str | None:
    """The type of the file system ``path`` is on (``ext4``, ``nfs4``, ``fuse.sshfs``, ...), from
    ``/proc/self/mountinfo`` (or the given text); None where that cannot be told."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
                mountinfo = f.read()
        except OSError:
            return None
    real = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, after = left.split(), right.split()
        if not sep or len(fields) < 5 or not after:
            continue
        mount_point = _unescape(fields[4])
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), after[0])  # later mounts over the same point win
    return None if best is None else best[1]


def network_filesystem(path: str, mountinfo: str | None = None) -> str | None:
    """The file system type if ``path`` is on a network or FUSE file system, else None."""
    fs = filesystem_type(path, mountinfo)
    if fs is None or fs in _LOCAL_FUSE:
        return None
    if fs in NETWORK_TYPES or fs == "fuse" or fs.startswith(("fuse.", "nfs")):
        return fs
    return None
