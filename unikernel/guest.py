"""Boot the docteur guest under QEMU and collect what it reports.

    from unikernel import guest
    run = guest.run_block("disk.img", "/README.md")       # run.rc, run.stdout (the file's exact bytes)
    rc, out = guest.run_disk("disk.img", "ls -lR /mnt")   # the guest mounts its own disk at /mnt
    rc, out = guest.run_mounted("/tmp/9p.sock", "ls -lR /mnt")  # any 9P server on a unix socket
    with guest.serving("disk.img", "/tmp/guest.sock"):   # the guest serves the image over 9P there
        ...

The guest (unikernel/init) writes its results to dedicated virtio-serial ports, each backed by a file on
the host: "out" (the payload, byte-exact), "err" (one-line errors), "status" (the exit code, written last).
Kernel messages go to the serial console, i.e. the log file. Build the guest first: `make -C unikernel`.
"""

from __future__ import annotations

import base64
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from unikernel.paths import BUILD, INITRAMFS, VMLINUX

QEMU = "qemu-system-x86_64"
ACCELS = ("kvm", "tcg")
VERDICT = BUILD / "accel"  # the cached outcome of the KVM boot probe
PROBE_TIMEOUT = 10.0  # a working KVM boots in about a second; a broken one hangs
# The kernel command line is at most 2048 bytes on x86; keep room for our fixed arguments.
MAX_ARG = 1400
KERNEL_ARGS = (
    "console=ttyS0",
    "quiet",  # every console line costs time on an emulated UART
    "panic=-1",  # with -no-reboot, QEMU exits if /init dies
    # Under TCG about one microvm boot in five hangs calibrating the TSC without this.
    "tsc_early_khz=3000000",
    # Boot-time work this guest never needs, about a second of TCG boot (measured with initcall_debug):
    # the crypto self-tests, the KDF self-test (which ignores notests in 6.1), kprobe tracing, BTF,
    # encrypted keys, TCP's cubic (the guest has no network; reno stays), IPv6.
    "cryptomgr.notests",
    "initcall_blacklist=crypto_kdf108_init,init_kprobe_trace,btf_vmlinux_init,init_encrypted,cubictcp_register",
    "ipv6.disable=1",
    # A throwaway VM that runs only our code: the speculation workarounds only slow its syscalls down.
    "mitigations=off",
)


class GuestError(Exception):
    """The guest could not be booted, or it stopped without reporting a result."""


@dataclass(frozen=True)
class Run:
    """What one boot reported. Unpacks as ``rc, stdout``."""

    rc: int
    stdout: bytes
    stderr: bytes
    seconds: float  # QEMU start to exit
    accel: str
    # CPU time QEMU used: about `seconds` on an idle machine, and barely inflated by other loads.
    cpu_seconds: float

    def __iter__(self) -> Iterator[int | bytes]:
        yield self.rc
        yield self.stdout

    @property
    def error(self) -> str:
        """The guest's one-line error (empty when it had none)."""
        lines = self.stderr.decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else ""


def accelerator(*, announce: bool = True) -> str:
    """kvm when a short boot probe showed it works here, else tcg; ACCEL=kvm|tcg forces one."""
    forced = os.environ.get("ACCEL")
    if forced:
        if forced not in ACCELS:
            raise GuestError(f"ACCEL={forced}: expected one of {', '.join(ACCELS)}")
        accel, why = forced, "forced by ACCEL"
    elif VERDICT.exists():
        accel, why = VERDICT.read_text().strip(), f"cached probe verdict in {VERDICT}"
    else:
        accel, why = _probe(), "boot probe"
        VERDICT.write_text(accel + "\n")
    if announce:
        print(f"unikernel: accel={accel} ({why})", file=sys.stderr)
    return accel


def _probe() -> str:
    # /dev/kvm can exist and still not boot a stock kernel (nested, PVM-backed): only a real boot tells.
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    try:
        run = boot("probe", accel="kvm", timeout=PROBE_TIMEOUT)
    except GuestError:
        return "tcg"
    return "kvm" if run.rc == 0 else "tcg"


def run_block(
    image: str | os.PathLike[str],
    path: str,
    *,
    timeout: float = 120.0,
    accel: str | None = None,
    log: str | os.PathLike[str] | None = None,
) -> Run:
    """Boot with IMAGE as a read-only virtio disk; the guest's docteur reads PATH from /dev/vda."""
    return boot("cat", path, disk=image, timeout=timeout, accel=accel, log=log)


