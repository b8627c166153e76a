"""Grids of experiments (configurations × seeds) on Dask distributed (SPEC §8).

A *point* of a grid is one configuration (a dict of JSON-able values) and one
replicate number. :func:`run_sweep` runs ``fn(config, seed)`` on every point
that its results store does not hold yet and writes each point's rows to the
store as soon as the point finishes::

    from gradlab.sweep import ResultsStore, connect, run_sweep

    def fn(config, seed):                      # must be importable by the workers,
        rng = np.random.default_rng(seed)      # or defined in the script run as __main__
        return [{"step": t, "loss": ...} for t in range(config["T"])]

    configs = [{"cell": c, "T": T} for c in ("rnn_tanh", "lstm") for T in (10, 100)]
    with connect() as ex:                      # or connect("tcp://host:8786"), connect("serial")
        df = run_sweep(fn, configs, replicates=5, store=ResultsStore("results/study"), executor=ex)

Seeds
    Every point gets its own seed, :func:`point_seed`: a
    ``numpy.random.SeedSequence(root_seed, spawn_key=...)`` whose spawn key is
    the five 32-bit words of the SHA-1 of the point (canonical JSON of the
    configuration and the replicate number, :func:`point_key`). The seed is a
    function of the point alone, so results do not depend on which worker ran
    it, in what order, or what else is in the grid.

Results store (:class:`ResultsStore`), one directory::

    meta.json               environment and sweep description (versions, threads, hardware, seeds, runs)
    points/<key>.json       the point: index in the grid, config, replicate, seed, where and when it ran
    points/<key>.csv        its tidy rows: config columns, replicate, seed, then fn's metric columns

    Both files are written to a temporary name and renamed (``os.replace``):
    a point is finished exactly when its ``.csv`` exists, and a killed run
    never leaves half a file behind. Rerunning a sweep on the same store skips
    the finished points and computes only the others.

Threads
    The cores are shared between task slots (Dask workers × threads per
    worker) and the threads each task may use: every task slot on a host gets
    ``cores // slots`` Numba threads and as many BLAS threads (at least one).
    The task wrapper sets them in the worker (``numba.set_num_threads``,
    which is per calling thread, and ``threadpoolctl.threadpool_limits``)
    before it calls ``fn``. Worker processes keep Numba's default pool size
    (``NUMBA_NUM_THREADS``): Dask applies a worker's ``env`` only after the
    process has imported Numba, and a pool size that differs from the
    environment makes every later compilation in that worker fail. In
    ``"serial"`` mode nothing is changed:
    the one task runs in this process with its Numba and BLAS defaults.
    gradlab's CPU kernels give bitwise the same results for any number of
    Numba threads, so this does not change the rows.

Failures
    A worker that dies while running a point (a crash, ``os._exit``, the
    out-of-memory killer) is handled first by Dask: the scheduler reruns the
    task elsewhere up to ``distributed.scheduler.allowed-failures`` times (3 by
    default), and the nanny restarts the worker; a finished point whose result
    was lost with its worker before this process fetched it is recomputed by
    Dask too. When Dask gives up on a point (``KilledWorker``),
    :func:`run_sweep` submits it again, up to ``retries`` more times. An ordinary exception raised by ``fn`` stops the
    sweep: the points already written stay, the rest are cancelled, and
    :class:`SweepError` names the configuration and replicate, with the
    original exception (and its traceback) as ``__cause__``. A
    ``KeyboardInterrupt`` cancels the running points and is raised again; the
    finished points are already on disk.

Functions sent to workers
    ``fn`` is serialised with cloudpickle in this process: a function defined
    in the ``__main__`` script (or in a module registered with
    ``cloudpickle.register_pickle_by_value``) travels by value; a function of
    an importable module travels by reference and must be importable in the
    workers. A script that starts a local cluster needs the usual
    ``if __name__ == "__main__":`` guard (the workers are spawned processes).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

__all__ = [
    "Executor",
    "Point",
    "ResultsStore",
    "SweepError",
    "canonical_json",
    "connect",
    "environment_meta",
    "grid_points",
    "point_key",
    "point_seed",
    "run_sweep",
]

#: Columns that every row gets besides the configuration's.
RESERVED_COLUMNS = ("replicate", "seed")

_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class SweepError(RuntimeError):
    """A grid point whose function raised; the original exception is ``__cause__``."""

    def __init__(self, message: str, *, config: dict, replicate: int, seed: int, key: str, index: int):
        super().__init__(message)
        self.config = config
        self.replicate = replicate
        self.seed = seed
        self.key = key
        self.index = index


# --------------------------------------------------------------------------
# Keys and seeds
# --------------------------------------------------------------------------

def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.dtype):
        return str(x)
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, (set, frozenset)):
        return sorted(x)
    raise TypeError(f"{type(x).__name__} is not JSON serialisable: {x!r}")


def canonical_json(obj) -> str:
    """``obj`` as compact JSON with sorted keys (numpy scalars as Python numbers).

    Note that ``1`` and ``1.0`` (and ``True``) are different values here, so
    configurations that differ only in that way are different points.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_json_default)


