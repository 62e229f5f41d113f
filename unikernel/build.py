"""Build the guest from Debian packages: an uncompressed kernel and a zstd initramfs.

    python -m unikernel.build debs|vmlinux|initramfs

Each step is idempotent; the Makefile decides which ones are stale. Nothing is fetched but Debian packages
(`apt-get download`), cached under unikernel/build/debs.
"""

from __future__ import annotations

import lzma
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from unikernel.paths import BUILD, INITRAMFS, REPO, VMLINUX

DEBS = BUILD / "debs"
KERNEL = BUILD / "kernel"  # the subset of the kernel package we use

# The kernel drivers the guest loads (busybox modprobe pulls in their dependencies).
MODULES = ("virtio_mmio", "virtio_blk", "virtio_console", "virtio-rng", "9pnet_fd", "9p")
# Where those modules and everything they depend on live inside the kernel package.
MODULE_DIRS = ("drivers/virtio", "drivers/block", "drivers/char", "net/9p", "fs/9p", "fs/netfs", "fs/fscache")
USERLAND_PACKAGES = (
    "busybox-static",
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libc6",
    "zlib1g",
    "libexpat1",
)
# Shared libraries the interpreter links against (checked by the smoke test at the end of the build).
LIBS = ("ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libz.so.1", "libexpat.so.1", "libpthread.so.0")
XZ_MAGIC = b"\xfd7zXZ\x00"


class BuildError(Exception):
    """A build step failed; the message says which and why."""


def run(*argv: str | Path, cwd: Path | None = None, **kw: object) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(map(str, argv))}: {proc.stderr.decode(errors='replace').strip()}")
    return proc


def kernel_package() -> str:
    """The generic (not cloud) kernel package that Debian's linux-image-amd64 currently points to."""
    out = run("apt-cache", "depends", "linux-image-amd64").stdout.decode()
    for line in out.splitlines():
        key, _, name = line.strip().partition(": ")
        if (
            key == "Depends"
            and name.startswith("linux-image-")
            and name.endswith("-amd64")
            and "cloud" not in name
        ):
            return name
    raise BuildError("apt-cache knows no linux-image-amd64: run apt-get update")


def deb(name: str) -> Path:
    found = sorted(DEBS.glob(f"{name}_*.deb"))
    if not found:
        raise BuildError(f"{name}: not downloaded; run `python -m unikernel.build debs`")
    return found[-1]


def fetch_debs() -> None:
    DEBS.mkdir(parents=True, exist_ok=True)
    wanted = (kernel_package(), *USERLAND_PACKAGES)
    missing = [name for name in wanted if not list(DEBS.glob(f"{name}_*.deb"))]
    if missing:
        run("apt-get", "download", *missing, cwd=DEBS)
    (DEBS / "kernel").write_text(wanted[0] + "\n")


def extract_kernel() -> None:
    """Unpack vmlinuz and the modules we need, then decompress vmlinuz's XZ payload into an ELF vmlinux.

    The ELF boots directly through PVH, which skips the real-mode setup and the in-guest decompressor:
    about a second less per boot under TCG.
    """
    package = deb((DEBS / "kernel").read_text().strip())
    # Unpacked beside KERNEL, then swapped in: a concurrent build never sees half a tree.
    tmp = Path(tempfile.mkdtemp(dir=BUILD, prefix="kernel-"))
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(package)], stdout=subprocess.PIPE)
    patterns = ["./boot/vmlinuz-*", "./lib/modules/*/modules.*"]
    patterns += [f"./lib/modules/*/kernel/{d}/*" for d in MODULE_DIRS]
    run("tar", "-x", "--wildcards", *patterns, cwd=tmp, stdin=tar.stdout)
    if tar.wait() != 0:
        raise BuildError(f"dpkg-deb could not read {package.name}")
    shutil.rmtree(KERNEL, ignore_errors=True)
    tmp.rename(KERNEL)
    (vmlinuz,) = (KERNEL / "boot").glob("vmlinuz-*")
    blob = vmlinuz.read_bytes()
    start = blob.find(XZ_MAGIC)
    if start < 0:
        raise BuildError(f"{vmlinuz.name}: no XZ payload (was the kernel built with another compressor?)")
    elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(blob[start:])
    if not elf.startswith(b"\x7fELF"):
        raise BuildError(f"{vmlinuz.name}: its XZ payload is not an ELF kernel")
    replace(VMLINUX, elf)


def extract_userland(userland: Path) -> None:
    for name in USERLAND_PACKAGES:
        run("dpkg", "-x", deb(name), userland)


def stage_modules(root: Path, kver: str) -> None:
    src = KERNEL / "lib/modules" / kver
    dst = root / "lib/modules" / kver
    needed: set[str] = set()
    todo = list(MODULES)
    while todo:
        name = todo.pop()
        path = module_path(src, name)
        rel = str(path.relative_to(src))
        if rel in needed:
            continue
        needed.add(rel)
        deps = run("/sbin/modinfo", "-F", "depends", path).stdout.decode().strip()
        todo += [d for d in deps.split(",") if d]
    for rel in needed:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dst / rel)
    for meta in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        shutil.copy2(src / meta, dst / meta)
    run("/sbin/depmod", "-b", root, kver)


