"""The images under test, made once per corpus with docteur-make, and a bare repository holding each
image's own PACK and IDX so that git reads exactly the same objects."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import docteur
from bench.corpora import WORK, Corpus
from docteur.make import make, parse_date

DATE = "2020-10-10T08:00:00+00:00"


@dataclass(frozen=True)
class Made:
    corpus: Corpus
    image: Path
    peer_repo: Path  # a bare repository whose only pack is the image's
    blobs: Path  # the id of each file, in the order read_all() reads them: git cat-file --batch input
    first: str  # the first file in walk order
    files: int
    in_largest: str  # a file of the image's largest folder
    largest: int  # how many entries that folder holds


def image_of(corpus: Corpus) -> Made:
    where = WORK / "images" / corpus.name
    image = where / "disk.img"
    peer = where / "peer.git"
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    source = corpus.repo if corpus.real and corpus.repo is not None else corpus.tree
    make(str(source), image, date=parse_date(DATE), quiet=True)
    subprocess.run(["git", "init", "-q", "--bare", str(peer)], check=True)
    data = image.read_bytes()
    with docteur.open(image) as img:
        placement = img.placement
        packs = peer / "objects" / "pack"
        (packs / "pack-image.pack").write_bytes(data[28 : 28 + placement.pack_length])
        (packs / "pack-image.idx").write_bytes(data[placement.idx_offset : placement.idx_end])
        ids = [img.stat(path).oid for path, _ in img.read_all()]
        first = next(f"{d}/{files[0]}".lstrip("/") for d, _, files in img.walk() if files)
        folder, dirs, files = max(
            ((d, dirs, files) for d, dirs, files in img.walk() if files), key=lambda w: len(w[1]) + len(w[2])
        )
        in_largest = f"{folder}/{files[len(files) // 2]}".lstrip("/")
    blobs = where / "blobs.txt"
    blobs.write_text("".join(f"{oid}\n" for oid in ids))
    return Made(corpus, image, peer, blobs, first, len(ids), in_largest, len(dirs) + len(files))