def _check_config(config) -> None:
    if not isinstance(config, dict):
        raise TypeError(f"a configuration must be a dict, not {type(config).__name__}")
    for k in config:
        if not isinstance(k, str):
            raise TypeError(f"configuration keys must be strings: {k!r}")
        if k in RESERVED_COLUMNS:
            raise ValueError(f"{k!r} is a reserved column and cannot be a configuration key")


def _point_digest(config: dict, replicate: int) -> bytes:
    _check_config(config)
    replicate = int(replicate)
    if replicate < 0:
        raise ValueError(f"replicate must be >= 0, not {replicate}")
    text = canonical_json({"config": config, "replicate": replicate})
    return hashlib.sha1(text.encode("ascii")).digest()


def point_key(config: dict, replicate: int) -> str:
    """The point's name: the hex SHA-1 of the canonical JSON of ``{"config": config, "replicate": replicate}``.

    Independent of the order of the dict's keys; 40 characters ``[0-9a-f]``, safe as a file name.
    """
    return _point_digest(config, replicate).hex()


def point_seed(root_seed: int, config: dict, replicate: int) -> int:
    """The point's seed, an integer in ``[0, 2**32)``.

    ``numpy.random.SeedSequence(root_seed, spawn_key=words).generate_state(1, numpy.uint32)[0]``
    where ``words`` are the five little-endian 32-bit words of the point's
    SHA-1 (:func:`point_key`). It depends only on ``root_seed`` and the point,
    never on the order the points run in or where; 32 bits so that it also
    seeds generators that take no more (``numpy.random.RandomState``).
    """
    root_seed = int(root_seed)
    if root_seed < 0:
        raise ValueError(f"root_seed must be >= 0, not {root_seed}")
    digest = _point_digest(config, replicate)
    words = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, len(digest), 4))
    ss = np.random.SeedSequence(root_seed, spawn_key=words)
    return int(ss.generate_state(1, np.uint32)[0])


@dataclass(frozen=True)
class Point:
    """One point of a grid: its position, key, configuration, replicate and seed."""

    index: int
    key: str
    config: dict
    replicate: int
    seed: int

    def describe(self) -> str:
        return f"config {canonical_json(self.config)}, replicate {self.replicate} (seed {self.seed})"


def grid_points(configs: Iterable[dict], replicates: int = 1, root_seed: int = 0) -> list[Point]:
    """The points of ``configs × range(replicates)``, configuration-major, with their keys and seeds."""
    replicates = int(replicates)
    if replicates < 1:
        raise ValueError(f"replicates must be >= 1, not {replicates}")
    points: list[Point] = []
    seen: dict[str, int] = {}
    for i, config in enumerate(configs):
        for r in range(replicates):
            key = point_key(config, r)
            if key in seen:
                raise ValueError(f"configuration {i} is the same as configuration {seen[key] // replicates}: "
                                 f"{canonical_json(config)}")
            seen[key] = len(points)
            points.append(Point(len(points), key, dict(config), r, point_seed(root_seed, config, r)))
    return points


