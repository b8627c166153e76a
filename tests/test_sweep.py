"""Tests of gradlab.sweep: keys and seeds, the results store, and the same grid
run serially, on a local cluster and on a `dask scheduler` + two `dask worker`
processes; resuming after the sweep's process is killed; a worker that dies;
KilledWorker resubmission; errors and interrupts.

One local cluster serves the whole module; the one test that kills a worker
process runs last, so that no test depends on its nanny restarting it.

The point functions below run in Dask worker processes, which cannot import
this module (tests/ is not on their path). The module is registered with
``cloudpickle.register_pickle_by_value``, and run_sweep serialises ``fn`` with
cloudpickle, so these functions travel to the workers by value.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from gradlab import sweep
from gradlab.sweep import (
    ResultsStore,
    SweepError,
    connect,
    environment_meta,
    grid_points,
    point_key,
    point_seed,
    run_sweep,
)

cloudpickle.register_pickle_by_value(sys.modules[__name__])

REPO = Path(__file__).resolve().parent.parent
DASK = Path(sys.executable).with_name("dask")

GRID = [{"n": n, "scale": s, "tag": f"0{n}"} for n in (2, 3) for s in (0.5, 1.0, 2.0)]
REPLICATES = 2
ROOT_SEED = 7
N_POINTS = len(GRID) * REPLICATES

CALLS_ENV = "GRADLAB_SWEEP_TEST_CALLS"   # directory where toy() leaves one file per call
HANG_ENV = "GRADLAB_SWEEP_TEST_HANG"     # toy() hangs in the call after this many calls
INTERRUPT_ENV = "GRADLAB_SWEEP_TEST_INTERRUPT"


# --------------------------------------------------------------------------
# point functions
# --------------------------------------------------------------------------

def toy(config, seed):
    """A few rows of random numbers and a small matrix product, a function of (config, seed) only."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(config["n"], 4)) * config["scale"]
    gram = x @ x.T
    calls = os.environ.get(CALLS_ENV)
    if calls:
        Path(calls, f"{seed}-{uuid.uuid4().hex}").touch()
        if len(os.listdir(calls)) > int(os.environ.get(HANG_ENV, 1 << 30)):
            time.sleep(3600)  # until the test kills the process
    return [{"step": t, "value": float(x[t].sum()), "gram": np.float64(gram[t].max()), "label": f"s{t}"}
            for t in range(config["n"])]


def rnn_norms(config, seed):
    """Gradient norms of a tiny recurrent layer through gradlab's Numba kernels."""
    import gradlab

    rng = np.random.default_rng(seed)
    p = gradlab.init_params(config["cell"], 3, 5, seed=seed)
    x = rng.normal(size=(config["T"], 4, 3))
    trace = gradlab.forward(config["cell"], p, x, backend="cpu")
    grads = gradlab.backward(config["cell"], p, trace, rng.normal(size=trace.h.shape), backend="cpu")
    norms = grads.dh_norm.mean(axis=1)
    return [{"t": t, "dh_norm": float(norms[t]), "dW_h": float(np.abs(grads.W_h).sum())}
            for t in range(config["T"])]


def threads_used(config, seed):
    import numba
    from threadpoolctl import threadpool_info

    blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    time.sleep(0.2)  # keep both workers busy
    return {"numba_threads": numba.get_num_threads(), "blas_threads": max(blas), "pid": os.getpid()}


def fail_at_two(config, seed):
    if config["a"] == 2:
        raise ValueError("boom at a=2")
    return {"value": float(np.random.default_rng(seed).uniform())}


def interrupt_at_two(config, seed):
    if config["a"] == 2 and os.environ.get(INTERRUPT_ENV):
        raise KeyboardInterrupt
    calls = os.environ.get(CALLS_ENV)
    if calls:
        Path(calls, f"{seed}-{uuid.uuid4().hex}").touch()
    return {"value": float(np.random.default_rng(seed).uniform())}


def called_seeds(directory) -> list[int]:
    return sorted(int(p.name.split("-")[0]) for p in Path(directory).iterdir())


