"""Where the guest's build products live (git-ignored)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "unikernel" / "build"
VMLINUX = BUILD / "vmlinux"
INITRAMFS = BUILD / "initramfs.cpio.zst"
