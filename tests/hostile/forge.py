"""Forged images: raw PACK entries written by hand, sealed with docteur's own IDX and image writers.

Every checksum of a forged image is right (PACK trailer, CRC32s, IDX), so only the reader's own checks
stand between the forgery and the caller. Each case says what an honest reader must give for it.
"""

from __future__ import annotations

import hashlib
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

from docteur.git.objects import (
    BLOB,
    COMMIT,
    MODE_DIR,
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    OFS_DELTA,
    REF_DELTA,
    TREE,
    TreeEntry,
    encode_tree,
    object_id,
)
from docteur.idx.writer import encode_index
from docteur.image.writer import write_image
from docteur.pack.reader import PACK_MAGIC
from docteur.pack.writer import entry_header, ofs_distance

from .corpus import Expected, Node

COMMIT_TEXT = b"tree %s\nauthor F <f@x> 0 +0000\ncommitter F <f@x> 0 +0000\n\nforged\n"


def delta(base_size: int, result_size: int, *ops: tuple[int, int] | bytes) -> bytes:
    """A Git delta: ops are (offset, size) copies from the base or bytes to insert."""
    out = bytearray(_size_varint(base_size) + _size_varint(result_size))
    for op in ops:
        if isinstance(op, bytes):
            for at in range(0, len(op), 127):
                piece = op[at : at + 127]
                out += bytes([len(piece)]) + piece
            continue
        offset, size = op
        cmd, args = 0x80, bytearray()
        for i in range(4):
            if offset >> (8 * i) & 0xFF:
                cmd |= 1 << i
                args.append(offset >> (8 * i) & 0xFF)
        for i in range(3):
            if size >> (8 * i) & 0xFF:
                cmd |= 0x10 << i
                args.append(size >> (8 * i) & 0xFF)
        out += bytes([cmd]) + args
    return bytes(out)


def _size_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def bomb(size: int) -> bytes:
    """A zlib stream of `size` zero bytes, compressed without ever holding them."""
    z = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    parts = [z.compress(chunk[: min(len(chunk), size - at)]) for at in range(0, size, len(chunk))]
    return b"".join([*parts, z.flush()])


class Forge:
    """A PACK built entry by entry. Ids are whatever the caller says: that is the point."""

    def __init__(self) -> None:
        self.entries: list[tuple[bytes, bytes]] = []  # (id, raw entry)
        self.offset = 12
        self.commit_kind = COMMIT  # the type the header's commit is stored as

    def raw(self, oid: bytes, raw: bytes) -> int:
        at = self.offset
        self.entries.append((oid, raw))
        self.offset += len(raw)
        return at

    def obj(
        self,
        kind: int,
        data: bytes,
        *,
        oid: bytes | None = None,
        declared: int | None = None,
        stream: bytes | None = None,
    ) -> tuple[bytes, int]:
        """A whole object: (id, offset). `declared` and `stream` let the header and the data lie."""
        oid = object_id(kind, data) if oid is None else oid
        size = len(data) if declared is None else declared
        body = zlib.compress(data) if stream is None else stream
        return oid, self.raw(oid, entry_header(kind, size) + body)

    def ofs_delta(self, oid: bytes, base_offset: int, patch: bytes) -> int:
        head = entry_header(OFS_DELTA, len(patch)) + ofs_distance(self.offset - base_offset)
        return self.raw(oid, head + zlib.compress(patch))

    def ref_delta(self, oid: bytes, base: bytes, patch: bytes) -> int:
        return self.raw(oid, entry_header(REF_DELTA, len(patch)) + base + zlib.compress(patch))

    def tree(self, entries: list[TreeEntry], *, raw: bytes | None = None) -> bytes:
        """A tree in Git order, or exactly `raw` (for names and orders Git would never write)."""
        return self.obj(TREE, encode_tree(entries) if raw is None else raw)[0]

    def write(self, path: Path, root_tree: bytes, *, block_size: int = 512) -> Path:
        text = COMMIT_TEXT % root_tree.hex().encode()
        commit, _ = self.obj(self.commit_kind, text, oid=object_id(COMMIT, text))
        pack = bytearray(PACK_MAGIC + struct.pack(">II", 2, len(self.entries)))
        rows = []
        for oid, raw in self.entries:
            rows.append((oid, len(pack), zlib.crc32(raw)))
            pack += raw
        checksum = hashlib.sha1(pack).digest()
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".pack") as f:
            f.write(pack + checksum)
            f.flush()
            write_image(path, commit, Path(f.name), encode_index(rows, checksum), block_size)
        return path


