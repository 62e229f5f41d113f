"""What each 9P request means: a session's fids and the filesystem calls behind every message.

Handlers return the reply, or, when they call the filesystem, are generators that yield each Call and
return the reply: the connection decides where the calls run (see server.py).
"""

from __future__ import annotations

import bisect
import errno
import functools
import hashlib
import logging
import os
import stat as st
import threading
from collections.abc import Callable, Generator
from typing import Any

from docteur.ninep import wire
from docteur.ninep.fs import GIT_EXEC, BytesHandle, FsStat, Handle, Node, ReadOnlyFS
from docteur.ninep.limits import MIN_MSIZE
from docteur.ninep.wire import Dialect, Message, MsgType, Qid

log = logging.getLogger("docteur.ninep")

INLINE_BYTES = 256 << 10  # files up to this size open in the event loop, larger ones in workers
RREAD_HEADER = wire.HEADER_SIZE + 4  # Rread and Rreaddir: header + count[4]
V9FS_MAGIC = 0x01021997
GETATTR_BASIC = 0x7FF
DT_DIR, DT_REG, DT_LNK = 4, 8, 10
LOCK_RDLCK, LOCK_UNLCK, LOCK_SUCCESS = 0, 2, 0
# Linux open(2) flags as Tlopen carries them.
O_ACCMODE, O_RDONLY, O_TRUNC = 0o3, 0o0, 0o1000
# 9P2000 open modes.
OREAD, OEXEC, OTRUNC, ORCLOSE = 0, 3, 0x10, 0x40


class Call:
    """A filesystem call a handler yields: ``heavy`` ones (big files, blocking handles, directory
    listings, which have no size known beforehand) go to a worker."""

    __slots__ = ("args", "fn", "heavy")

    def __init__(self, fn: Callable[..., Any], *args: object, heavy: bool = False) -> None:
        self.fn, self.args, self.heavy = fn, args, heavy


# A handler that calls the filesystem is a generator: it yields each Call, gets its result back, and
# returns the reply. The server runs it in the event loop or in a task, as its calls allow.
Work = Generator[Call, Any, Message]


class Fid:
    """What a fid names: the chain of nodes from the root (so '..' can go back), and its open state."""

    __slots__ = ("chain", "dirents", "handle", "opened", "records", "starts", "xattr")

    def __init__(self, chain: tuple[Node, ...], *, xattr: bool = False) -> None:
        self.chain = chain
        self.opened = xattr
        self.xattr = xattr
        self.handle: Handle | None = None
        self.dirents: list[bytes] | None = None  # encoded .L entries, once listed
        self.records: list[bytes] | None = None  # encoded stat records, once listed (.u, 9P2000)
        self.starts: list[int] = []  # byte offset of each record

    @property
    def node(self) -> Node:
        return self.chain[-1]


@functools.lru_cache(maxsize=1 << 14)  # walk and getattr ask again and again for the same few nodes
def qid_of(node: Node, dialect: Dialect) -> Qid:
    """A qid stable across connections and restarts: a hash of where the object is and what it is."""
    key = f"{node.path}\0{node.mode:o}\0{node.oid}".encode("utf-8", "surrogateescape")
    path = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
    if node.is_dir:
        kind = wire.QTDIR
    elif node.is_link and dialect is not Dialect.P9:
        kind = wire.QTSYMLINK
    else:
        kind = wire.QTFILE
    return Qid(kind, 0, path)


def unix_mode(node: Node) -> int:
    if node.is_dir:
        return st.S_IFDIR | 0o755
    if node.is_link:
        return st.S_IFLNK | 0o777
    return st.S_IFREG | (0o755 if node.mode == GIT_EXEC else 0o644)


