"""The docteur disk-image layout: header, PACK, padding, IDX, padding."""
