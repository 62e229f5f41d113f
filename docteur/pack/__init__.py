"""Git PACK files: reading objects in place (with OFS_DELTA and REF_DELTA) and writing packs."""