def run_disk(
    image: str | os.PathLike[str],
    cmd: str,
    *,
    timeout: float = 120.0,
    accel: str | None = None,
    log: str | os.PathLike[str] | None = None,
) -> Run:
    """Boot with IMAGE as a read-only virtio disk, mounted read-only at /mnt; run the shell command CMD.

    docteur inside the guest serves the disk to the guest's own kernel over 9P: nothing runs on the host.
    The result unpacks as ``rc, stdout``; CMD's stderr is in ``.stderr``. If the image cannot be mounted,
    rc is 125 and ``.error`` says why.
    """
    return boot("disk", cmd, disk=image, timeout=timeout, accel=accel, log=log)


def run_mounted(
    socket_path: str | os.PathLike[str],
    cmd: str,
    version: str = "9p2000.L",
    *,
    options: str = "",
    timeout: float = 120.0,
    accel: str | None = None,
    log: str | os.PathLike[str] | None = None,
) -> Run:
    """Boot, mount the 9P server listening on SOCKET_PATH at /mnt (read-only), run the shell command CMD.

    OPTIONS are more mount options (e.g. "aname=/srv,cache=loose"). The result unpacks as ``rc, stdout``;
    CMD's stderr is in ``.stderr``. If the mount itself fails, rc is 125 and ``.error`` says why.
    """
    if not Path(socket_path).exists():
        raise GuestError(f"{socket_path}: no 9P server listening there")
    chardev = f"socket,id=p9,path={_escape(os.fspath(socket_path))}"
    extra = {"docteur_version": version, "docteur_options": _b64(options)}
    return boot("mount", cmd, console=chardev, extra=extra, timeout=timeout, accel=accel, log=log)


