"""zstd through the zstandard package's C extension, loaded without `zstandard/__init__.py`.

That file imports platform and typing to choose a backend (~11 ms, more than the rest of the reader's
start-up); the C backend alone loads in well under a millisecond, and is what `import zstandard` would
pick anyway. Where it cannot be loaded that way, the package is imported normally.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType


def _load() -> ModuleType:
    name = "zstandard.backend_c"
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    from importlib.machinery import PathFinder

    package = PathFinder.find_spec("zstandard")
    locations = package.submodule_search_locations if package is not None else None
    spec = PathFinder.find_spec(name, locations) if locations else None
    if spec is None or spec.loader is None:
        import zstandard

        return zstandard
    module = spec.loader.create_module(spec)
    if module is None:
        import zstandard

        return zstandard
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


backend = _load()
ZstdCompressor = backend.ZstdCompressor
ZstdDecompressor = backend.ZstdDecompressor
ZstdCompressionDict = backend.ZstdCompressionDict
ZstdError = backend.ZstdError
frame_content_size = backend.frame_content_size
get_frame_parameters = backend.get_frame_parameters
train_dictionary = backend.train_dictionary
DICT_TYPE_FULLDICT = backend.DICT_TYPE_FULLDICT

# Decompressors are not for concurrent use, and making one costs several times what decompressing a
# small frame does: callers borrow one from this pool (list.pop and list.append are atomic).
_idle: list[ZstdDecompressor] = []


def decompress(frame: bytes | memoryview, max_output_size: int) -> bytes:
    """The content of one zstd frame (no dictionary), at most `max_output_size` bytes."""
    d = _idle.pop() if _idle else ZstdDecompressor()
    try:
        return d.decompress(frame, max_output_size=max_output_size)
    finally:
        _idle.append(d)