def _encoded(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def errno_of(exc: BaseException) -> int:
    """The errno to answer for an exception raised while serving a request."""
    if isinstance(exc, OSError):
        if exc.errno in errno.errorcode:
            return exc.errno
        for kind, code in (
            (FileNotFoundError, errno.ENOENT),
            (NotADirectoryError, errno.ENOTDIR),
            (IsADirectoryError, errno.EISDIR),
            (PermissionError, errno.EACCES),
        ):
            if isinstance(exc, kind):
                return code
    return errno.EIO


def error_reply(dialect: Dialect | None, tag: int, code: int) -> Message:
    if dialect is Dialect.L:
        return Message(MsgType.RLERROR, tag, ecode=code)
    ename = os.strerror(code).encode()  # Linux maps these strings back to errno for 9P2000
    if dialect is Dialect.U:
        return Message(MsgType.RERROR, tag, ename=ename, errno=code)
    return Message(MsgType.RERROR, tag, ename=ename)


def failure(dialect: Dialect | None, msg: Message, exc: Exception, peer: str) -> Message:
    """The error reply to MSG; a broken image (EIO) is logged, the client's own mistakes only traced."""
    code = errno_of(exc)
    if code == errno.EIO:
        log.error("%s: %s failed: %s: %s", peer, msg.type.name, type(exc).__name__, exc)
        log.debug("%s: traceback", peer, exc_info=exc)
    else:
        log.debug("%s: %s: %s", peer, msg.type.name, os.strerror(code))
    return error_reply(dialect, msg.tag, code)


def advance(
    work: Work,
    lock: threading.RLock,
    value: object = None,
    error: Exception | None = None,
    *,
    alone: bool = False,
) -> Message | Call:
    """Run a handler on, doing its filesystem calls in this thread while they are small and the filesystem
    is free (a trip to a worker thread costs more than most calls); stop at the first one that is not. A
    server ALONE with its client does every call here, waiting for the lock if it must."""
    while True:
        try:
            call = work.throw(error) if error is not None else work.send(value)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if (call.heavy and not alone) or not lock.acquire(blocking=alone):
            return call
        value, error = None, None
        try:
            value = call.fn(*call.args)
        except Exception as exc:
            error = exc
        finally:
            lock.release()


def negotiate(version: bytes) -> Dialect | None:
    """The dialect to answer to a Tversion string, or None for 'unknown'.

    An unknown suffix falls back to plain 9P2000 (version(5)); a later protocol ('9P2001...') gets
    9P2000 too, the lower dialect we speak.
    """
    for dialect in Dialect:
        if version == dialect.value.encode():
            return dialect
    base = version.split(b".", 1)[0]
    if base.startswith(b"9P") and base[2:].isdigit() and int(base[2:]) >= 2000:
        return Dialect.P9
    return None


class Session:
    """The state of one client session (dialect, msize, fids) and the handlers of its requests."""

    def __init__(
        self,
        fs: ReadOnlyFS,
        *,
        uid: int,
        gid: int,
        max_fids: int,
        msize: int,
        fids_held: Callable[[], int],
        max_total_fids: int,
    ) -> None:
        self.fs = fs
        self.uid = uid
        self.gid = gid
        self.max_fids = max_fids
        self.fids_held = fids_held  # by every session of the server
        self.max_total_fids = max_total_fids
        self.dialect: Dialect | None = None
        self.msize = msize
        self.fids: dict[int, Fid] = {}
        self.handlers: dict[MsgType, Callable[[Message], Message | Work]] = {
            MsgType.TAUTH: self.auth,
            MsgType.TATTACH: self.attach,
            MsgType.TWALK: self.walk,
            MsgType.TOPEN: self.open,
            MsgType.TLOPEN: self.open,
            MsgType.TREAD: self.read,
            MsgType.TREADDIR: self.readdir,
            MsgType.TGETATTR: self.getattr,
            MsgType.TSTAT: self.stat,
            MsgType.TSTATFS: self.statfs,
            MsgType.TREADLINK: self.readlink,
            MsgType.TXATTRWALK: self.xattrwalk,
            MsgType.TCLUNK: self.clunk,
            MsgType.TREMOVE: self.remove,
            MsgType.TFSYNC: self.fsync,
            MsgType.TLOCK: self.lock,
            MsgType.TGETLOCK: self.getlock,
            MsgType.TWSTAT: self.wstat,
        }
        for kind in MUTATIONS:
            self.handlers[kind] = self.refuse

    def version(self, msg: Message, max_msize: int) -> Message:
        """Tversion: a new session in the dialect and msize both sides accept, or "unknown"."""
        dialect = negotiate(msg.text("version"))
        msize = min(msg.num("msize"), max_msize)
        if dialect is None or msize < MIN_MSIZE:
            self.reset(None, max_msize)
            return Message(MsgType.RVERSION, msg.tag, msize=msize, version=b"unknown")
        self.reset(dialect, msize)
        return Message(MsgType.RVERSION, msg.tag, msize=msize, version=dialect.value.encode())

    def reset(self, dialect: Dialect | None, msize: int) -> None:
        """A new session (Tversion): no fids survive."""
        self.dialect, self.msize = dialect, msize
        self.fids.clear()

    def request(self, msg: Message) -> Message | Work:
        if self.dialect is None:
            raise OSError(errno.EPROTO, "version not negotiated")
        handler = self.handlers.get(msg.type)
        if handler is None:
            raise OSError(errno.EOPNOTSUPP, f"{msg.type.name} is not a request")
        return handler(msg)

    def auth(self, msg: Message) -> Message:
        raise OSError(errno.EOPNOTSUPP, "authentication not required")

    def attach(self, msg: Message) -> Work:
        if msg.num("afid") != wire.NOFID:
            raise OSError(errno.EBADF, "no authentication fid exists")
        fid = msg.num("fid")
        self._check_new_fid(fid)
        root = yield Call(self.fs.root)
        self.fids[fid] = Fid((root,))
        return Message(MsgType.RATTACH, msg.tag, qid=self.qid(root))

    # -- fids ---------------------------------------------------------------------------------------

    def fid(self, msg: Message, name: str = "fid") -> Fid:
        try:
            return self.fids[msg.num(name)]
        except KeyError:
            raise OSError(errno.EBADF, "unknown fid") from None

    def _check_new_fid(self, fid: int, replacing: int | None = None) -> None:
        if fid == replacing:
            return
        if fid in self.fids:
            raise OSError(errno.EBADF, "fid already in use")
        if len(self.fids) >= self.max_fids:
            raise OSError(errno.EMFILE, "too many fids")
        if self.fids_held() >= self.max_total_fids:
            raise OSError(errno.EMFILE, "too many fids on this server")

    def qid(self, node: Node) -> Qid:
        assert self.dialect is not None
        return qid_of(node, self.dialect)

    def walk(self, msg: Message) -> Work:
        fid = self.fid(msg)
        newfid, names = msg.num("newfid"), msg.names("wnames")
        self._check_new_fid(newfid, replacing=msg.num("fid"))
        if len(names) > wire.MAXWELEM:
            raise OSError(errno.EINVAL, "too many names in walk")
        chains = (yield Call(self._walk, fid.chain, names)) if names else []
        if len(chains) == len(names):
            self.fids[newfid] = Fid(chains[-1] if chains else fid.chain)
        return Message(MsgType.RWALK, msg.tag, qids=[self.qid(chain[-1]) for chain in chains])

    def _walk(self, chain: tuple[Node, ...], names: list[bytes]) -> list[tuple[Node, ...]]:
        """The chain after each name; stops early (the error raised only for the first name)."""
        chains: list[tuple[Node, ...]] = []
        for raw in names:
            try:
                chain = self._step(chain, raw)
            except OSError:
                if not chains:
                    raise
                break
            chains.append(chain)
        return chains

    def _step(self, chain: tuple[Node, ...], raw: bytes) -> tuple[Node, ...]:
        if not chain[-1].is_dir:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        if raw == b"..":
            return chain[:-1] or chain  # never above the root
        if raw in (b"", b".") or b"/" in raw or b"\0" in raw:
            raise FileNotFoundError(errno.ENOENT, "bad name")
        return (*chain, self.fs.lookup(chain[-1], raw.decode("utf-8", "surrogateescape")))

    def clunk(self, msg: Message) -> Message:
        self.fid(msg)
        del self.fids[msg.num("fid")]
        return Message(MsgType.RCLUNK, msg.tag)

    # -- reading ------------------------------------------------------------------------------------

    def iounit(self) -> int:
        return self.msize - wire.IOHDRSZ

    def open(self, msg: Message) -> Work:
        fid = self.fid(msg)
        if msg.type is MsgType.TLOPEN:
            flags = msg.num("flags")
            writing = flags & O_ACCMODE != O_RDONLY or flags & O_TRUNC
        else:
            mode = msg.num("mode")
            writing = mode & 3 not in (OREAD, OEXEC) or mode & (OTRUNC | ORCLOSE)
        if writing:
            self.fs.refuse("open for writing")
        if fid.opened:
            raise OSError(errno.EBADF, "fid already open")
        node = fid.node
        handle = None if node.is_dir else (yield Call(self.fs.open, node, heavy=node.size > INLINE_BYTES))
        fid.opened, fid.handle = True, handle
        kind = MsgType.RLOPEN if msg.type is MsgType.TLOPEN else MsgType.ROPEN
        return Message(kind, msg.tag, qid=self.qid(node), iounit=self.iounit())

    def _opened(self, msg: Message) -> Fid:
        fid = self.fid(msg)
        if not fid.opened:
            raise OSError(errno.EBADF, "fid not open")
        return fid

    def read(self, msg: Message) -> Message | Work:
        fid = self._opened(msg)
        offset, count = msg.num("offset"), min(msg.num("count"), self.msize - RREAD_HEADER)
        if isinstance(fid.handle, BytesHandle):
            # Contents already in memory: a slice, no filesystem call (the commonest request of all).
            return Message(MsgType.RREAD, msg.tag, data=fid.handle.read(offset, count))
        return self._read(msg.tag, fid, offset, count)

    def _read(self, tag: int, fid: Fid, offset: int, count: int) -> Work:
        if fid.xattr:
            data = b""
        elif fid.handle is not None:
            data = yield Call(fid.handle.read, offset, count, heavy=True)
        elif self.dialect is Dialect.L:
            raise IsADirectoryError(errno.EISDIR, "use Treaddir")
        else:
            data = yield from self._dir_records(fid, offset, count)
        return Message(MsgType.RREAD, tag, data=data)

    def _dir_records(self, fid: Fid, offset: int, count: int) -> Generator[Call, Any, bytes]:
        """Whole stat records from byte ``offset`` of the directory's stream (9P2000, .u)."""
        if fid.records is None:
            fid.records = yield Call(self._stat_records, fid.node, heavy=True)  # any size: a worker
            fid.starts = [0]
            for record in fid.records:
                fid.starts.append(fid.starts[-1] + len(record))
        index = bisect.bisect_left(fid.starts, offset)
        if index == len(fid.starts) or fid.starts[index] != offset:
            raise OSError(errno.EINVAL, "offset inside a directory record")
        return _fill(fid.records, index, count)

    def _stat_records(self, node: Node) -> list[bytes]:
        assert self.dialect is not None
        return [wire.encode_stat(self._stat(child), self.dialect) for child in self.fs.entries(node)]

    def readdir(self, msg: Message) -> Work:
        fid = self._opened(msg)
        if not fid.node.is_dir or fid.xattr:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        if fid.dirents is None:
            fid.dirents = yield Call(self._dirents, fid.chain, heavy=True)  # any size: a worker
        offset, count = msg.num("offset"), min(msg.num("count"), self.msize - RREAD_HEADER)
        return Message(MsgType.RREADDIR, msg.tag, data=_fill(fid.dirents, offset, count))

    def _dirents(self, chain: tuple[Node, ...]) -> list[bytes]:
        """'.', '..' and the children; an entry's offset is where the next read resumes."""
        node = chain[-1]
        parent = chain[-2] if len(chain) > 1 else node
        listing = [(b".", node), (b"..", parent)]
        listing += [(_encoded(child.name), child) for child in self.fs.entries(node)]
        return [
            wire.encode_dirent(wire.Dirent(self.qid(child), i + 1, _dirent_type(child), name))
            for i, (name, child) in enumerate(listing)
        ]

    def readlink(self, msg: Message) -> Work:
        node = self.fid(msg).node
        if not node.is_link:
            raise OSError(errno.EINVAL, "not a symbolic link")
        target = yield Call(self.fs.readlink, node)
        return Message(MsgType.RREADLINK, msg.tag, target=_encoded(target))

    def xattrwalk(self, msg: Message) -> Message:
        fid = self.fid(msg)
        if msg.text("name"):
            raise OSError(errno.ENODATA, "no extended attributes")
        newfid = msg.num("newfid")
        self._check_new_fid(newfid)
        self.fids[newfid] = Fid(fid.chain, xattr=True)  # lists no attribute names
        return Message(MsgType.RXATTRWALK, msg.tag, size=0)

    # -- attributes ---------------------------------------------------------------------------------

    def getattr(self, msg: Message) -> Message:
        node = self.fid(msg).node
        size = 0 if node.is_dir else node.size
        t = self.fs.mtime
        return Message(
            MsgType.RGETATTR,
            msg.tag,
            valid=GETATTR_BASIC,
            qid=self.qid(node),
            mode=unix_mode(node),
            uid=self.uid,
            gid=self.gid,
            nlink=1,  # for directories: "not counted", which find and fts understand
            rdev=0,
            size=size,
            blksize=4096,
            blocks=(size + 511) // 512,
            atime_sec=t,
            atime_nsec=0,
            mtime_sec=t,
            mtime_nsec=0,
            ctime_sec=t,
            ctime_nsec=0,
            btime_sec=0,
            btime_nsec=0,
            gen=0,
            data_version=0,
        )

    def stat(self, msg: Message) -> Work:
        node = self.fid(msg).node
        return Message(MsgType.RSTAT, msg.tag, stat=(yield Call(self._stat, node)))

    def _stat(self, node: Node) -> wire.Stat:
        """The 9P2000 (.u) stat record of a node; symlinks exist only in .u."""
        unix = self.dialect is Dialect.U
        perm = unix_mode(node) & 0o777
        if node.is_dir:
            mode, length = wire.DMDIR | perm, 0
        elif node.is_link and unix:
            mode, length = wire.DMSYMLINK | perm, node.size
        else:
            mode, length = (0o644 if node.is_link else perm), node.size
        uid, gid = str(self.uid).encode(), str(self.gid).encode()
        t = self.fs.mtime
        name = _encoded(node.name) if node.path else b"/"
        fields = (0, 0, self.qid(node), mode, t, t, length, name, uid, gid, uid)
        if not unix:
            return wire.Stat(*fields)
        target = _encoded(self.fs.readlink(node)) if node.is_link else b""
        return wire.Stat(*fields, target, self.uid, self.gid, self.uid)

    def statfs(self, msg: Message) -> Work:
        self.fid(msg)
        info: FsStat = yield Call(self.fs.statfs)
        return Message(
            MsgType.RSTATFS,
            msg.tag,
            type=V9FS_MAGIC,
            bsize=info.bsize,
            blocks=info.blocks,
            bfree=0,
            bavail=0,
            files=info.files,
            ffree=0,
            fsid=info.fsid,
            namelen=255,
        )

    # -- what changes nothing, and what would -------------------------------------------------------

    def fsync(self, msg: Message) -> Message:
        self.fid(msg)
        return Message(MsgType.RFSYNC, msg.tag)  # nothing is ever dirty

    def lock(self, msg: Message) -> Message:
        # A shared lock excludes only writers, and there are none: grant it (SQLite reads need it).
        self.fid(msg)
        if msg.num("type") not in (LOCK_RDLCK, LOCK_UNLCK):
            self.fs.refuse("write lock")
        return Message(MsgType.RLOCK, msg.tag, status=LOCK_SUCCESS)

    def getlock(self, msg: Message) -> Message:
        self.fid(msg)
        fields = {k: msg.args[k] for k in ("start", "length", "proc_id", "client_id")}
        return Message(MsgType.RGETLOCK, msg.tag, type=LOCK_UNLCK, **fields)

    def wstat(self, msg: Message) -> Message:
        # A stat of all "don't touch" values is how 9P2000 says fsync: allowed, it changes nothing.
        self.fid(msg)
        if msg.stat() != _blank_stat(self.dialect):
            self.fs.refuse("wstat")
        return Message(MsgType.RWSTAT, msg.tag)

    def remove(self, msg: Message) -> Message:
        # Tremove clunks the fid even when the remove fails.
        self.fids.pop(msg.num("fid"), None)
        self.fs.refuse("remove")

    def refuse(self, msg: Message) -> Message:
        self.fs.refuse(msg.type.name[1:].lower())


MUTATIONS = (
    MsgType.TWRITE,
    MsgType.TCREATE,
    MsgType.TLCREATE,
    MsgType.TSYMLINK,
    MsgType.TMKNOD,
    MsgType.TRENAME,
    MsgType.TSETATTR,
    MsgType.TXATTRCREATE,
    MsgType.TLINK,
    MsgType.TMKDIR,
    MsgType.TRENAMEAT,
    MsgType.TUNLINKAT,
)


def _blank_stat(dialect: Dialect | None) -> wire.Stat:
    n = 0xFFFFFFFF
    fields = (0xFFFF, n, Qid(0xFF, n, 0xFFFFFFFFFFFFFFFF), n, n, n, 0xFFFFFFFFFFFFFFFF, b"", b"", b"", b"")
    return wire.Stat(*fields, b"", n, n, n) if dialect is Dialect.U else wire.Stat(*fields)


def _dirent_type(node: Node) -> int:
    return DT_DIR if node.is_dir else DT_LNK if node.is_link else DT_REG


def _fill(records: list[bytes], start: int, count: int) -> bytes:
    """As many whole records from ``start`` as fit in ``count`` bytes; at least one, or EINVAL."""
    out: list[bytes] = []
    used = 0
    for record in records[start:]:
        if used + len(record) > count:
            break
        out.append(record)
        used += len(record)
    if not out and start < len(records):
        raise OSError(errno.EINVAL, "count too small for one entry")
    return b"".join(out)