def module_path(tree: Path, name: str) -> Path:
    # Module names treat "-" and "_" alike; file names keep whichever the source used.
    for candidate in {name, name.replace("_", "-"), name.replace("-", "_")}:
        found = list((tree / "kernel").rglob(f"{candidate}.ko"))
        if found:
            return found[0]
    raise BuildError(f"module {name} not found in the kernel package (extracted: {', '.join(MODULE_DIRS)})")


def stage_busybox(root: Path, userland: Path) -> None:
    busybox = userland / "bin/busybox"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, root / "bin/busybox")
    for applet in run(busybox, "--list").stdout.decode().split():
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")


def stage_python(root: Path, userland: Path) -> None:
    """The interpreter, its libraries, and only the modules the in-guest entry point can import."""
    libdir = root / "lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True, exist_ok=True)
    for lib in LIBS:
        src = userland / "lib/x86_64-linux-gnu" / lib
        shutil.copy2(src.resolve(), libdir / lib)
    (root / "lib64").mkdir(exist_ok=True)
    (root / "lib64/ld-linux-x86-64.so.2").symlink_to("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(userland / "usr/bin/python3.11", root / "usr/bin/python3.11")
    (root / "usr/bin/python3").symlink_to("python3.11")
    dynload = root / "usr/lib/python3.11/lib-dynload"
    dynload.mkdir(parents=True)
    datrie = compiled_dependency("datrie")
    # Byte-compile with Debian's own interpreter (pyc magic must match the guest's) and let it list the
    # extension modules the closure needs.
    out = run(
        userland / "usr/bin/python3.11",
        "-S",
        REPO / "unikernel/closure.py",
        root / "usr/lib/python3.11",
        REPO,
        datrie.parent,
        env={"PYTHONHOME": str(userland / "usr")},
    ).stdout.decode()
    for line in out.splitlines():
        name, so = line.split(" ", 1)
        # A top-level module goes to lib-dynload; one inside a package (zstandard.backend_c), where
        # that package's byte-compiled files are.
        package = name.split(".")[:-1]
        target = (root / "usr/lib/python3.11").joinpath(*package) if package else dynload
        shutil.copy2(so, target / Path(so).name)
        run("strip", "--strip-unneeded", target / Path(so).name)


def compiled_dependency(name: str) -> Path:
    """The host's build of a compiled dependency (same CPython 3.11 ABI as Debian's interpreter)."""
    code = f"import {name}; print({name}.__file__)"
    return Path(run(sys.executable, "-c", code).stdout.decode().strip())


def stage_init(root: Path) -> None:
    shutil.copy2(REPO / "unikernel/init", root / "init")
    (root / "init").chmod(0o755)
    for d in ("proc", "sys", "dev", "mnt", "tmp", "etc"):
        (root / d).mkdir(exist_ok=True)


def smoke_test(root: Path) -> None:
    """Import the entry point in the staged tree: a missing library or module fails the build, not a boot."""
    code = "import docteur.guest, docteur.zstd, datrie, mmap, zlib"
    # The staged loader, libraries and stdlib only, as in the guest (no chroot: no root needed).
    libs = root / "lib/x86_64-linux-gnu"
    python = (libs / "ld-linux-x86-64.so.2", "--library-path", libs, root / "usr/bin/python3.11")
    run(*python, "-S", "-c", code, cwd=root, env={"PYTHONHOME": str(root / "usr")})


def pack_initramfs(root: Path) -> None:
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    cpio = run(
        "cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet", cwd=root, input="\n".join(files).encode()
    ).stdout
    packed = run("zstd", "-19", "-q", "-c", input=cpio).stdout
    replace(INITRAMFS, packed)


def build_initramfs() -> None:
    # A private scratch tree: builds started by concurrent test sessions do not trample each other.
    with tempfile.TemporaryDirectory(dir=BUILD, prefix="initramfs-") as scratch:
        root, userland = Path(scratch) / "root", Path(scratch) / "userland"
        root.mkdir()
        extract_userland(userland)
        (kver,) = [p.name for p in (KERNEL / "lib/modules").iterdir()]
        stage_modules(root, kver)
        stage_busybox(root, userland)
        stage_python(root, userland)
        stage_init(root)
        smoke_test(root)
        pack_initramfs(root)


def replace(path: Path, data: bytes) -> None:
    """Write PATH atomically: a guest booting meanwhile reads the old file or the new one, whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)


STEPS = {
    "debs": ("downloading Debian packages", fetch_debs),
    "vmlinux": ("extracting the kernel", extract_kernel),
    "initramfs": ("building the initramfs", build_initramfs),
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in STEPS:
        print(f"usage: python -m unikernel.build {'|'.join(STEPS)}", file=sys.stderr)
        return 2
    what, step = STEPS[argv[0]]
    print(f"unikernel: {what}...", file=sys.stderr)  # stdout of `make run` is the file's bytes
    try:
        step()
    except (BuildError, OSError) as e:
        print(f"unikernel build: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