# --------------------------------------------------------------------------
# Results store
# --------------------------------------------------------------------------

def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, mode, **({"newline": ""} if "b" not in mode else {})) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_json(path: Path, obj) -> None:
    text = json.dumps(obj, indent=2, default=_json_default, allow_nan=True) + "\n"
    _atomic_write(path, lambda f: f.write(text))


# pandas 3 reads floats back exactly by default (and deprecates the option)
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


class ResultsStore:
    """The finished points of a study, one CSV (plus a JSON sidecar) per point; see the module docstring."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.points_dir = self.directory / "points"
        self.points_dir.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.directory)!r})"

    # paths
    def _check_key(self, key: str) -> str:
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ValueError(f"not a valid point key: {key!r}")
        return key

    def csv_path(self, key: str) -> Path:
        return self.points_dir / f"{self._check_key(key)}.csv"

    def info_path(self, key: str) -> Path:
        return self.points_dir / f"{self._check_key(key)}.json"

    @property
    def meta_path(self) -> Path:
        return self.directory / "meta.json"

    # points
    def done(self) -> set[str]:
        """The keys of the finished points."""
        return {p.stem for p in self.points_dir.glob("*.csv") if not p.name.startswith(".")}

    def __contains__(self, key) -> bool:
        return self.csv_path(key).exists()

    def write_point(self, key: str, rows: list[dict], info: dict | None = None) -> None:
        """Store a finished point: ``info`` (config, seed, index, ...) first, then its rows.

        Each file is written under a temporary name and renamed, and the rows
        last, so the point counts as done only once both are complete.
        """
        self._check_key(key)
        rows = list(rows)
        df = pd.DataFrame(rows)
        info = dict(info or {})
        info["key"] = key
        info["n_rows"] = len(rows)
        info["columns"] = list(df.columns)
        # columns of strings are read back as strings ("007" stays "007")
        info["string_columns"] = [c for c in df.columns
                                  if pd.api.types.infer_dtype(df[c], skipna=True) in ("string", "empty")]
        _write_json(self.info_path(key), info)
        if rows:
            _atomic_write(self.csv_path(key), lambda f: df.to_csv(f, index=False))
        else:
            _atomic_write(self.csv_path(key), lambda f: None)

    def info(self, key: str) -> dict | None:
        """The point's sidecar (``points/<key>.json``), or None."""
        try:
            return json.loads(self.info_path(key).read_text())
        except FileNotFoundError:
            return None

    def read_point(self, key: str) -> pd.DataFrame:
        """One finished point's rows."""
        path = self.csv_path(key)
        if path.stat().st_size == 0:
            return pd.DataFrame()
        info = self.info(key) or {}
        dtype = {c: str for c in info.get("string_columns", [])}
        return pd.read_csv(path, dtype=dtype or None, **_EXACT_FLOATS)

    def load(self, keys: Iterable[str] | None = None) -> pd.DataFrame:
        """All finished rows, in grid order: sorted by the points' stored index, then row order.

        With ``keys``, only those points (the unfinished ones are left out),
        in the order given.
        """
        done = self.done()
        if keys is None:
            def order(k):
                idx = (self.info(k) or {}).get("index")
                return (0, idx, k) if isinstance(idx, int) else (1, 0, k)
            keys = sorted(done, key=order)
        else:
            keys = [k for k in keys if k in done]
        frames = [df for df in (self.read_point(k) for k in keys) if len(df.columns)]
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True, sort=False)

    # metadata
    def write_meta(self, meta: dict) -> None:
        """Write ``meta.json`` (atomically)."""
        _write_json(self.meta_path, meta)

    def read_meta(self) -> dict | None:
        try:
            return json.loads(self.meta_path.read_text())
        except FileNotFoundError:
            return None

    def clear(self) -> None:
        """Delete the stored points and ``meta.json`` (the directory's other files stay)."""
        shutil.rmtree(self.points_dir, ignore_errors=True)
        self.points_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.meta_path.unlink()


# --------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------

_VERSIONED = ("numpy", "numba", "scipy", "pandas", "dask", "distributed", "cloudpickle", "threadpoolctl",
              "tqdm", "matplotlib", "numba-cuda", "torch")


