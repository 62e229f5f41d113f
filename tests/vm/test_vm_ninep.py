"""The real client: the Linux kernel in a QEMU guest mounts docteur-serve over a virtconsole (trans=fd)."""

from __future__ import annotations

import hashlib
import stat

import pytest
from ninep.sample import COMMIT_TIME, Sample
from trees import DIR, EXEC, LINK, read_fs_tree

from unikernel import guest, host

# Sections of the guest's report: every entry's stat, every file's md5, every link's target, and what
# writes say once the mount is made read-write (the server, not the VFS, must refuse them).
SCRIPT = r"""
cd /mnt || exit 1
echo '== stat'; find . -mindepth 1 -exec stat -c '%f|%u|%g|%s|%Y|%n' {} +
echo '== md5'; find . -type f -exec md5sum {} +
echo '== links'; find . -type l | while read -r f; do printf '%s|%s\n' "$(readlink "$f")" "$f"; done
echo '== writes'
mount -o remount,rw /mnt && grep -q ' /mnt 9p rw' /proc/mounts && echo 'mounted rw'
for w in 'echo new > new.txt' 'echo more >> README.md' ': > empty' 'mkdir newdir' 'rmdir docs/guide' \
    'rm README.md' 'mv README.md moved.md' 'ln -s README.md newlink' 'ln README.md hardlink' \
    'chmod 600 README.md' 'touch empty'; do (eval "$w"); done
echo '== end'
"""
WRITES = 11


def _report(stdout: bytes) -> dict[str, list[bytes]]:
    sections: dict[str, list[bytes]] = {}
    current: list[bytes] = []
    for line in stdout.split(b"\n"):
        if line.startswith(b"== "):
            current = sections.setdefault(line[3:].decode(), [])
        elif line:
            current.append(line)
    return sections


@pytest.mark.parametrize("version", ["9p2000.L", "9p2000.u", "9p2000"])
def test_the_kernel_mounts_lists_and_reads_everything(
    guest_built: None, sample: Sample, version: str
) -> None:
    with host.docteur_serve(sample.image) as sock:
        run = guest.run_mounted(sock, SCRIPT, version, timeout=300)
    assert run.rc == 0, run.stderr.decode(errors="replace")
    report = _report(run.stdout)
    assert "end" in report, run.stdout[-500:]
    source = read_fs_tree(sample.source)
    links = version != "9p2000"  # plain 9P2000 has no symlinks: a file holding the target

    seen = {}
    for line in report["stat"]:
        mode, uid, gid, size, mtime, name = line.split(b"|", 5)
        seen[name.removeprefix(b"./")] = (int(mode, 16), int(uid), int(gid), int(size), int(mtime))
    assert set(seen) == set(source)
    for path, (kind, content) in source.items():
        mode, uid, gid, size, mtime = seen[path]
        if kind == DIR:
            assert mode == stat.S_IFDIR | 0o755, path
        elif kind == LINK and links:
            assert (mode, size) == (stat.S_IFLNK | 0o777, len(content)), path
        else:
            perm = 0o755 if kind == EXEC else 0o644
            assert (mode, size) == (stat.S_IFREG | perm, len(content)), path
        assert mtime == COMMIT_TIME
        if links:  # 9P2000 has no numeric owners: the kernel shows its default
            assert (uid, gid) == (0, 0)

    sums = {}
    for line in report["md5"]:
        digest, name = line.split(b"  ", 1)
        sums[name.removeprefix(b"./")] = digest.decode()
    files = {p: c for p, (k, c) in source.items() if k in (EXEC, 0o100644) or (k == LINK and not links)}
    assert sums == {p: hashlib.md5(c).hexdigest() for p, c in files.items()}

    targets = {
        name.removeprefix(b"./"): target for target, name in (x.split(b"|", 1) for x in report["links"])
    }
    assert targets == ({p: c for p, (k, c) in source.items() if k == LINK} if links else {})

    assert report["writes"] == [b"mounted rw"]
    errors = run.stderr.decode(errors="replace").strip().splitlines()
    assert len(errors) == WRITES, errors
    # 9P2000 cannot express links, so the kernel refuses those two itself, before asking the server.
    local = [e for e in errors if e.startswith("ln: ")] if not links else []
    assert all("Operation not permitted" in e for e in local) and len(local) in (0, 2)
    assert all("Read-only file system" in e for e in errors if e not in local), errors