@contextlib.contextmanager
def serving(
    image: str | os.PathLike[str],
    socket_path: str | os.PathLike[str],
    *,
    timeout: float = 120.0,
    accel: str | None = None,
    log: str | os.PathLike[str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Boot a guest that serves IMAGE over 9P; QEMU listens on SOCKET_PATH for the host's 9P client.

    Yields the QEMU process once the guest is ready for a client (at most TIMEOUT seconds after boot); the
    guest is stopped on exit.
    """
    sock = Path(socket_path)
    sock.unlink(missing_ok=True)
    chardev = f"socket,id=p9,path={_escape(os.fspath(sock))},server=on,wait=off"
    with tempfile.TemporaryDirectory(prefix="docteur-guest-") as tmp:
        ports = Path(tmp)
        argv = _qemu_argv("serve", "", ports, disk=image, console=chardev, extra={}, accel=accel, log=log)
        with (ports / "qemu.err").open("wb") as err:
            qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_for_socket(sock, qemu, ports / "qemu.err", "QEMU")
            _wait_until_ready(ports, qemu, log, timeout)
            yield qemu
        finally:
            qemu.kill()
            qemu.wait()
            sock.unlink(missing_ok=True)


def wait_for_socket(
    sock: Path, proc: subprocess.Popen[bytes], stderr: Path, what: str, timeout: float = 10.0
) -> None:
    """Wait until PROC listens on SOCK; GuestError with its stderr (file STDERR) if it exits first."""
    deadline = time.monotonic() + timeout
    while not sock.exists():
        if proc.poll() is not None:
            why = stderr.read_text(errors="replace").strip()
            raise GuestError(why or f"{what} exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise GuestError(f"{what} did not listen on {sock} within {timeout:g} s")
        time.sleep(0.02)


def _wait_until_ready(
    ports: Path, qemu: subprocess.Popen[bytes], log: str | os.PathLike[str] | None, timeout: float
) -> None:
    """Wait for the serving guest's "ready" on its out port."""
    deadline = time.monotonic() + timeout
    while (ports / "out").read_bytes() != b"ready\n":
        if qemu.poll() is not None:
            err = (ports / "err").read_text(errors="replace").strip()
            raise GuestError(f"the guest stopped before serving: {err}{_tail(ports, log)}")
        if time.monotonic() > deadline:
            raise GuestError(f"the guest was not ready to serve after {timeout:g} s{_tail(ports, log)}")
        time.sleep(0.05)


def boot(
    mode: str,
    arg: str = "",
    *,
    disk: str | os.PathLike[str] | None = None,
    console: str | None = None,
    extra: dict[str, str] | None = None,
    timeout: float = 120.0,
    accel: str | None = None,
    log: str | os.PathLike[str] | None = None,
) -> Run:
    """Boot the guest in MODE (see unikernel/init) with ARG, wait for it to power off, return its report."""
    with tempfile.TemporaryDirectory(prefix="docteur-guest-") as tmp:
        ports = Path(tmp)
        accel = accel or accelerator()
        argv = _qemu_argv(
            mode, arg, ports, disk=disk, console=console, extra=extra or {}, accel=accel, log=log
        )
        start, cpu = time.monotonic(), _children_cpu()
        try:
            qemu = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise GuestError(f"guest timed out after {timeout:g} s{_tail(ports, log)}") from None
        seconds, cpu = time.monotonic() - start, _children_cpu() - cpu
        if qemu.returncode != 0:
            why = qemu.stderr.decode(errors="replace").strip()
            raise GuestError(f"QEMU failed ({qemu.returncode}): {why}")
        status = (ports / "status").read_text().strip()
        if not status.isdigit():
            raise GuestError(f"the guest stopped without reporting a result{_tail(ports, log)}")
        out, err = ((ports / name).read_bytes() for name in ("out", "err"))
        return Run(int(status), out, err, seconds, accel, cpu)


def _qemu_argv(
    mode: str,
    arg: str,
    ports: Path,
    *,
    disk: str | os.PathLike[str] | None,
    console: str | None,
    extra: dict[str, str],
    accel: str | None,
    log: str | os.PathLike[str] | None,
) -> list[str]:
    for product in (VMLINUX, INITRAMFS):
        if not product.exists():
            raise GuestError(f"{product} is missing: run `make -C unikernel`")
    if shutil.which(QEMU) is None:
        raise GuestError(f"{QEMU} not found: install qemu-system-x86")
    params = {"docteur_mode": mode, "docteur_arg": _b64(arg), **extra}
    if sum(map(len, params.values())) > MAX_ARG:
        raise GuestError(f"arguments too long for the kernel command line: {arg[:60]!r}...")
    append = " ".join([*KERNEL_ARGS, *(f"{k}={v}" for k, v in params.items())])
    serial = os.fspath(log) if log is not None else os.fspath(ports / "serial.log")
    argv = [
        QEMU,
        "-M", "microvm,acpi=on,pit=on,pic=on,rtc=on",
        "-accel", accel or accelerator(),
        "-m", "256M",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-kernel", os.fspath(VMLINUX), "-initrd", os.fspath(INITRAMFS), "-append", append,
        "-serial", f"file:{serial}",
        "-device", "virtio-rng-device",
        "-device", "virtio-serial-device,id=v0",
    ]  # fmt: skip
    if disk is not None:
        if not Path(disk).is_file() and not Path(disk).is_block_device():
            raise GuestError(f"{disk}: no such image")
        argv += [
            "-drive", f"id=d0,file={_escape(os.fspath(disk))},format=raw,if=none,readonly=on",
            "-device", "virtio-blk-device,drive=d0",
        ]  # fmt: skip
    if console is not None:
        argv += ["-chardev", console, "-device", "virtconsole,bus=v0.0,chardev=p9,nr=0"]
    # Port 0 is the virtconsole's; /init finds these by name.
    for nr, name in enumerate(("out", "err", "status"), start=1):
        path = _escape(os.fspath(ports / name))
        argv += ["-chardev", f"file,id={name},path={path}"]
        argv += ["-device", f"virtserialport,bus=v0.0,chardev={name},name={name},nr={nr}"]
    return argv


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _b64(text: str) -> str:
    # Any bytes (spaces, quotes, non-UTF-8 names) survive the kernel command line this way.
    return base64.b64encode(os.fsencode(text)).decode()


def _escape(value: str) -> str:
    # QEMU option values are comma-separated: a literal comma is written twice.
    return value.replace(",", ",,")


def _tail(ports: Path, log: str | os.PathLike[str] | None, lines: int = 15) -> str:
    path = Path(log) if log is not None else ports / "serial.log"
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return f" (serial console: {path})\n" + "\n".join(text)
