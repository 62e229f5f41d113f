"""Every command through the installed console scripts: formats, exit codes, one-line errors, extract."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, DATE, run_cli
from trees import EXEC, FILE, GIT_ENV, LINK, commit_directory, git, read_fs_tree, write_tree

from docteur.image.writer import write_image

SPEC = {
    b"README.md": (FILE, b"hello\nworld\n"),
    b"bin/tool": (EXEC, b"#!/bin/sh\nexit 0\n"),
    b"docs/a.md": (FILE, b"# A\n"),
    b"docs/big.txt": (FILE, b"0123456789abcdef" * 192),  # 3072 bytes: 3.0K with -h
    b"docs/deeper/z.txt": (FILE, b"zzz"),
    b"link": (LINK, b"docs/a.md"),
}


def ok(*args: str | Path, env: dict[str, str] | None = None) -> bytes:
    done = run_cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b"", done.stderr
    return done.stdout


def one_line_error(done: subprocess.CompletedProcess[bytes], prog: str, *expected: str, code: int = 1) -> str:
    err = done.stderr.decode()
    assert done.returncode == code, (done.returncode, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"{prog}: error: "), err
    for text in expected:
        assert text in err, err
    return err


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository of SPEC with three commits; HEAD's message is 'third'."""
    root = tmp_path_factory.mktemp("cli") / "repo"
    write_tree(root, SPEC)
    commit_directory(root)
    for message in ("second", "third"):
        (root / "README.md").write_text(f"hello\nworld\n{message}\n")
        git(root, "commit", "-q", "-am", message)
    git(root, "checkout", "-q", "HEAD~2", "--", "README.md")
    return root


@pytest.fixture(scope="module")
def image(repo: Path) -> Path:
    """The HEAD~2 tree exactly as SPEC, made from the repository's first commit through the CLI."""
    out = repo.parent / "disk.img"
    first = git(repo, "rev-list", "--max-parents=0", "HEAD").decode().strip()
    ok("docteur-make", "-q", "-b", first, repo, out)
    return out


def test_make_from_a_directory_and_the_subcommand_agree(tmp_path: Path, image: Path) -> None:
    write_tree(tmp_path / "src", SPEC)
    one, two = tmp_path / "one.img", tmp_path / "two.img"
    ok("docteur-make", "-q", "-d", DATE, tmp_path / "src", one)
    ok("docteur", "make", "-q", "--date", DATE, tmp_path / "src", two)
    assert one.read_bytes() == two.read_bytes()
    assert ok("docteur-ls", "-R", one) == ok("docteur-ls", "-R", image)
    assert (
        ok("docteur", "make", "-q", "--bs", "4096", "-d", DATE, tmp_path / "src", tmp_path / "big.img") == b""
    )
    assert (tmp_path / "big.img").stat().st_size % 4096 == 0


def test_verify_prints_commit_author_root_and_message(repo: Path, image: Path) -> None:
    first = git(repo, "rev-list", "--max-parents=0", "HEAD").decode().strip()
    tree = git(repo, "rev-parse", f"{first}^{{tree}}").decode().strip()
    expected = (
        f"commit\t: {first}\n"
        f'author\t: "{GIT_ENV["GIT_AUTHOR_NAME"]}" <{GIT_ENV["GIT_AUTHOR_EMAIL"]}>\n'
        f"root\t: {tree}\n"
        "\n"
        "tree\n"
    )
    assert ok("docteur-verify", image).decode() == expected
    assert ok("docteur", "verify", image).decode() == expected
    report = json.loads(ok("docteur-verify", "--json", image))
    assert (report["ok"], report["commit"], report["root"], report["problems"]) == (True, first, tree, [])
    assert report["objects"] == 7 + 4  # 1 commit, 4 trees (root, bin, docs, deeper), 6 blobs
    assert report["message"] == "tree\n" and report["size"] == image.stat().st_size