def raw_tree(*records: tuple[bytes, bytes, bytes]) -> bytes:
    """Tree bytes from (mode text, name, id) records, in the order given."""
    return b"".join(mode + b" " + name + b"\0" + oid for mode, name, oid in records)


# -- the cases ------------------------------------------------------------------------------------------

HONEST = b"an honest file next to a hostile one\n" * 20
TEXT = b"".join(b"%04d delta base line\n" % i for i in range(400))


def _with_honest(forge: Forge, hostile: list[TreeEntry]) -> tuple[bytes, dict[bytes, Node]]:
    """Root tree: 'ok.txt' and 'keep/ok.txt' (honest) next to the hostile entries."""
    ok, _ = forge.obj(BLOB, HONEST)
    keep = forge.tree([TreeEntry(b"ok.txt", MODE_FILE, ok)])
    root = forge.tree([TreeEntry(b"ok.txt", MODE_FILE, ok), TreeEntry(b"keep", MODE_DIR, keep), *hostile])
    nodes = {
        b"ok.txt": Node(MODE_FILE, HONEST),
        b"keep": Node(MODE_DIR),
        b"keep/ok.txt": Node(MODE_FILE, HONEST),
    }
    return root, nodes


def _hostile_file(forge: Forge, oid: bytes, name: bytes = b"bad") -> tuple[bytes, Expected]:
    root, nodes = _with_honest(forge, [TreeEntry(name, MODE_FILE, oid)])
    return root, Expected(nodes, fails=frozenset({name}), verify_ok=False)


def size_too_small(forge: Forge) -> tuple[bytes, Expected]:
    oid, _ = forge.obj(BLOB, TEXT, declared=len(TEXT) - 7)
    return _hostile_file(forge, oid)


def size_too_large(forge: Forge) -> tuple[bytes, Expected]:
    oid, _ = forge.obj(BLOB, TEXT, declared=len(TEXT) + 7)
    return _hostile_file(forge, oid)


def size_over_maximum(forge: Forge) -> tuple[bytes, Expected]:
    oid, _ = forge.obj(BLOB, b"tiny", declared=1 << 40)
    return _hostile_file(forge, oid)


def zlib_bomb(forge: Forge) -> tuple[bytes, Expected]:
    """Declares 10 bytes, inflates to 256 MiB: the reader must stop after 11."""
    oid, _ = forge.obj(BLOB, b"0123456789", declared=10, stream=bomb(256 << 20))
    return _hostile_file(forge, oid)


def zlib_garbage(forge: Forge) -> tuple[bytes, Expected]:
    oid, _ = forge.obj(BLOB, TEXT, stream=b"\x78\x9c" + bytes(range(256)) * 4)
    return _hostile_file(forge, oid)


def zlib_trailing(forge: Forge) -> tuple[bytes, Expected]:
    """The right bytes, then more compressed data inside the same entry: verify must object, reads may not."""
    oid, _ = forge.obj(BLOB, TEXT, stream=zlib.compress(TEXT) + zlib.compress(b"smuggled"))
    root, nodes = _with_honest(forge, [TreeEntry(b"bad", MODE_FILE, oid)])
    return root, Expected(nodes | {b"bad": Node(MODE_FILE, TEXT)}, verify_ok=False)


