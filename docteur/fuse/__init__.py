"""Read-only FUSE mounts of docteur images (mfusepy over libfuse3): `docteur-mount IMAGE MOUNTPOINT`."""