def _versions() -> dict:
    from importlib import metadata

    import gradlab

    out = {"python": platform.python_version(), "gradlab": gradlab.__version__}
    for name in _VERSIONED:
        try:  # read from the installed metadata: nothing is imported (torch stays unloaded)
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _numba_meta() -> dict:
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        layer = None
    return {"threading_layer": layer, "threading_layer_requested": numba.config.THREADING_LAYER,
            "threads": numba.get_num_threads(), "max_threads": numba.config.NUMBA_NUM_THREADS}


def _blas_meta() -> list[dict]:
    try:
        with contextlib.suppress(ImportError):
            import scipy.linalg.cython_blas  # noqa: F401  (the BLAS gradlab's kernels call)
        from threadpoolctl import threadpool_info

        keys = ("user_api", "internal_api", "version", "num_threads", "threading_layer", "architecture", "filepath")
        return [{k: lib.get(k) for k in keys} for lib in threadpool_info()]
    except Exception:  # pragma: no cover - threadpoolctl missing or failing
        return []


def _gpu_meta() -> dict:
    """The CUDA GPUs numba.cuda sees; never initialises CUDA under the simulator, never raises."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return {"simulator": True, "devices": []}
    try:
        from numba.core import config

        if getattr(config, "ENABLE_CUDASIM", False):
            return {"simulator": True, "devices": []}
    except Exception:
        pass
    try:
        from numba import cuda

        if not cuda.is_available():
            return {"simulator": False, "devices": []}
        devices = []
        for d in cuda.list_devices():
            name = d.name.decode() if isinstance(d.name, bytes) else str(d.name)
            devices.append({"name": name, "compute_capability": list(d.compute_capability)})
        return {"simulator": False, "devices": devices}
    except Exception as e:  # no driver, no numba-cuda, ...
        return {"simulator": False, "devices": [], "error": f"{type(e).__name__}: {e}"[:300]}


def _git_meta() -> dict:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip() or None
    except Exception:
        return {"commit": None, "dirty": None}
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10, check=True).stdout
        dirty = bool(status.strip())
    except Exception:
        dirty = None
    return {"commit": commit, "dirty": dirty}


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def environment_meta(*, backend=None, dtype=None, extra=None) -> dict:
    """What a report needs to say where its numbers come from.

    Versions (Python and the scientific stack, torch only from its installed
    metadata, never imported), Numba's threading layer and threads, the BLAS
    libraries and their threads (threadpoolctl), CPU model and count, CUDA GPUs
    (none under the simulator, none without a driver), the git commit (None
    outside a checkout) and the UTC date. ``backend`` and ``dtype`` are
    recorded as given; ``extra`` is merged in at the top level.
    """
    git = _git_meta()
    meta = {
        "date": _utc_now(),
        "versions": _versions(),
        "backend": backend,
        "dtype": None if dtype is None else str(np.dtype(dtype)),
        "numba": _numba_meta(),
        "blas": _blas_meta(),
        "cpu": {"model": _cpu_model(), "count": os.cpu_count(), "available": available_cores(),
                "machine": platform.machine()},
        "platform": platform.platform(),
        "gpu": _gpu_meta(),
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
    }
    if extra:
        meta.update(extra)
    return meta


# --------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------

def _worker_resources() -> dict:
    """Run on each worker by :meth:`Executor.thread_plan`."""
    import numba

    return {"hostname": socket.gethostname(), "cores": available_cores(),
            "numba_max_threads": numba.config.NUMBA_NUM_THREADS}


class Executor:
    """Where the points run: ``"serial"`` (this process), ``"local"`` (an owned LocalCluster) or ``"remote"``.

    Made by :func:`connect`; a context manager that closes what it owns.
    """

    def __init__(self, kind: str, client=None, cluster=None, *, owns_client: bool = False):
        self.kind = kind
        self.client = client
        self.cluster = cluster
        self._owns_client = owns_client
        self._plan: dict | None = None

    def __repr__(self) -> str:
        where = "" if self.client is None else f" {self.address}"
        return f"<Executor {self.kind}{where}>"

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def address(self) -> str | None:
        return None if self.client is None else self.client.scheduler.address

    def close(self) -> None:
        """Close the client and the cluster if this executor started them."""
        if self.client is not None and self._owns_client:
            with contextlib.suppress(Exception):
                self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=60)
        self.cluster = None
        if self._owns_client:
            self.client = None

    def wait_for_workers(self, n: int, timeout: float | None = 60) -> None:
        """Block until the cluster has ``n`` workers (nothing to wait for in serial mode)."""
        if self.client is not None:
            self.client.wait_for_workers(n, timeout=timeout)
            self._plan = None

    def thread_plan(self, refresh: bool = True) -> dict:
        """How many Numba/BLAS threads each task may use, per host: ``cores // task slots``.

        ``{"by_host": {hostname: n}, "default": n, "hosts": {hostname: {"cores", "workers", "slots"}}}``;
        ``default`` (the smallest, or 1 when no worker is known) is used on
        hosts that join later. Serial mode: ``None`` (threads left alone).
        """
        if self.client is None:
            return None
        if self._plan is not None and not refresh:
            return self._plan
        workers = self.client.scheduler_info(n_workers=-1)["workers"] if _accepts_n_workers() \
            else self.client.scheduler_info()["workers"]
        try:
            resources = self.client.run(_worker_resources) if workers else {}
        except Exception:
            resources = {}
        hosts: dict[str, dict] = {}
        for addr, w in workers.items():
            r = resources.get(addr)
            name = r["hostname"] if r else w.get("host", addr)
            h = hosts.setdefault(name, {"cores": None, "workers": 0, "slots": 0, "numba_max_threads": None})
            h["workers"] += 1
            h["slots"] += int(w.get("nthreads", 1))
            if r:
                h["cores"] = r["cores"]
                h["numba_max_threads"] = r["numba_max_threads"]
        by_host = {}
        for name, h in hosts.items():
            n = max(1, (h["cores"] or 1) // max(1, h["slots"]))
            if h["numba_max_threads"]:
                n = min(n, h["numba_max_threads"])
            by_host[name] = n
        self._plan = {"by_host": by_host, "default": min(by_host.values(), default=1), "hosts": hosts}
        return self._plan

    def info(self) -> dict:
        """What meta.json records about the executor: workers, slots, cores and threads per task."""
        if self.client is None:
            blas = _blas_meta()
            return {"kind": self.kind, "scheduler": None, "workers": 1, "threads_per_worker": 1,
                    "cores": available_cores(), "numba_threads": _numba_meta()["threads"],
                    "blas_threads": max((b["num_threads"] or 1 for b in blas), default=None),
                    "threads_limited": False}
        plan = self.thread_plan(refresh=self._plan is None)
        hosts = plan["hosts"]
        return {"kind": self.kind, "scheduler": self.address,
                "workers": sum(h["workers"] for h in hosts.values()),
                "task_slots": sum(h["slots"] for h in hosts.values()),
                "hosts": {name: {**h, "numba_threads": plan["by_host"][name],
                                 "blas_threads": plan["by_host"][name]} for name, h in hosts.items()},
                "numba_threads": plan["default"], "blas_threads": plan["default"],
                "threads_limited": True}


def _accepts_n_workers() -> bool:
    import inspect

    from distributed import Client

    return "n_workers" in inspect.signature(Client.scheduler_info).parameters


def connect(scheduler: str | None = None, *, workers: int | None = None,
            threads_per_worker: int | None = None, timeout: float = 60) -> Executor:
    """An :class:`Executor` to pass to :func:`run_sweep`.

    ``scheduler``
        ``None``: start a ``distributed.LocalCluster`` owned by the executor
        (worker processes; ``workers`` defaults to the available cores divided
        by ``threads_per_worker``, which defaults to 1; no dashboard, quiet
        logs). Each task runs on ``cores // (workers × threads_per_worker)``
        Numba and BLAS threads (set by the task wrapper).
        ``"serial"``: no Dask; points run one after the other in this process
        (debugging, and the reference the clusters are compared to).
        An address (``"tcp://host:8786"``) or a ``distributed.Client``: that
        cluster, started with ``dask scheduler`` / ``dask worker``; with
        ``workers``, wait (up to ``timeout`` seconds) until that many have joined.
    """
    if scheduler == "serial":
        return Executor("serial")
    import distributed

    if isinstance(scheduler, distributed.Client):
        ex = Executor("remote", scheduler, owns_client=False)
        if workers:
            ex.wait_for_workers(workers, timeout)
        return ex
    if scheduler is None:
        cores = available_cores()
        tpw = max(1, int(threads_per_worker or 1))
        nw = max(1, int(workers or max(1, cores // tpw)))
        import dask

        # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc map and unmap
        # every large NumPy array afresh: the training loops of the studies then cost about 2.4x the CPU
        # time (mostly system time). Workers keep glibc's default instead.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = distributed.LocalCluster(
                n_workers=nw, threads_per_worker=tpw, processes=True, dashboard_address=None,
                # no dashboard; the scheduler's HTTP endpoints on a free local port, not 8787
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.ERROR,
            )
        try:
            client = distributed.Client(cluster, set_as_default=False)
            client.wait_for_workers(nw, timeout=timeout)
        except BaseException:
            cluster.close()
            raise
        return Executor("local", client, cluster, owns_client=True)
    if not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be None, 'serial', an address or a distributed.Client, not {scheduler!r}")
    client = distributed.Client(scheduler, set_as_default=False, timeout=timeout)
    ex = Executor("remote", client, owns_client=True)
    if workers:
        try:
            ex.wait_for_workers(workers, timeout)
        except BaseException:
            ex.close()
            raise
    return ex


# --------------------------------------------------------------------------
# Running a point
# --------------------------------------------------------------------------

def _plain(v):
    """A metric or config value as a plain Python scalar (numpy scalars and 0-d/1-element arrays unwrapped)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        if v.size == 1:
            return v.reshape(()).item()
        raise TypeError(f"metric values must be scalars, not an array of shape {v.shape}")
    return v


