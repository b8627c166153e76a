"""Numba's on-disk cache of the CPU kernels, kept in step with the modules they compile in.

Numba keys a cached function on its own source file only (modification time
and size). The functions it compiles in from other modules, the gate math of
:mod:`gradlab.kernels.pointwise` and the cell constants of
:mod:`gradlab.kernels.cells`, are not part of that key: after an edit or an
upgrade that changes only those, the kernels would load from the cache as
they were compiled before. :func:`drop_stale` runs before the kernels are
first called: it keeps a digest of those sources beside the cache and removes
the module's cached kernels when the digest changed, so they compile afresh.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: The file, beside numba's cache files, that holds the digest the cached kernels were compiled with.
STAMP_SUFFIX = ".sources.sha256"


def sources_digest(paths) -> str:
    """SHA-256 over the contents of ``paths``, in order."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def drop_stale(cache_dir: Path, module: str, digest: str) -> bool:
    """Remove ``module``'s cached kernels (``<module>.*.nbi`` / ``.nbc``) from ``cache_dir`` unless they were
    compiled with ``digest``; record ``digest``. True when something was removed. A directory that cannot be
    read or written is left as it is (numba then compiles in memory, or recompiles on a bad cache file)."""
    stamp = cache_dir / f"{module}{STAMP_SUFFIX}"
    try:
        if stamp.read_text(encoding="ascii").strip() == digest:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    dropped = False
    try:
        for f in list(cache_dir.glob(f"{module}.*.nbi")) + list(cache_dir.glob(f"{module}.*.nbc")):
            f.unlink(missing_ok=True)
            dropped = True
        cache_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest + "\n", encoding="ascii")
    except OSError:
        pass
    return dropped


def cache_dir_of(py_func) -> Path | None:
    """The directory where numba caches ``py_func``'s compiled code (None where it cannot say)."""
    try:
        from numba.core.caching import FunctionCache

        return Path(FunctionCache(py_func)._cache_path)
    except Exception:  # no cache locator applies, or numba's internals moved
        return None


def keep_in_step(py_func, module: str, sources) -> bool:
    """:func:`drop_stale` for the cache of ``py_func``'s module, against the digest of ``sources``."""
    cache_dir = cache_dir_of(py_func)
    return cache_dir is not None and drop_stale(cache_dir, module, sources_digest(sources))
