"""DataKit's files as a DataKit script uses them, in the guest, on the kernel's 9P mount of
`docteur-serve --layout datakit` on the host; each answer compared with git's on the host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from histories import branched_repo, diff_lines, rev
from trees import git

from docteur.make import make
from unikernel import guest, host

pytestmark = pytest.mark.usefixtures("guest_build")

# The ids come from the files themselves, as a script against DataKit would find them.
SCRIPT = r"""cd /mnt
MAIN=$(cat branch/main/head)
ID=$(cat branch/feature/head)
OTHER=$(head -n 1 snapshots/$ID/parents)
ls branch; echo @@
echo "$MAIN"; echo @@
cat branch/feature/head.live; echo @@
ls snapshots/$ID/ro; echo @@
cat snapshots/$ID/diff/$MAIN; echo @@
cat branch/main/diff/$ID; echo @@
cat branch/feature/diff/$OTHER; echo @@
cat snapshots/$ID/msg; echo @@
cat snapshots/$OTHER/msg; echo @@
C=$ID; while [ -n "$C" ]; do echo "$C"; C=$(head -n 1 snapshots/$C/parents); done; echo @@
cat branch/feature/watch/sub.node/deep.node/tree.live; echo @@
cat snapshots/$OTHER/ro/sub/deep/c.txt; echo @@
mkdir branch/new && echo made
mkdir branch/main/transactions/t && echo made
echo $MAIN > branch/feature/fast-forward && echo written
cat branch/feature/head
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return branched_repo(tmp_path_factory.mktemp("datakit") / "repo")


@pytest.fixture(scope="module")
def served(repo: Path) -> Iterator[Path]:
    image = repo.parent / "refs.img"
    make(str(repo), image, branch=["main", "feature"], history=True, quiet=True)
    with host.docteur_serve(image, "--layout", "datakit") as sock:
        yield sock


def message(repo: Path, commit: str) -> bytes:
    return git(repo, "cat-file", "commit", commit).partition(b"\n\n")[2]


def test_a_datakit_script_reads_git_s_answers(served: Path, repo: Path) -> None:
    run = guest.run_mounted(served, SCRIPT)
    assert run.rc == 0, run.stderr
    sections = run.stdout.split(b"@@\n")
    main, feature, parent = rev(repo, "main"), rev(repo, "feature"), rev(repo, "feature~1")
    expected = [
        b"feature\nmain\n",
        f"{main}\n".encode(),
        f"{feature}\n".encode(),
        git(repo, "ls-tree", "--name-only", "feature"),
        diff_lines(repo, main, feature),
        diff_lines(repo, feature, main),
        diff_lines(repo, parent, feature),
        message(repo, feature),
        message(repo, parent),
        git(repo, "log", "--first-parent", "--format=%H", "feature"),
        f"D-{rev(repo, 'feature:sub/deep')}\n".encode(),
        git(repo, "show", "feature~1:sub/deep/c.txt"),
        f"{feature}\n".encode(),  # the fast-forward changed nothing
    ]
    assert sections == expected
    assert all(section.strip() for section in sections)
    errors = run.stderr.decode().splitlines()
    assert len(errors) == 3 and all(e.endswith("Read-only file system") for e in errors), errors
