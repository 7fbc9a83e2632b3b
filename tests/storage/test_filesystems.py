"""Network file systems are told apart from local ones (issue 12, item 2)."""

from __future__ import annotations

import pathlib

from cairn.service import LocalService
from cairn.storage import filesystem_type, network_filesystem

# /proc/self/mountinfo of a machine with a local disk, an NFS home, an sshfs mount, an SMB share
# and an NTFS disk (fuseblk, local), as Linux writes it (a space in a mount point is \040).
MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /home rw,relatime shared:20 - nfs4 server:/export/home rw,vers=4.2
31 30 0:41 / /home/ann/remote rw,nosuid shared:21 - fuse.sshfs ann@host:/data rw
32 22 0:42 / /mnt/my\\040share rw,relatime shared:22 - cifs //nas/share rw
33 22 8:17 / /mnt/usb rw,relatime shared:23 - fuseblk /dev/sdb1 rw
34 30 0:43 / /home/ann/local rw,relatime shared:24 - tmpfs tmpfs rw
"""


def test_network_and_fuse_file_systems_are_recognised() -> None:
    assert network_filesystem("/var/lib/x", MOUNTINFO) is None
    assert network_filesystem("/home/ann/.cairn", MOUNTINFO) == "nfs4"
    assert network_filesystem("/home/ann/remote/store", MOUNTINFO) == "fuse.sshfs"
    assert network_filesystem("/mnt/my share/store", MOUNTINFO) == "cifs"
    assert network_filesystem("/mnt/usb/store", MOUNTINFO) is None  # NTFS on a local disk
    assert network_filesystem("/home/ann/local/store", MOUNTINFO) is None  # mounted over NFS
    assert filesystem_type("/home/annex", MOUNTINFO) == "nfs4"  # /home, not /home/ann...


def test_a_local_store_opens_and_this_machines_file_system_is_known(
    tmp_path: pathlib.Path,
) -> None:
    assert filesystem_type(str(tmp_path)) is not None
    assert network_filesystem(str(tmp_path)) is None
    LocalService.open(str(tmp_path / "store")).close()
