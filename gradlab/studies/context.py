"""What a study is given to run: its options, its sweeps' results stores, its report and its metadata."""

from __future__ import annotations

import shlex
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .. import sweep as sweeplib
from ..report import Report, write_index


class StudyContext:
    """The options of one ``gradlab study`` run and the machinery every study shares.

    Parameters
    ----------
    name : str
        The study's name; its report goes to ``root/name/``.
    root : str or path-like
        The reports folder (``--out``).
    quick : bool
        Run the reduced grid (for tests: each study in under a minute).
    backend : str
        The kernel backend of every grid point (``"cpu"``, ``"numpy"`` or ``"cuda"``).
    dtype : str
        ``"float64"`` or ``"float32"``.
    scheduler : str, optional
        None for a local Dask cluster started here, ``"serial"`` to run in
        this process, or the address of an existing scheduler.
    workers : int, optional
        Workers of the local cluster (default: one per core).
    progress : bool
        Show a progress bar per sweep.
    fresh : bool
        Discard the results stores of earlier, interrupted runs first.
    seed : int
        The root seed every grid point's seed is derived from.
    executor : gradlab.sweep.Executor, optional
        An executor to share (``gradlab study --all`` runs every study on one cluster).
    """

    def __init__(self, name: str, root: str | Path = "reports", *, quick: bool = False, backend: str = "cpu",
                 dtype: str = "float64", scheduler: str | None = None, workers: int | None = None,
                 progress: bool = True, fresh: bool = False, seed: int = 0, executor: Any = None,
                 argv: list[str] | None = None):
        self.name, self.root = name, Path(root)
        self.directory = self.root / name
        self.quick, self.backend, self.dtype = bool(quick), backend, dtype
        self.scheduler, self.workers = scheduler, workers
        self.progress, self.seed = progress, int(seed)
        self.argv = argv
        self._executor, self._owns_executor = executor, executor is None
        self._start = time.perf_counter()
        self.store_root = self.directory / ".store"
        if fresh and self.store_root.exists():
            shutil.rmtree(self.store_root)

    # ------------------------------------------------------------------ sweeps

    @property
    def executor(self):
        """The Dask (or serial) executor, connected on first use."""
        if self._executor is None:
            self._executor = sweeplib.connect(self.scheduler, workers=self.workers)
            self._executor.__enter__()
        return self._executor

    def sweep(self, label: str, fn: Callable[[dict, int], Any], configs: list[dict], replicates: int = 1,
              *, with_backend: bool = True, executor: Any = None) -> pd.DataFrame:
        """Run ``fn`` over ``configs`` × ``replicates`` (resumable), and return the tidy rows.

        Every config gets the study's ``backend`` and ``dtype`` added (unless
        ``with_backend`` is false: points that use no kernel), so they are
        columns of the results; the rows of finished points are kept in
        ``.store/label/`` until the report is written. ``executor`` overrides
        the study's (e.g. ``gradlab.sweep.connect("serial")`` for timings that
        must not share the cores with other points).
        """
        if with_backend:
            configs = [{**c, "backend": self.backend, "dtype": self.dtype} for c in configs]
        store = sweeplib.ResultsStore(self.store_root / label)
        return sweeplib.run_sweep(fn, configs, replicates=replicates, store=store, root_seed=self.seed,
                                  executor=executor or self.executor, progress=self.progress, desc=f"{self.name}:{label}")

    # ------------------------------------------------------------------ reports

    def report(self, *, title: str, question: str) -> Report:
        """A new report for this study (written by :meth:`finish`)."""
        return Report(self.root, self.name, title=title, question=question)

    def command(self) -> str:
        """The command that reproduces this run."""
        args = ["gradlab", "study", self.name]
        if self.quick:
            args.append("--quick")
        if self.backend != "cpu":
            args += ["--backend", self.backend]
        if self.dtype != "float64":
            args += ["--dtype", self.dtype]
        if self.seed != 0:
            args += ["--seed", str(self.seed)]
        if self.root != Path("reports"):
            args += ["--out", str(self.root)]
        return shlex.join(args)

    def meta(self, **extra: Any) -> dict:
        """The metadata of the run: environment, options, seeds, and ``extra``."""
        meta = sweeplib.environment_meta(backend=self.backend, dtype=self.dtype)
        ex = self._executor
        meta["study"] = {"name": self.name, "quick": self.quick, "root seed": self.seed,
                         "scheduler": self.scheduler or "local Dask cluster"}
        if ex is not None:
            info = ex.info()
            meta["study"].update({"workers": info.get("workers"), "numba threads per task": info.get("numba_threads"),
                                  "BLAS threads per task": info.get("blas_threads")})
        meta.update(extra)
        return meta

    def finish(self, report: Report, **extra_meta: Any) -> Path:
        """Write the report with its command and metadata, index it, and drop the results stores."""
        path = report.write(command=self.command(), meta=self.meta(**extra_meta),
                            wall_time=time.perf_counter() - self._start)
        from . import STUDIES

        write_index(self.root, order=STUDIES)
        if self.store_root.exists():
            shutil.rmtree(self.store_root)
        return path

    def close(self) -> None:
        """Shut the executor down if this context started it."""
        if self._executor is not None and self._owns_executor:
            self._executor.__exit__(None, None, None)
        self._executor = None

    def __enter__(self) -> "StudyContext":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