def assert_same_rows(a: pd.DataFrame, b: pd.DataFrame):
    cols = list(a.columns)
    key = [c for c in ("replicate", "seed", "step", "t", "i", "a") if c in cols] + [c for c in cols if c in GRID[0]]
    a = a.sort_values(key, kind="stable").reset_index(drop=True)
    b = b[cols].sort_values(key, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """GRID run serially, in this process: the reference for every other executor."""
    store = ResultsStore(tmp_path_factory.mktemp("serial"))
    return run_sweep(toy, GRID, replicates=REPLICATES, root_seed=ROOT_SEED, store=store,
                     executor=connect("serial"), progress=False)


@pytest.fixture(scope="module")
def local():
    """connect()'s local cluster, with two worker processes (its default on 2 cores) on any machine."""
    with connect(workers=2) as ex:
        yield ex


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    """`dask scheduler` and two `dask worker` processes on localhost."""
    logs = tmp_path_factory.mktemp("dask-logs")
    env = dict(os.environ)
    procs = []

    def start(name, *args):
        log = open(logs / f"{name}.log", "w")
        procs.append(subprocess.Popen([str(DASK), *args], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
        log.close()

    ex = None
    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard")
        deadline = time.monotonic() + 60
        address = None
        while address is None:
            m = re.search(r"Scheduler at:\s+(tcp://\S+)", (logs / "scheduler.log").read_text())
            if m:
                address = m.group(1)
            elif procs[0].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dask scheduler did not start:\n" + (logs / "scheduler.log").read_text())
            else:
                time.sleep(0.1)
        for k in range(2):
            start(f"worker{k}", "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard")
        ex = connect(address, workers=2, timeout=120)
        yield ex
    finally:
        if ex is not None:
            ex.close()
        for group in (procs[1:], procs[:1]):  # the workers, then the scheduler
            for p in group:
                p.terminate()
            for p in group:
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


# --------------------------------------------------------------------------
# keys and seeds
# --------------------------------------------------------------------------

def test_point_key_is_stable_and_filename_safe():
    k = point_key({"a": 1, "b": [1, 2], "c": "x"}, 0)
    assert re.fullmatch(r"[0-9a-f]{40}", k)
    assert k == point_key({"c": "x", "b": (1, 2), "a": np.int64(1)}, 0)
    assert k != point_key({"a": 1, "b": [1, 2], "c": "x"}, 1)
    assert k != point_key({"a": 2, "b": [1, 2], "c": "x"}, 0)
    assert point_key({}, 0) == "816a8c1120c8cbf75aa7f3c81b98ab48da32cde5"
    with pytest.raises(ValueError):
        point_key({"seed": 1}, 0)
    with pytest.raises(ValueError):
        point_key({"replicate": 1}, 0)


def test_point_seed_is_the_documented_seed_sequence():
    config = {"cell": "lstm", "T": 50}
    digest = bytes.fromhex(point_key(config, 3))
    words = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 20, 4))
    expected = int(np.random.SeedSequence(11, spawn_key=words).generate_state(1, np.uint32)[0])
    assert point_seed(11, config, 3) == expected
    assert point_seed(0, {}, 0) == 964027369  # never changes: old results must stay reproducible
    seeds = {point_seed(0, {"x": i}, r) for i in range(50) for r in range(4)}
    assert len(seeds) == 200
    assert point_seed(1, config, 3) != point_seed(11, config, 3)


def test_grid_points_order_and_duplicates():
    points = grid_points(GRID, REPLICATES, ROOT_SEED)
    assert [p.index for p in points] == list(range(N_POINTS))
    assert [(p.config, p.replicate) for p in points[:3]] == [(GRID[0], 0), (GRID[0], 1), (GRID[1], 0)]
    assert all(p.seed == point_seed(ROOT_SEED, p.config, p.replicate) for p in points)
    # the same point has the same seed in any grid
    alone = grid_points([GRID[4]], 2, ROOT_SEED)
    assert [p.seed for p in alone] == [points[8].seed, points[9].seed]
    with pytest.raises(ValueError, match="same as configuration 0"):
        grid_points([{"a": 1}, {"a": 1}])


# --------------------------------------------------------------------------
# store and metadata
# --------------------------------------------------------------------------

def test_store_round_trip(tmp_path):
    store = ResultsStore(tmp_path / "s")
    assert store.done() == set() and store.load().empty
    rows_b = [{"x": 1 / 3, "y": 1e-300, "s": "007", "flag": True},
              {"x": 0.1 + 0.2, "y": -0.0, "s": "a,b", "flag": False}]
    rows_a = [{"x": 2.5, "y": 1.0, "s": "z", "flag": True}]
    store.write_point("bbbb", rows_b, {"index": 0})
    store.write_point("aaaa", rows_a, {"index": 1})
    store.write_point("cccc", [], {"index": 2})
    assert store.done() == {"aaaa", "bbbb", "cccc"}
    assert not [p for p in store.points_dir.iterdir() if p.name.startswith(".")]  # no temporary files left
    df = store.load()
    expected = pd.DataFrame(rows_b + rows_a)
    pd.testing.assert_frame_equal(df, expected, check_exact=True)  # grid order, exact floats, strings kept
    pd.testing.assert_frame_equal(store.load(["aaaa", "missing", "bbbb"]),
                                  pd.DataFrame(rows_a + rows_b), check_exact=True)
    with pytest.raises(ValueError):
        store.write_point("../escape", rows_a)
    store.write_meta({"hello": [1, 2]})
    assert store.read_meta() == {"hello": [1, 2]}
    (tmp_path / "s" / "README.md").write_text("kept")
    store.clear()
    assert store.done() == set() and store.read_meta() is None and (tmp_path / "s" / "README.md").exists()


def test_environment_meta():
    torch_loaded = "torch" in sys.modules
    meta = environment_meta(backend="cpu", dtype=np.float32, extra={"study": "x"})
    assert meta["backend"] == "cpu" and meta["dtype"] == "float32" and meta["study"] == "x"
    for name in ("python", "numpy", "numba", "scipy", "pandas", "dask", "distributed", "gradlab", "torch"):
        assert name in meta["versions"]
    assert ("torch" in sys.modules) == torch_loaded  # the version comes from metadata, torch is not imported
    assert meta["numba"]["threads"] >= 1 and meta["cpu"]["count"] >= 1
    assert any(lib["user_api"] == "blas" for lib in meta["blas"])
    assert meta["gpu"] == {"simulator": True, "devices": []}  # conftest runs numba.cuda on the simulator
    assert meta["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", meta["git_commit"])
    assert meta["date"].endswith("+00:00")
    json.dumps(meta)


def test_serial_sweep_rows_and_meta(reference, tmp_path):
    points = grid_points(GRID, REPLICATES, ROOT_SEED)
    assert len(reference) == sum(c["n"] for c in GRID) * REPLICATES
    assert list(reference.columns) == ["n", "scale", "tag", "replicate", "seed", "step", "value", "gram", "label"]
    assert reference["tag"].tolist()[:2] == ["02", "02"]  # strings that look like numbers stay strings
    firsts = reference.groupby(["n", "scale", "replicate"], sort=False)["seed"].first().tolist()
    assert firsts == [p.seed for p in points]  # grid order, each point its own seed
    store = ResultsStore(tmp_path)
    run_sweep(toy, GRID[:1], replicates=1, root_seed=ROOT_SEED, store=store, executor=connect("serial"),
              progress=False, meta={"backend": "numpy", "dtype": "float64", "study": "toy"})
    meta = store.read_meta()
    assert meta["backend"] == "numpy" and meta["study"] == "toy"
    assert meta["sweep"]["root_seed"] == ROOT_SEED and meta["sweep"]["n_points"] == 1
    assert meta["seeds"][0]["seed"] == points[0].seed
    assert meta["executor"]["kind"] == "serial"
    assert meta["runs"][-1]["status"] == "complete" and meta["runs"][-1]["points_computed"] == 1
    info = store.info(points[0].key)
    assert info["config"] == GRID[0] and info["seed"] == points[0].seed and info["index"] == 0
    # another root seed would silently mix results: refused
    with pytest.raises(ValueError, match="root_seed"):
        run_sweep(toy, GRID[:1], root_seed=ROOT_SEED + 1, store=store, executor=connect("serial"), progress=False)


# --------------------------------------------------------------------------
# serial = local cluster = external cluster
# --------------------------------------------------------------------------

def test_local_cluster_gives_the_serial_rows(reference, local, tmp_path, monkeypatch, capsys):
    # executor=None: run_sweep makes its executor with connect() and closes it afterwards. To start
    # one cluster per test module, connect() hands out the module's local cluster here.
    made = []

    class Borrowed(sweep.Executor):
        def close(self):
            made.append("closed")

    def fake_connect(*args, **kwargs):
        assert not args and not kwargs
        made.append("connected")
        return Borrowed("local", local.client)

    monkeypatch.setattr(sweep, "connect", fake_connect)
    store = ResultsStore(tmp_path)
    df = run_sweep(toy, GRID, replicates=REPLICATES, root_seed=ROOT_SEED, store=store, desc="toy grid")
    assert made == ["connected", "closed"]
    assert_same_rows(reference, df)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)  # returned in grid order
    err = capsys.readouterr().err
    assert "toy grid" in err and f"{N_POINTS}/{N_POINTS}" in err and "0 left" in err
    ex = store.read_meta()["executor"]
    cores = sweep.available_cores()
    assert ex["kind"] == "local" and ex["workers"] == 2 and ex["numba_threads"] == max(1, cores // 2)
    assert os.getpid() not in {store.info(k)["pid"] for k in store.done()}  # ran in the workers


def test_external_cluster_gives_the_serial_rows(reference, external, tmp_path):
    df = run_sweep(toy, GRID, replicates=REPLICATES, root_seed=ROOT_SEED, store=ResultsStore(tmp_path),
                   executor=external, progress=False)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)


