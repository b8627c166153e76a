"""The ``gradlab`` command.

::

    gradlab info                                  versions, backends, threads, CUDA
    gradlab study --list                          the studies and their questions
    gradlab study NAME [options]                  run one study, write reports/NAME/
    gradlab study --all [options]                 run every study (the main job)

Options of ``study``: ``--quick`` (the reduced grid, under a minute per
study), ``--out DIR`` (default ``reports``), ``--backend cpu|numpy|cuda``,
``--dtype float64|float32``, ``--scheduler ADDRESS`` (an existing Dask
scheduler, e.g. ``tcp://10.0.0.5:8786``; ``serial`` runs in this process),
``--workers N`` (workers of the local cluster), ``--seed N`` (root seed),
``--fresh`` (ignore the results of an interrupted earlier run),
``--no-progress``. An interrupted study keeps every finished grid point and
resumes from them when run again with the same options.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Sequence

DTYPES = ("float64", "float32")


def _info() -> int:
    import numba
    import numpy as np

    import gradlab

    from .sweep import environment_meta

    meta = environment_meta()
    print(f"gradlab {gradlab.__version__}  (python {platform.python_version()}, {platform.machine()})")
    for name, version in meta.get("versions", {}).items():
        print(f"  {name:12} {version if version is not None else 'not installed'}")
    print(f"backends available: {', '.join(gradlab.available_backends())} (default {gradlab.default_backend()})")
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet: run the smallest one to pick the layer
        x = np.zeros((1, 1, 1))
        gradlab.forward("rnn_tanh", gradlab.init_params("rnn_tanh", 1, 1), x, backend="cpu")
        layer = numba.threading_layer()
    print(f"numba threading layer: {layer}, threads: {numba.get_num_threads()} of {os.cpu_count()} cores")
    gpu = meta.get("gpu") or {}
    devices = ", ".join(f"{d['name']} (compute capability {'.'.join(map(str, d['compute_capability']))})"
                        for d in gpu.get("devices", []))
    if gpu.get("simulator"):
        print("CUDA: the simulator is on (NUMBA_ENABLE_CUDASIM=1); the 'cuda' backend runs on the CPU")
    elif devices:
        print(f"CUDA: {devices}")
    else:
        print("CUDA: no NVIDIA GPU or driver found; asking for backend='cuda' is an error that says why")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradlab", description="Studies of gradient dynamics in recurrent networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, backends, threads and CUDA")
    study = sub.add_parser("study", help="run a study and write its report",
                           description="Run a study and write reports/NAME/README.md with its figures and data.")
    study.add_argument("name", nargs="?", help="the study to run (see --list)")
    study.add_argument("--list", action="store_true", help="list the studies and exit")
    study.add_argument("--all", action="store_true", help="run every study, in order (the main job)")
    study.add_argument("--quick", action="store_true", help="the reduced grid (under a minute per study)")
    study.add_argument("--out", default="reports", help="the reports folder (default: reports)")
    study.add_argument("--backend", default="cpu", help="kernel backend: cpu, numpy or cuda (default: cpu)")
    study.add_argument("--dtype", default="float64", help="float64 (default) or float32")
    study.add_argument("--scheduler", default=None,
                       help="address of an existing Dask scheduler (tcp://HOST:PORT), or 'serial'; "
                            "default: a local cluster started for the run")
    study.add_argument("--workers", type=int, default=None, help="workers of the local cluster (default: one per core)")
    study.add_argument("--seed", type=int, default=0, help="root seed of every grid point's seed (default: 0)")
    study.add_argument("--fresh", action="store_true", help="discard the results of an interrupted earlier run")
    study.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _check_study_args(args: argparse.Namespace) -> None:
    import gradlab

    from .studies import STUDIES

    if args.list:
        return
    if args.all == (args.name is not None):
        raise SystemExit("gradlab study: give one study NAME or --all (see gradlab study --list)")
    if args.name is not None and args.name not in STUDIES:
        raise SystemExit(f"gradlab study: unknown study {args.name!r}; the studies are: {', '.join(STUDIES)}")
    if args.backend not in gradlab.api.BACKENDS:
        raise SystemExit(f"--backend: unknown backend {args.backend!r}; expected one of {', '.join(gradlab.api.BACKENDS)}")
    if args.backend not in gradlab.available_backends():
        raise SystemExit(f"--backend: {args.backend!r} is not available here "
                         f"(available: {', '.join(gradlab.available_backends())}; see gradlab info)")
    if args.dtype not in DTYPES:
        raise SystemExit(f"--dtype: expected one of {', '.join(DTYPES)}, got {args.dtype!r}")
    if args.workers is not None and args.workers < 1:
        raise SystemExit(f"--workers: expected a positive integer, got {args.workers}")
    if args.workers is not None and args.scheduler is not None:
        raise SystemExit("--workers: sets the size of the local cluster; it cannot be used with --scheduler")


def _study(args: argparse.Namespace) -> int:
    from . import studies
    from .studies.context import StudyContext

    _check_study_args(args)
    if args.list:
        for name in studies.STUDIES:
            mod = studies.load(name)
            print(f"{name:22} {mod.QUESTION}")
        return 0
    from .sweep import connect

    names = list(studies.STUDIES) if args.all else [args.name]
    start = time.perf_counter()
    try:
        with connect(args.scheduler, workers=args.workers) as executor:
            for name in names:
                module = studies.load(name)
                ctx = StudyContext(name, args.out, quick=args.quick, backend=args.backend, dtype=args.dtype,
                                   scheduler=args.scheduler, workers=args.workers, progress=not args.no_progress,
                                   fresh=args.fresh, seed=args.seed, executor=executor)
                t0 = time.perf_counter()
                print(f"[gradlab] study {name}: {module.TITLE}", file=sys.stderr, flush=True)
                module.run(ctx)
                print(f"[gradlab] study {name}: report in {ctx.directory / 'README.md'} "
                      f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("[gradlab] interrupted: finished grid points are kept; run the same command again to resume",
              file=sys.stderr)
        return 130
    if args.all:
        print(f"[gradlab] all studies done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gradlab`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "info":
        return _info()
    return _study(args)


if __name__ == "__main__":
    sys.exit(main())
