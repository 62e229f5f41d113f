"""`make fuzz` (python -m fuzz): issue 6's hostile-input campaigns at full size (tests/hostile: small)."""
