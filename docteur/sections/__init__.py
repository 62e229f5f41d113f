"""The extension after the IDX: a table of sections (table.py) and what they hold.

OCaml docteur reads the header, the PACK and the IDX, and stops there; the extension adds what those
lack, each part in a section of its own found through the table: the path index (paths.py), and later
kinds, without a new layout.
"""

PATHS = 1  # the path index: every directory of the indexed commits, with sizes and object locations
REFS = 2  # the names of the embedded commits (several refs per image)
FRAMES = 3  # zstd images: the files' contents, in zstd frames
DICTIONARY = 4  # zstd images: the dictionary their frames were compressed with
BLOBS = 5  # zstd images: where the blobs lie that no indexed tree reaches (history)

NAMES = {PATHS: "paths", REFS: "refs", FRAMES: "frames", DICTIONARY: "dictionary", BLOBS: "blobs"}
