"""QEMU guests that read a docteur image: as a raw virtio disk, or mounted over 9P.

Build with `make -C unikernel`; boot with the functions of `unikernel.guest`.
"""