def _config_columns(config: dict) -> dict:
    out = {}
    for k, v in config.items():
        v = _plain(v) if isinstance(v, (np.generic, np.ndarray)) and np.ndim(v) == 0 else v
        if v is None or isinstance(v, (bool, int, float, str)):
            out[k] = v
        else:  # lists, dicts, ...: one column holding their canonical JSON
            out[k] = canonical_json(v)
    return out


def make_rows(config: dict, replicate: int, seed: int, out) -> list[dict]:
    """``fn``'s result as tidy rows: config columns, ``replicate``, ``seed``, then the metrics.

    ``out`` may be a dict (one row), a list of dicts, a pandas DataFrame or None (no rows).
    """
    if out is None:
        metrics = []
    elif isinstance(out, dict):
        metrics = [out]
    elif isinstance(out, pd.DataFrame):
        metrics = out.to_dict("records")
    elif isinstance(out, (list, tuple)):
        metrics = list(out)
    else:
        raise TypeError(f"fn must return a dict, a list of dicts or a DataFrame, not {type(out).__name__}")
    prefix = {**_config_columns(config), "replicate": int(replicate), "seed": int(seed)}
    rows = []
    for m in metrics:
        if not isinstance(m, dict):
            raise TypeError(f"each row must be a dict, not {type(m).__name__}")
        clash = [k for k in m if k in prefix]
        if clash:
            raise ValueError(f"metric columns {clash} clash with the configuration's columns or replicate/seed")
        rows.append({**prefix, **{str(k): _plain(v) for k, v in m.items()}})
    return rows


