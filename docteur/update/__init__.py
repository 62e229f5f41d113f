"""Delta updates between two images (issue 12): a device holding image OLD receives only what NEW adds.

format.py is the update file, delta.py computes one (`docteur delta`), apply.py applies it (`docteur
patch`), carry.py ships the sections NEW's PACK cannot give back, parts.py is an image as both see it,
binary.py the binary deltas and deflate levels of shipped entries, and base.py makes an image against
a base image (`docteur-make --base`) so that updates between successive makes stay small.
"""