def wrong_type(forge: Forge) -> tuple[bytes, Expected]:
    """A blob's id stored as a tree object (and a tree's id as a blob)."""
    blob_id = object_id(BLOB, TEXT)
    forge.obj(TREE, TEXT, oid=blob_id)
    sub = encode_tree([TreeEntry(b"x", MODE_FILE, blob_id)])
    tree_id = object_id(TREE, sub)
    forge.obj(BLOB, sub, oid=tree_id)
    root, nodes = _with_honest(
        forge, [TreeEntry(b"bad", MODE_FILE, blob_id), TreeEntry(b"baddir", MODE_DIR, tree_id)]
    )
    return root, Expected(nodes, fails=frozenset({b"bad", b"baddir"}), verify_ok=False)


def missing_object(forge: Forge) -> tuple[bytes, Expected]:
    return _hostile_file(forge, hashlib.sha1(b"not in this image").digest())


def forged_id(forge: Forge) -> tuple[bytes, Expected]:
    """An id whose stored content is another file's: the reader must not serve it."""
    oid = object_id(BLOB, b"what the tree promised\n")
    forge.obj(BLOB, b"what the attacker stored\n", oid=oid)
    return _hostile_file(forge, oid)


def delta_self_ref(forge: Forge) -> tuple[bytes, Expected]:
    oid = object_id(BLOB, TEXT)
    forge.ref_delta(oid, oid, delta(len(TEXT), len(TEXT), (0, len(TEXT))))
    return _hostile_file(forge, oid)


def delta_self_ofs(forge: Forge) -> tuple[bytes, Expected]:
    oid = object_id(BLOB, TEXT)
    forge.ofs_delta(oid, forge.offset, delta(len(TEXT), len(TEXT), (0, len(TEXT))))
    return _hostile_file(forge, oid)


def delta_cycle(forge: Forge) -> tuple[bytes, Expected]:
    a, b = object_id(BLOB, TEXT), object_id(BLOB, TEXT + b"b")
    forge.ref_delta(a, b, delta(len(TEXT) + 1, len(TEXT), (0, len(TEXT))))
    forge.ref_delta(b, a, delta(len(TEXT), len(TEXT) + 1, (0, len(TEXT)), b"b"))
    root, nodes = _with_honest(forge, [TreeEntry(b"a", MODE_FILE, a), TreeEntry(b"b", MODE_FILE, b)])
    return root, Expected(nodes, fails=frozenset({b"a", b"b"}), verify_ok=False)


def delta_ofs_outside(forge: Forge) -> tuple[bytes, Expected]:
    """An OFS_DELTA whose base would lie before the PACK."""
    oid = object_id(BLOB, TEXT)
    forge.raw(oid, entry_header(OFS_DELTA, 8) + ofs_distance(1 << 30) + zlib.compress(delta(4, 4, (0, 4))))
    return _hostile_file(forge, oid)


def delta_forward_ref(forge: Forge) -> tuple[bytes, Expected]:
    """A REF_DELTA whose base comes later in the PACK is valid Git: it must read back exactly."""
    result = TEXT + b"and one more line\n"
    oid = object_id(BLOB, result)
    base = object_id(BLOB, TEXT)
    forge.ref_delta(oid, base, delta(len(TEXT), len(result), (0, len(TEXT)), b"and one more line\n"))
    forge.obj(BLOB, TEXT)
    root, nodes = _with_honest(
        forge, [TreeEntry(b"later", MODE_FILE, oid), TreeEntry(b"zbase", MODE_FILE, base)]
    )
    nodes |= {b"later": Node(MODE_FILE, result), b"zbase": Node(MODE_FILE, TEXT)}
    return root, Expected(nodes)


def _delta_case(forge: Forge, patch: bytes, result: bytes) -> tuple[bytes, Expected]:
    _, base_at = forge.obj(BLOB, TEXT)
    oid = object_id(BLOB, result)
    forge.ofs_delta(oid, base_at, patch)
    return _hostile_file(forge, oid)


def delta_copy_out_of_range(forge: Forge) -> tuple[bytes, Expected]:
    return _delta_case(forge, delta(len(TEXT), 100, (len(TEXT) - 50, 100)), TEXT[-50:] + bytes(50))