_FN_CACHE: dict[bytes, Callable] = {}


def _load_fn(fn):
    if callable(fn):
        return fn
    digest = hashlib.sha1(fn).digest()
    f = _FN_CACHE.get(digest)
    if f is None:
        import cloudpickle

        f = cloudpickle.loads(fn)
        if len(_FN_CACHE) > 16:
            _FN_CACHE.clear()
        _FN_CACHE[digest] = f
    return f


def _limit_threads(plan: dict | None) -> int | None:
    """In a worker: give this task ``plan``'s share of the host's cores (Numba and BLAS threads)."""
    if plan is None:
        return None
    import numba

    n = plan["by_host"].get(socket.gethostname(), plan["default"])
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)  # per calling thread: this task's thread
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)  # process-wide; the worker process is ours
    return n


def run_point(fn, config: dict, replicate: int, seed: int, plan: dict | None = None):
    """Run one point (in a worker, or in this process): returns ``(rows, info)``."""
    threads = _limit_threads(plan)
    f = _load_fn(fn)
    started = _utc_now()
    t0 = time.perf_counter()
    out = f(config, seed)
    seconds = time.perf_counter() - t0
    rows = make_rows(config, replicate, seed, out)
    info = {"hostname": socket.gethostname(), "pid": os.getpid(), "started": started,
            "seconds": round(seconds, 6), "threads": threads}
    return rows, info