def test_numba_kernels_in_workers(local, tmp_path):
    configs = [{"cell": "lstm", "T": T} for T in (3, 5)]
    serial = run_sweep(rnn_norms, configs, store=ResultsStore(tmp_path / "serial"), executor=connect("serial"),
                       progress=False)
    on_cluster = run_sweep(rnn_norms, configs, store=ResultsStore(tmp_path / "local"), executor=local,
                           progress=False)
    assert len(serial) == 8 and np.isfinite(serial["dh_norm"]).all()
    pd.testing.assert_frame_equal(on_cluster, serial, check_exact=True)


def test_workers_do_not_oversubscribe_the_cores(local, tmp_path):
    store = ResultsStore(tmp_path)
    df = run_sweep(threads_used, [{"i": i} for i in range(4)], store=store, executor=local, progress=False)
    info = local.info()
    cores = sweep.available_cores()
    n = info["numba_threads"]
    assert n == max(1, cores // 2)
    assert (df["numba_threads"] == n).all() and (df["blas_threads"] == n).all()
    assert info["task_slots"] * n <= max(cores, info["task_slots"])
    assert store.read_meta()["executor"]["numba_threads"] == n


COMPILE_IN_WORKERS = """
import numba  # like the gradlab command: the main module imports Numba, so spawned workers do too
from gradlab.sweep import connect


def compile_fresh():
    numba.set_num_threads(1)  # starts the worker's thread pool, as every task does
    try:
        return repr(numba.njit(lambda v: v + 1.5)(2.0))  # a function never compiled before
    except Exception as err:
        return repr(err)


if __name__ == "__main__":
    with connect(None, workers=2) as ex:
        print(sorted(ex.client.run(compile_fresh).values()))
"""


def test_workers_can_compile_after_their_threads_started(tmp_path):
    """Numba re-reads its environment at every compilation: a worker whose thread-pool size differs from its
    environment cannot compile anything once its threads run (a cold cache in a fresh clone)."""
    script = tmp_path / "compile_in_workers.py"
    script.write_text(COMPILE_IN_WORKERS, encoding="utf-8")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "['3.5', '3.5']", out.stdout


# --------------------------------------------------------------------------
# resuming, failures
# --------------------------------------------------------------------------

CHILD = """
import sys
sys.path.insert(0, {tests!r})
import test_sweep as t
from gradlab.sweep import connect, run_sweep
run_sweep(t.toy, t.GRID, replicates=t.REPLICATES, root_seed=t.ROOT_SEED, store=sys.argv[1],
          executor=connect("serial"), progress=False)
"""


def test_killed_sweep_resumes_without_recomputing(reference, tmp_path, monkeypatch):
    store = ResultsStore(tmp_path / "store")
    calls1, calls2 = tmp_path / "calls1", tmp_path / "calls2"
    calls1.mkdir()
    calls2.mkdir()
    env = {**os.environ, CALLS_ENV: str(calls1), HANG_ENV: "4"}  # 4 points, then hang in the 5th
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(tests=str(Path(__file__).parent)),
                              str(store.directory)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while len(store.done()) < 4 or len(list(calls1.iterdir())) < 5:
            assert child.poll() is None, child.stdout.read().decode()
            assert time.monotonic() < deadline, "the sweep did not get going"
            time.sleep(0.01)
        child.kill()
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    done_before = store.done()
    assert done_before == {p.key for p in grid_points(GRID, REPLICATES, ROOT_SEED)[:4]}  # killed in the 5th
    mtimes = {k: store.csv_path(k).stat().st_mtime_ns for k in done_before}

    monkeypatch.setenv(CALLS_ENV, str(calls2))
    df = run_sweep(toy, GRID, replicates=REPLICATES, root_seed=ROOT_SEED, store=store,
                   executor=connect("serial"), progress=False)
    missing = [p.seed for p in grid_points(GRID, REPLICATES, ROOT_SEED) if p.key not in done_before]
    assert called_seeds(calls2) == sorted(missing)  # each missing point once, nothing else
    assert {k: store.csv_path(k).stat().st_mtime_ns for k in done_before} == mtimes
    pd.testing.assert_frame_equal(df, reference, check_exact=True)
    # a third run has nothing left to do and starts no cluster
    df3 = run_sweep(toy, GRID, replicates=REPLICATES, root_seed=ROOT_SEED, store=store, progress=False)
    assert called_seeds(calls2) == sorted(missing)
    pd.testing.assert_frame_equal(df3, reference, check_exact=True)


def test_keyboard_interrupt_keeps_finished_points(tmp_path, monkeypatch, capsys):
    configs = [{"a": a} for a in range(5)]
    store = ResultsStore(tmp_path / "store")
    (tmp_path / "calls").mkdir()
    monkeypatch.setenv(INTERRUPT_ENV, "1")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(interrupt_at_two, configs, store=store, executor=connect("serial"), progress=False)
    assert store.done() == {point_key(c, 0) for c in configs[:2]}
    assert store.read_meta()["runs"][-1]["status"] == "interrupted"
    monkeypatch.delenv(INTERRUPT_ENV)
    monkeypatch.setenv(CALLS_ENV, str(tmp_path / "calls"))
    df = run_sweep(interrupt_at_two, configs, store=store, executor=connect("serial"), desc="resume")
    assert called_seeds(tmp_path / "calls") == sorted(point_seed(0, c, 0) for c in configs[2:])
    assert df["a"].tolist() == [0, 1, 2, 3, 4]
    err = capsys.readouterr().err
    assert "2/5" in err and "5/5" in err  # the bar starts at the points already done
    runs = store.read_meta()["runs"]
    assert [r["status"] for r in runs] == ["interrupted", "complete"]
    assert runs[-1]["points_skipped"] == 2 and runs[-1]["points_computed"] == 3


def test_error_names_the_point_and_keeps_finished_points(local, tmp_path):
    configs = [{"a": a} for a in range(4)]
    store = ResultsStore(tmp_path / "serial")
    with pytest.raises(SweepError, match=r'"a":2.*replicate 0') as info:
        run_sweep(fail_at_two, configs, store=store, executor=connect("serial"), progress=False)
    assert isinstance(info.value.__cause__, ValueError) and info.value.config == {"a": 2}
    assert store.done() == {point_key(c, 0) for c in configs[:2]}
    assert store.read_meta()["runs"][-1]["status"] == "failed"

    store = ResultsStore(tmp_path / "local")
    with pytest.raises(SweepError, match=r'"a":2.*replicate 0') as info:
        run_sweep(fail_at_two, configs, store=store, executor=local, progress=False)
    assert isinstance(info.value.__cause__, ValueError) and "boom" in str(info.value.__cause__)
    assert point_key(configs[2], 0) not in store.done()


def killed_worker_at_first(config, seed):
    """Raise KilledWorker, as the scheduler does when the workers running a task keep dying,
    the first ``config["fail"]`` times (marker files count them)."""
    from types import SimpleNamespace

    from distributed import KilledWorker

    tries = len(list(Path(config["dir"]).glob(f"kw-{config['i']}-*")))
    if tries < config["fail"]:
        Path(config["dir"], f"kw-{config['i']}-{tries}").touch()
        raise KilledWorker(task=f"point-{config['i']}", last_worker=SimpleNamespace(address="tcp://gone"),
                           allowed_failures=0)
    return {"value": float(np.random.default_rng(seed).normal())}


def test_killed_worker_point_is_resubmitted(local, tmp_path):
    # KilledWorker is raised by the task itself here: run_sweep's resubmission without killing
    # workers (the cluster would then depend on the nannies restarting them in time)
    (tmp_path / "a").mkdir()
    configs = [{"i": i, "fail": 2 if i == 1 else 0, "dir": str(tmp_path / "a")} for i in range(4)]
    store = ResultsStore(tmp_path / "store")
    df = run_sweep(killed_worker_at_first, configs, store=store, executor=local, progress=False, retries=2)
    assert df["i"].tolist() == [0, 1, 2, 3]
    assert [store.info(point_key(c, 0))["attempts"] for c in configs] == [1, 3, 1, 1]
    serial = run_sweep(killed_worker_at_first, configs, store=ResultsStore(tmp_path / "serial"),
                       executor=connect("serial"), progress=False)
    pd.testing.assert_frame_equal(df, serial, check_exact=True)

    # one retry too few: the sweep fails, naming the point, with KilledWorker as the cause
    (tmp_path / "b").mkdir()
    configs = [{**c, "dir": str(tmp_path / "b")} for c in configs]
    store = ResultsStore(tmp_path / "again")
    with pytest.raises(SweepError, match=r'"i":1.*KilledWorker') as info:
        run_sweep(killed_worker_at_first, configs, store=store, executor=local, progress=False, retries=1)
    assert type(info.value.__cause__).__name__ == "KilledWorker"
    assert point_key(configs[1], 0) not in store.done()


def die_once(config, seed):
    """Kill the worker process running it the first time (a marker file remembers)."""
    marker = Path(config["dir"], f"died-{config['i']}")
    if config["die"] and not marker.exists():
        marker.touch()
        os._exit(1)
    return {"value": float(np.random.default_rng(seed).normal())}


def test_dead_worker_point_is_rerun(local, tmp_path):
    # The one test that kills a worker process, and the last to use the cluster: Dask reruns the
    # point on the other worker (distributed.scheduler.allowed-failures) while the nanny restarts
    # the dead one; nothing here waits for that restart.
    local.wait_for_workers(2, timeout=120)
    configs = [{"i": i, "die": i == 1, "dir": str(tmp_path)} for i in range(4)]
    store = ResultsStore(tmp_path / "store")
    df = run_sweep(die_once, configs, store=store, executor=local, progress=False)
    assert (tmp_path / "died-1").exists()  # a worker did die
    assert df["i"].tolist() == [0, 1, 2, 3]
    serial = run_sweep(die_once, configs, store=ResultsStore(tmp_path / "serial"), executor=connect("serial"),
                       progress=False)
    pd.testing.assert_frame_equal(df, serial, check_exact=True)