def delta_copy_huge_offset(forge: Forge) -> tuple[bytes, Expected]:
    return _delta_case(forge, delta(len(TEXT), 16, (0xFFFFFFF0, 16)), TEXT[:16])


def delta_wrong_base_size(forge: Forge) -> tuple[bytes, Expected]:
    return _delta_case(forge, delta(len(TEXT) + 1, 10, (0, 10)), TEXT[:10])


def delta_result_lies(forge: Forge) -> tuple[bytes, Expected]:
    return _delta_case(forge, delta(len(TEXT), 11, (0, 10)), TEXT[:10])


def delta_result_overflows(forge: Forge) -> tuple[bytes, Expected]:
    return _delta_case(forge, delta(len(TEXT), 10, (0, 10), (0, 10)), TEXT[:20])


def delta_bomb(forge: Forge) -> tuple[bytes, Expected]:
    """A delta declaring a 4 GiB result: refused from its header, before any copy."""
    return _delta_case(forge, delta(len(TEXT), 1 << 32, *[(0, len(TEXT))] * 4), TEXT * 4)


def delta_reserved_op(forge: Forge) -> tuple[bytes, Expected]:
    return _delta_case(forge, delta(len(TEXT), 1) + b"\x00", TEXT[:1])


def delta_truncated(forge: Forge) -> tuple[bytes, Expected]:
    return _delta_case(forge, delta(len(TEXT), 10)[:-1] + b"\x90", TEXT[:10])


def long_chain(forge: Forge) -> tuple[bytes, Expected]:
    """Valid Git: a chain of 2,000 deltas, each its base plus a line. Its last object reads back."""
    content = TEXT
    first, at = forge.obj(BLOB, content)
    for i in range(1, 2_000):
        line = b"version %d\n" % i
        patch = delta(len(content), len(content) + len(line), (0, len(content)), line)
        content += line
        at = forge.ofs_delta(object_id(BLOB, content), at, patch)
    root = forge.tree(
        [TreeEntry(b"first", MODE_FILE, first), TreeEntry(b"last", MODE_FILE, object_id(BLOB, content))]
    )
    return root, Expected({b"first": Node(MODE_FILE, TEXT), b"last": Node(MODE_FILE, content)})


def deep_chain(forge: Forge) -> tuple[bytes, Expected]:
    """A chain of 12,000 deltas, each a copy of its base: deeper than the reader's limit."""
    _, at = forge.obj(BLOB, TEXT)
    oid = b""
    for i in range(12_000):
        oid = hashlib.sha1(b"link %d" % i).digest()
        at = forge.ofs_delta(oid, at, delta(len(TEXT), len(TEXT), (0, len(TEXT))))
    return _hostile_file(forge, oid)


def _bad_names(*names: bytes) -> Callable[[Forge], tuple[bytes, Expected]]:
    def case(forge: Forge) -> tuple[bytes, Expected]:
        ok, _ = forge.obj(BLOB, HONEST)
        sub = forge.tree([], raw=raw_tree(*((b"100644", name, ok) for name in names)))
        root, nodes = _with_honest(forge, [TreeEntry(b"evil", MODE_DIR, sub)])
        return root, Expected(nodes, fails=frozenset({b"evil"}), verify_ok=False)

    return case


def tree_bad_mode(forge: Forge) -> tuple[bytes, Expected]:
    ok, _ = forge.obj(BLOB, HONEST)
    sub = forge.tree([], raw=raw_tree((b"100666", b"x", ok)))
    root, nodes = _with_honest(forge, [TreeEntry(b"evil", MODE_DIR, sub)])
    return root, Expected(nodes, fails=frozenset({b"evil"}), verify_ok=False)


def tree_malformed(forge: Forge) -> tuple[bytes, Expected]:
    sub = forge.tree([], raw=b"100644 truncated\0" + b"\x01" * 7)
    root, nodes = _with_honest(forge, [TreeEntry(b"evil", MODE_DIR, sub)])
    return root, Expected(nodes, fails=frozenset({b"evil"}), verify_ok=False)