# --------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------

def _fn_name(fn) -> str:
    mod = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return f"{mod}.{name}" if mod else str(name)


def _progress(total: int, initial: int, desc: str | None, enabled: bool):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, desc=desc or "sweep", unit="point", file=sys.stderr,
               disable=not enabled, smoothing=0, dynamic_ncols=True)
    bar.set_postfix_str(f"{total - initial} left", refresh=False)
    return bar


def _check_seeds(store: ResultsStore, points: list[Point], done: set[str]) -> None:
    for p in points:
        if p.key in done:
            stored = (store.info(p.key) or {}).get("seed")
            if stored is not None and int(stored) != p.seed:
                raise ValueError(
                    f"{store} holds {p.describe()} computed with seed {stored}: it was run with another "
                    f"root_seed. Use another directory, or store.clear() to start over.")


def _point_info(p: Point, root_seed: int, run_info: dict) -> dict:
    return {"index": p.index, "config": p.config, "replicate": p.replicate, "seed": p.seed,
            "root_seed": root_seed, "finished": _utc_now(), **run_info}


def _failure(p: Point, exc: BaseException) -> SweepError:
    return SweepError(f"grid point {p.index} failed: {p.describe()}: {type(exc).__name__}: {exc}",
                      config=p.config, replicate=p.replicate, seed=p.seed, key=p.key, index=p.index)


def run_sweep(fn: Callable[[dict, int], Any], configs: list[dict], *, replicates: int = 1, store,
              root_seed: int = 0, executor: Executor | None = None, progress: bool = True,
              desc: str | None = None, retries: int = 2, meta: dict | None = None) -> pd.DataFrame:
    """Run ``fn(config, seed)`` on every point of ``configs × range(replicates)`` not yet in ``store``.

    ``fn`` returns the point's metric rows (a dict, a list of dicts or a
    DataFrame); each row is stored prefixed with the configuration's columns
    (non-scalar values as JSON strings), ``replicate`` and ``seed``
    (:func:`point_seed`). Each point is written to ``store`` (a
    :class:`ResultsStore` or a directory) by this process as soon as it
    finishes; points already there are skipped, so an interrupted sweep
    resumes where it stopped. ``executor`` defaults to a local cluster started
    for this call (none is started when nothing is left to do). ``retries``:
    how many more times a point is submitted after Dask gave up on it because
    workers kept dying (``KilledWorker``). ``meta``: extra entries for
    ``meta.json`` (e.g. backend and dtype). Raises :class:`SweepError` when
    ``fn`` raises. Returns the grid's rows, in grid order.
    """
    if not isinstance(store, ResultsStore):
        store = ResultsStore(store)
    points = grid_points(configs, replicates, root_seed)
    done = store.done()
    _check_seeds(store, points, done)
    todo = [p for p in points if p.key not in done]

    owned = executor is None and bool(todo)
    ex = connect() if owned else (executor or Executor("serial"))
    try:
        if ex.client is not None:
            ex.thread_plan(refresh=True)  # the cluster as it is now; info() and the tasks use this plan
        run = {"started": _utc_now(), "finished": None, "status": "running", "executor": ex.info(),
               "points_skipped": len(points) - len(todo), "points_to_compute": len(todo), "points_computed": 0}
        meta_doc = _sweep_meta(store, fn, points, replicates, root_seed, run, meta)
        store.write_meta(meta_doc)
        bar = _progress(len(points), len(points) - len(todo), desc, progress)
        status = "failed"
        try:
            if ex.client is None:
                _run_serial(fn, todo, store, root_seed, bar, run)
            else:
                _run_distributed(ex, fn, todo, store, root_seed, bar, run, retries)
            status = "complete"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            bar.close()
            run["status"] = status
            run["finished"] = _utc_now()
            with contextlib.suppress(Exception):
                store.write_meta(meta_doc)
    finally:
        if owned:
            ex.close()
    return store.load([p.key for p in points])