def test_verify_reports_damage_and_fails(image: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.img"
    data = bytearray(image.read_bytes())
    data[200] ^= 0xFF  # inside the PACK
    damaged.write_bytes(bytes(data))
    done = run_cli("docteur-verify", damaged)
    assert done.returncode == 1 and done.stdout == b"" and b"Traceback" not in done.stderr
    assert all(line.startswith(f"docteur-verify: {damaged}: ") for line in done.stderr.decode().splitlines())
    report = json.loads(run_cli("docteur-verify", "--json", damaged).stdout)
    assert report["ok"] is False and report["problems"]


def test_ls_formats(image: Path) -> None:
    assert ok("docteur-ls", image).decode().split() == ["README.md", "bin", "docs", "link"]
    assert ok("docteur-ls", image, "docs").decode().split() == ["a.md", "big.txt", "deeper"]
    recursive = ok("docteur-ls", "-R", image, "/docs/").decode().splitlines()
    assert recursive == ["a.md", "big.txt", "deeper", "deeper/z.txt"]
    long = {
        line.split()[-1]: line.split() for line in ok("docteur-ls", "-l", image, "docs").decode().splitlines()
    }
    assert long["big.txt"][:2] == ["-rw-r--r--", "3072"] and long["deeper"][0] == "drwxr-xr-x"
    human = {
        line.split()[3]: line.split() for line in ok("docteur-ls", "-lh", image, "docs").decode().splitlines()
    }
    assert human["big.txt"][1] == "3.0K" and human["a.md"][1] == "4"
    root = ok("docteur", "ls", "-l", image).decode().splitlines()
    assert root[-1].startswith("lrwxrwxrwx") and root[-1].endswith(" link -> docs/a.md")
    assert any(
        line.startswith("-rwxr-xr-x") for line in ok("docteur-ls", "-l", image, "bin").decode().splitlines()
    )
    listed = json.loads(ok("docteur-ls", "--json", "-R", image))
    by_path = {e["path"]: e for e in listed}
    assert by_path["link"] == {
        "name": "link",
        "path": "link",
        "type": "symlink",
        "mode": "120000",
        "size": 9,
        "oid": by_path["link"]["oid"],
        "target": "docs/a.md",
    }
    assert (by_path["bin/tool"]["type"], by_path["docs"]["type"]) == ("executable", "directory")
    assert len(listed) == 9


def _on_a_terminal(*args: str | Path, env: dict[str, str]) -> bytes:
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [str(BIN / str(args[0])), *map(str, args[1:])],
            stdout=follower,
            stderr=subprocess.PIPE,
            env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return os.read(leader, 65536)
    finally:
        os.close(leader)
        os.close(follower)


def test_colour_on_terminals_unless_no_color(image: Path) -> None:
    base = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    coloured = _on_a_terminal("docteur-ls", image, env={**base, "NO_COLOR": ""})
    assert b"\x1b[1;34mdocs\x1b[0m" in coloured and b"\x1b[1;36mlink\x1b[0m" in coloured
    assert b"\x1b[" not in _on_a_terminal("docteur-ls", image, env={**base, "NO_COLOR": "1"})
    assert b"\x1b[" not in ok("docteur-ls", image)  # a pipe is not a terminal
    assert b"\x1b[1;32mtool\x1b[0m" in ok("docteur-ls", "--color=always", image, "bin", env={"NO_COLOR": "1"})
    assert b"\x1b[" not in _on_a_terminal("docteur-ls", "--color=never", image, env=base)


def test_cat_and_stat(image: Path) -> None:
    assert ok("docteur-cat", image, "README.md") == b"hello\nworld\n"
    assert ok("docteur-cat", image, "docs/a.md", "/docs/deeper/z.txt") == b"# A\nzzz"
    assert ok("docteur", "cat", image, "docs/big.txt") == SPEC[b"docs/big.txt"][1]
    text = ok("docteur", "stat", image, "link").decode()
    assert text.startswith("mode\t: 120000\nsize\t: 9\noid\t: ") and text.endswith("target\t: docs/a.md\n")
    st = json.loads(ok("docteur", "stat", "--json", image, "bin/tool"))
    assert (st["path"], st["name"], st["mode"], st["size"], st["type"]) == (
        "bin/tool",
        "tool",
        "100755",
        17,
        "executable",
    )


def test_info(repo: Path, image: Path, tmp_path: Path) -> None:
    text = ok("docteur", "info", image).decode()
    summary = json.loads(ok("docteur", "info", "--json", image))
    assert f"commit\t: {summary['commit']}\n" in text and "history\t: 1 commit\n" in text
    assert (summary["files"], summary["directories"], summary["symlinks"], summary["history_depth"]) == (
        5,
        3,
        1,
        1,
    )
    assert summary["objects"] == json.loads(ok("docteur-verify", "--json", image))["objects"]
    assert summary["content_bytes"] == sum(len(content) for _, content in SPEC.values())
    assert summary["image_bytes"] == image.stat().st_size and summary["block_size"] == 512
    assert summary["compression_ratio"] == round(summary["content_bytes"] / summary["pack_bytes"], 3)
    history = tmp_path / "history.img"
    ok("docteur-make", "-q", "--history", "--bs", "4096", repo, history)
    deep = json.loads(ok("docteur", "info", "--json", history))
    assert (deep["history_depth"], deep["block_size"]) == (3, 4096)
    assert deep["commit"] == git(repo, "rev-parse", "HEAD").decode().strip()


def test_fast_path_skips_typer_and_behaves_the_same(image: Path) -> None:
    cases = [
        ("cat", [image, "docs/a.md"]),
        ("ls", [image, "docs"]),
        ("verify", [image]),
        ("cat", [image, "docs/missing.md"]),
        ("ls", [image.parent / "missing.img"]),
    ]
    for name, args in cases:
        fast, full = run_cli(f"docteur-{name}", *args), run_cli("docteur", name, *args)
        assert (fast.returncode, fast.stdout, fast.stderr) == (full.returncode, full.stdout, full.stderr)
    imports = subprocess.run(
        [BIN / "python", "-X", "importtime", BIN / "docteur-cat", image, "README.md"],
        capture_output=True,
        check=True,
    ).stderr.decode()
    modules = {line.split("|")[-1].strip() for line in imports.splitlines()}
    assert "docteur.fs.image" in modules and not any(
        m.split(".")[0] in ("typer", "click", "rich") for m in modules
    )


def test_help_documents_exit_codes_and_completion_works(image: Path) -> None:
    for args in (
        ["docteur", "--help"],
        ["docteur", "info", "--help"],
        ["docteur-cat", "-h"],
        ["docteur-ls", "--help"],
    ):
        assert b"Exit status: 0 success; 1 the command failed" in ok(*args)
    assert b"_docteur_completion" in ok("docteur", "--show-completion", "bash")

    def complete(prog: str, words: str) -> list[str]:
        env = {f"_{prog.upper().replace('-', '_')}_COMPLETE": "complete_bash", "COMP_WORDS": words}
        env["COMP_CWORD"] = str(len(words.split()) - 1)
        return ok(prog, env=env).decode().split()

    assert complete("docteur", "docteur ve") == ["verify"]
    assert complete("docteur", f"docteur cat {image} do") == ["docs/"]
    assert complete("docteur-cat", f"docteur-cat {image} docs/") == [
        "docs/a.md",
        "docs/big.txt",
        "docs/deeper/",
    ]


def test_one_line_errors(image: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.img"
    corrupt = tmp_path / "corrupt.img"
    corrupt.write_bytes(b"not an image" * 100)
    src = tmp_path / "src"
    write_tree(src, SPEC)
    for prog, args in [
        ("docteur-cat", [missing, "a"]),
        ("docteur-ls", [missing]),
        ("docteur-verify", [missing]),
    ]:
        one_line_error(run_cli(prog, *args), prog, f"{missing}: No such file or directory")
    for args in (
        ["cat", corrupt, "a"],
        ["info", corrupt],
        ["stat", corrupt, "a"],
        ["extract", corrupt, tmp_path / "x"],
    ):
        one_line_error(run_cli("docteur", *args), f"docteur-{args[0]}", f"{corrupt}: ")
    one_line_error(
        run_cli("docteur-cat", image, "docs/missing.md"), "docteur-cat", "/docs/missing.md: No such file"
    )
    one_line_error(run_cli("docteur-cat", image, "docs"), "docteur-cat", "/docs: Is a directory")
    one_line_error(run_cli("docteur-ls", image, "README.md"), "docteur-ls", "/README.md: Not a directory")
    one_line_error(run_cli("docteur", "stat", image, "nope"), "docteur-stat", "/nope: No such file")
    one_line_error(
        run_cli("docteur-make", src, tmp_path / "o.img", "--bs", "1000"), "docteur-make", "power of two"
    )
    one_line_error(
        run_cli("docteur-make", "-d", "yesterday", src, tmp_path / "o.img"), "docteur-make", "invalid date"
    )
    one_line_error(
        run_cli("docteur-make", "-d", "2020-10-10T08:00:00", src, tmp_path / "o.img"),
        "docteur-make",
        "time zone",
    )
    one_line_error(
        run_cli("docteur-make", src, tmp_path / "missing-dir/o.img"), "docteur-make", "No such file"
    )
    one_line_error(run_cli("docteur-make", src, src / "README.md/o.img"), "docteur-make", "Not a directory")
    one_line_error(
        run_cli("docteur-make", tmp_path / "nowhere", tmp_path / "o.img"), "docteur-make", "nowhere"
    )
    one_line_error(run_cli("docteur-ls", "--color=sometimes", image), "docteur-ls", "--color must be one of")
    assert not (tmp_path / "o.img").exists()
    # Usage errors: one line too, status 2.
    one_line_error(
        run_cli("docteur-make", src, tmp_path / "o.img", "--bs", "abc"), "docteur-make", "'--bs'", code=2
    )
    one_line_error(run_cli("docteur-cat"), "docteur-cat", "Missing argument 'IMAGE'", code=2)
    one_line_error(run_cli("docteur", "ls", "--bogus", image), "docteur ls", "--bogus", code=2)
    one_line_error(run_cli("docteur", "frobnicate"), "docteur", "frobnicate", code=2)


class Forge:
    """Trees however wrong, written by Git's plumbing into a scratch repository and packed by git into an
    image by hand (docteur-make refuses them): the reader must stand between them and the disk."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "forged"
        self.repo.mkdir()
        git(self.repo, "init", "-q", "-b", "main")

    def blob(self, data: bytes) -> bytes:
        return git(self.repo, "hash-object", "-w", "--stdin", input=data).strip()

    def tree(self, entries: list[tuple[bytes, bytes, bytes]]) -> bytes:
        """A tree holding exactly `entries` (mode, name, hex id), in the order given."""
        raw = b"".join(
            mode + b" " + name + b"\0" + bytes.fromhex(oid.decode()) for mode, name, oid in entries
        )
        return git(self.repo, "hash-object", "-t", "tree", "--literally", "-w", "--stdin", input=raw).strip()

    def image(self, entries: list[tuple[bytes, bytes, bytes]]) -> Path:
        commit = git(self.repo, "commit-tree", self.tree(entries).decode(), "-m", "forged").strip()
        git(self.repo, "update-ref", "refs/heads/main", commit.decode())
        listing = git(self.repo, "rev-list", "--objects", "--no-walk", commit.decode().strip())
        sha = git(self.repo, "pack-objects", "-q", str(self.repo.parent / "forged"), input=listing).strip()
        pack = self.repo.parent / f"forged-{sha.decode()}.pack"
        out = self.repo.parent / "forged.img"
        write_image(out, bytes.fromhex(commit.decode()), pack, pack.with_suffix(".idx").read_bytes(), 512)
        return out


@pytest.fixture
def forge(tmp_path: Path) -> Forge:
    return Forge(tmp_path)


def test_extract_writes_the_tree(image: Path, tmp_path: Path) -> None:
    ok("docteur", "extract", image, tmp_path / "out")
    assert read_fs_tree(tmp_path / "out") == {
        **SPEC,
        b"bin": (0o40000, b""),
        b"docs": (0o40000, b""),
        b"docs/deeper": (0o40000, b""),
    }
    ok("docteur", "extract", image, tmp_path / "part", "docs/deeper")
    assert read_fs_tree(tmp_path / "part") == {b"z.txt": (FILE, b"zzz")}


def test_extract_never_overwrites(image: Path, tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "README.md").write_bytes(b"mine")
    one_line_error(
        run_cli("docteur", "extract", image, target), "docteur-extract", "README.md", "File exists"
    )
    assert (target / "README.md").read_bytes() == b"mine"


def test_extract_never_follows_a_symlink_already_in_the_target(image: Path, tmp_path: Path) -> None:
    outside, target = tmp_path / "outside", tmp_path / "out"
    outside.mkdir()
    target.mkdir()
    (target / "docs").symlink_to(outside)  # the image's docs/a.md would land in `outside` through it
    done = run_cli("docteur", "extract", image, target)
    one_line_error(done, "docteur-extract", "docs")
    assert list(outside.iterdir()) == []


def test_extract_keeps_absolute_symlinks_as_links(forge: Forge, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    forged = forge.image([(b"120000", b"escape", forge.blob(str(outside / "planted").encode()))])
    ok("docteur", "extract", forged, tmp_path / "out")
    assert os.readlink(tmp_path / "out/escape") == str(outside / "planted")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("name", [b"..", b"."])
def test_extract_refuses_names_that_climb(forge: Forge, tmp_path: Path, name: bytes) -> None:
    inner = forge.tree([(b"100644", b"x", forge.blob(b"evil\n"))])
    forged = forge.image([(b"40000", name, inner)])
    target = tmp_path / "out/deep"
    one_line_error(run_cli("docteur", "extract", forged, target), "docteur-extract", "invalid entry name")
    assert not (tmp_path / "out/x").exists() and not (tmp_path / "x").exists()
    assert list(target.iterdir()) == []


def test_extract_refuses_a_link_and_a_directory_of_the_same_name(forge: Forge, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    inner = forge.tree([(b"100644", b"x", forge.blob(b"evil\n"))])
    forged = forge.image(
        [(b"120000", b"link", forge.blob(str(outside).encode())), (b"40000", b"link", inner)]
    )
    one_line_error(
        run_cli("docteur", "extract", forged, tmp_path / "out"), "docteur-extract", "duplicate entry"
    )
    assert list(outside.iterdir()) == []