def tree_reaches_itself(forge: Forge) -> tuple[bytes, Expected]:
    """'loop' names an id whose stored tree holds 'loop' again: walks must not go round for ever."""
    loop_id = hashlib.sha1(b"a tree id that will be forged").digest()
    ok, _ = forge.obj(BLOB, HONEST)
    forge.obj(
        TREE,
        encode_tree([TreeEntry(b"loop", MODE_DIR, loop_id), TreeEntry(b"f", MODE_FILE, ok)]),
        oid=loop_id,
    )
    root, nodes = _with_honest(forge, [TreeEntry(b"loop", MODE_DIR, loop_id)])
    return root, Expected(nodes, fails=frozenset({b"loop"}), verify_ok=False)


def commit_not_a_commit(forge: Forge) -> tuple[bytes, Expected]:
    """The header's commit id stored as a blob: open must refuse the image."""
    root, nodes = _with_honest(forge, [])
    forge.commit_kind = BLOB
    return root, Expected(nodes, verify_ok=False, opens=False)


def symlink_escapes(forge: Forge) -> tuple[bytes, Expected]:
    """Links out of the tree are data: stored, listed and extracted as links, never followed."""
    out, _ = forge.obj(BLOB, b"../../../../../../etc/passwd")
    absolute, _ = forge.obj(BLOB, b"/etc/shadow")
    run, _ = forge.obj(BLOB, b"#!/bin/sh\n")
    root, nodes = _with_honest(
        forge,
        [
            TreeEntry(b"abs", MODE_LINK, absolute),
            TreeEntry(b"run", MODE_EXEC, run),
            TreeEntry(b"up", MODE_LINK, out),
        ],
    )
    nodes |= {
        b"abs": Node(MODE_LINK, b"/etc/shadow"),
        b"run": Node(MODE_EXEC, b"#!/bin/sh\n"),
        b"up": Node(MODE_LINK, b"../../../../../../etc/passwd"),
    }
    return root, Expected(nodes)


CASES: dict[str, Callable[[Forge], tuple[bytes, Expected]]] = {
    "size-too-small": size_too_small,
    "size-too-large": size_too_large,
    "size-over-maximum": size_over_maximum,
    "zlib-bomb": zlib_bomb,
    "zlib-garbage": zlib_garbage,
    "zlib-trailing": zlib_trailing,
    "wrong-type": wrong_type,
    "missing-object": missing_object,
    "forged-id": forged_id,
    "delta-self-ref": delta_self_ref,
    "delta-self-ofs": delta_self_ofs,
    "delta-cycle": delta_cycle,
    "delta-ofs-outside": delta_ofs_outside,
    "delta-forward-ref": delta_forward_ref,
    "delta-copy-out-of-range": delta_copy_out_of_range,
    "delta-copy-huge-offset": delta_copy_huge_offset,
    "delta-wrong-base-size": delta_wrong_base_size,
    "delta-result-lies": delta_result_lies,
    "delta-result-overflows": delta_result_overflows,
    "delta-bomb": delta_bomb,
    "delta-reserved-op": delta_reserved_op,
    "delta-truncated": delta_truncated,
    "long-chain": long_chain,
    "deep-chain": deep_chain,
    "name-dot": _bad_names(b"."),
    "name-dotdot": _bad_names(b".."),
    "name-empty": _bad_names(b""),
    "name-slash": _bad_names(b"../x"),
    "name-absolute": _bad_names(b"/etc/passwd"),
    "name-nul": _bad_names(b"a\0b"),
    "name-duplicate": _bad_names(b"same", b"same"),
    "name-unsorted": _bad_names(b"b", b"a"),
    "tree-bad-mode": tree_bad_mode,
    "tree-malformed": tree_malformed,
    "tree-reaches-itself": tree_reaches_itself,
    "commit-not-a-commit": commit_not_a_commit,
    "symlink-escapes": symlink_escapes,
}


def build(name: str, path: Path) -> Expected:
    """Write forged case `name` to `path` and return what reading it must give."""
    forge = Forge()
    root, expected = CASES[name](forge)
    forge.write(path, root)
    return expected