def _sweep_meta(store, fn, points, replicates, root_seed, run, meta) -> dict:
    previous = store.read_meta() or {}
    runs = list(previous.get("runs", []))
    runs.append(run)
    extra = dict(meta or {})
    env = environment_meta(backend=extra.pop("backend", None), dtype=extra.pop("dtype", None))
    return {
        **env,
        **extra,
        "executor": run["executor"],
        "sweep": {
            "fn": _fn_name(fn),
            "root_seed": int(root_seed),
            "replicates": int(replicates),
            "n_configs": len(points) // int(replicates),
            "n_points": len(points),
            "seeding": "numpy.random.SeedSequence(root_seed, spawn_key=5 little-endian uint32 words of "
                       "sha1(canonical JSON of {config, replicate})).generate_state(1, uint32)[0]",
        },
        "seeds": [{"index": p.index, "key": p.key, "replicate": p.replicate, "seed": p.seed, "config": p.config}
                  for p in points],
        "runs": runs,
    }


def _finish(store, p, rows, info, root_seed, bar, run) -> None:
    store.write_point(p.key, rows, _point_info(p, root_seed, info))
    run["points_computed"] += 1
    bar.set_postfix_str(f"{bar.total - bar.n - 1} left", refresh=False)
    bar.update(1)


def _run_serial(fn, todo, store, root_seed, bar, run) -> None:
    for p in todo:
        try:
            rows, info = run_point(fn, p.config, p.replicate, p.seed, None)
        except Exception as e:
            raise _failure(p, e) from e
        _finish(store, p, rows, info, root_seed, bar, run)


def _run_distributed(ex: Executor, fn, todo, store, root_seed, bar, run, retries: int) -> None:
    import cloudpickle
    from distributed import as_completed

    try:
        from distributed import KilledWorker
    except ImportError:  # pragma: no cover
        from distributed.scheduler import KilledWorker

    client = ex.client
    payload = cloudpickle.dumps(fn)
    plan = ex.thread_plan(refresh=False)
    tag = uuid.uuid4().hex[:8]

    def submit(p: Point, attempt: int):
        return client.submit(run_point, payload, p.config, p.replicate, p.seed, plan,
                             key=f"gradlab-point-{p.index}-{p.key[:10]}-{tag}-{attempt}", pure=False)

    pending = {}
    attempts: dict[str, int] = {}
    try:
        for p in todo:
            attempts[p.key] = 0
            pending[submit(p, 0)] = p
        queue = as_completed(list(pending), loop=client.loop)
        for fut in queue:
            p = pending.pop(fut)
            try:
                # also for a finished point: its result may have been lost with its worker before
                # it reached us, and Dask's recomputation may end in KilledWorker too
                rows, info = fut.result()
            except KilledWorker as e:
                if attempts[p.key] < retries:
                    attempts[p.key] += 1
                    new = submit(p, attempts[p.key])
                    pending[new] = p
                    queue.add(new)
                    continue
                raise _failure(p, e) from e
            except Exception as e:
                raise _failure(p, e) from e
            fut.release()
            _finish(store, p, rows, {**info, "attempts": attempts[p.key] + 1}, root_seed, bar, run)
    finally:
        if pending:
            with contextlib.suppress(Exception):
                client.cancel(list(pending))
