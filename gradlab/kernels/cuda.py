"""The CUDA backend (numba.cuda): forward and full BPTT for every cell on an NVIDIA GPU.

The structure is the CPU backend's (:mod:`gradlab.kernels.cpu`), with the
kernels of :mod:`gradlab.kernels._cuda_kernels`:

* forward: the input projection ``x W_x^T + b`` of all T steps is one tiled
  matrix product, written into the gates buffer; then the time loop, either
  one *register* launch (H ≤ 64, or up to 128 when asked for: one block per
  sequence, compiled for the cell and H, W_h in registers, and in shared
  memory past what they hold; :mod:`._cuda_register`), one *persistent*
  launch (H ≤ 256: one block per tile of batch rows loops over t, W_h in
  shared memory when it fits) or one fused launch per step (a tile of
  ``h_{t-1} W_h^T`` and the gate math on it; two for ``gru``, whose
  candidate needs the whole of r ⊙ h_{t-1});
* backward: the sweep t = T … 1 in the same two forms, forming the total
  ∂L/∂h_t (and ∂L/∂c_t), recording its norm before ``clip_step``, storing the
  gate gradients DA (and DArec, which differs from DA in the n block of
  ``gru_cudnn``); then dW_x, dW_h, dx as whole-sequence products and db, db_hn
  as column sums.

Every reduction runs in a fixed order (no atomics), so results do not change
from run to run. Kernels get their array arguments as views of device memory
(:mod:`._cuda_views`: no numba array is made per slice), and the arrays a call
returns live on pooled memory (:func:`_pooled_array`). Arrays stay on the
device between the kernels; inputs given as NumPy arrays are copied to the
device once per call, and results come back as the kind ``x`` (forward) or
``dh`` (backward) was: NumPy arrays or numba device arrays. A forward pass on NumPy input returns a NumPy :class:`Trace`
that also keeps its device arrays (``trace._cuda``), so the backward pass on
that trace copies nothing back up.

Without a CUDA driver (and without ``NUMBA_ENABLE_CUDASIM=1``) or without
numba-cuda, every call raises a RuntimeError that says why; importing this
module needs neither.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..types import Grads, Params, Trace
from .cells import CellSpec
from ._cuda_launch import SHARED_WITHOUT_OPT_IN, Site, launch
from ._cuda_views import real, view

#: How the time loop runs: "auto" (register up to _cuda_register.AUTO_MAX_H,
#: persistent up to PERSISTENT_MAX_H, one launch per step above), "register"
#: (one block per sequence, W_h in registers, and in shared memory past what
#: they hold, compiled for the cell and H; where it does not fit, persistent),
#: "persistent", "stepwise" or "cooperative" (one launch, W_h spread over the
#: blocks, a grid barrier between steps; where the shape does not suit it,
#: stepwise). Tests and benchmarks set it.
STRATEGY = "auto"
STRATEGIES = ("auto", "register", "persistent", "stepwise", "cooperative")

#: Largest H for which "auto" picks the persistent kernels.
PERSISTENT_MAX_H = 256

#: Static + dynamic shared memory a block may use without opting in (bytes).
SHARED_LIMIT = SHARED_WITHOUT_OPT_IN

#: What the simulator, which has no limit, takes for the opt-in shared memory of a block (an sm_90's).
SIM_SHARED_OPTIN = 227 * 1024

_cuda_module = None


def _unavailable(reason: str) -> RuntimeError:
    return RuntimeError(
        f"backend 'cuda' is not available: {reason}. Use backend='cpu' or 'numpy', or run on the CUDA "
        "simulator by setting NUMBA_ENABLE_CUDASIM=1 before numba.cuda is first imported."
    )


def cuda_module():
    """numba.cuda, once a device (or the simulator) is known to be there; else a RuntimeError saying why."""
    global _cuda_module
    if _cuda_module is not None:
        return _cuda_module
    if not hasattr(np, "row_stack"):
        # numba-cuda <= 0.30 registers an overload of np.row_stack (an alias of
        # np.vstack that NumPy 2.5 removed) when it first compiles, and fails
        # without it: restore the alias (found on an H200 machine, numpy 2.5.2).
        np.row_stack = np.vstack
    try:
        from numba import cuda
    except Exception as err:  # numba-cuda missing or broken
        raise _unavailable(f"numba.cuda cannot be imported ({err}); install numba-cuda: pip install 'gradlab[cuda]'") from err
    try:
        ok = cuda.is_available()
    except Exception as err:
        raise _unavailable(f"the CUDA driver failed to initialise ({err})") from err
    if not ok:
        why = None
        try:
            why = cuda.cuda_error()
        except Exception:  # pragma: no cover - depends on the numba-cuda version
            pass
        raise _unavailable(f"no CUDA driver or GPU found ({why or 'numba.cuda.is_available() is False'})")
    _cuda_module = cuda
    return cuda


def available() -> bool:
    """True when the backend can run (a GPU, or the CUDA simulator)."""
    try:
        cuda_module()
    except RuntimeError:
        return False
    return True


def simulating() -> bool:
    """True when the backend runs on the CUDA simulator."""
    cuda_module()
    from . import _cuda_kernels

    return _cuda_kernels.SIM


def is_device_array(a: Any) -> bool:
    """A numba device array (or the simulator's stand-in for one)."""
    return a is not None and not isinstance(a, np.ndarray) and callable(getattr(a, "copy_to_host", None))


def _ker(dtype):
    cuda_module()
    from . import _cuda_kernels

    return _cuda_kernels, _cuda_kernels.kernels(np.dtype(dtype).type)


@dataclass
class _DeviceTrace:
    """The device arrays of a forward pass, kept with a NumPy :class:`Trace` for its backward pass."""

    h: Any
    c: Any
    x: Any
    h0: Any
    c0: Any
    gates: Any
    hn: Any


_SCRATCH = threading.local()

#: Scratch buffers kept per thread (the least recently used beyond this are dropped).
SCRATCH_ENTRIES = 24


def _scratch(cuda, role: str, shape, dtype):
    """A device array for an intermediate of one call (never returned to the caller), reused across calls.

    Keyed by role, shape and dtype, per host thread (kernels from one thread
    run in order on its stream, so a call never finds its buffer in use).
    Saves the allocation, and the deferred free whose flush synchronises the
    device, of every intermediate of every call. Returns a :class:`~._cuda_views.View` of it
    (its ``owner`` is the array).
    """
    cache = getattr(_SCRATCH, "arrays", None)
    if cache is None:
        cache = _SCRATCH.arrays = OrderedDict()
    key = (role, tuple(int(n) for n in shape), np.dtype(dtype).str, id(cuda))
    a = cache.pop(key, None)
    if a is None:
        a = view(cuda.device_array(shape, dtype))
    cache[key] = a
    while len(cache) > SCRATCH_ENTRIES:
        cache.popitem(last=False)
    return a


def _to_device(cuda, a):
    return None if a is None else (a if is_device_array(a) else cuda.to_device(np.ascontiguousarray(a)))


_DUMMIES: dict = {}


def _zero_state(a, host: bool) -> bool:
    """Whether an initial state is made as zeros on the device: with device inputs, a host state of zeros
    (what validation fills in for a missing h0 or c0) is not copied up (a host-to-device copy waits for the
    device)."""
    return not host and isinstance(a, np.ndarray) and not a.any()


#: the outputs carved out of one allocation start at multiples of this many bytes
_OUTPUT_ALIGN = 256


def _outputs(cuda, dtype, shapes: dict) -> dict:
    """Views (:class:`~._cuda_views.View`) of the given shapes (None: not made) of one device allocation
    (from the pool of :func:`_pooled_array`), in the order given.

    A call's outputs (the trace of a forward pass, the gradients and records
    of a backward pass) are made this way: one device allocation, with its
    deferred free, costs about 0.1 ms of host time (``gpu_breakdown.py``), and
    a backward pass returns up to nine arrays. Each view starts at a multiple
    of 256 bytes; each keeps the allocation alive. What is returned to the
    caller is made from them by :func:`_handed_out`.
    """
    align = max(1, _OUTPUT_ALIGN // np.dtype(dtype).itemsize)
    sizes = {name: math.prod(shape) for name, shape in shapes.items() if shape is not None}
    starts, total = {}, 0
    for name, n in sizes.items():
        starts[name] = total
        total += _cdiv(n, align) * align
    flat = view(_pooled_array(cuda, max(total, 1), dtype))
    return {name: (flat[starts[name]:starts[name] + sizes[name]].reshape(shape) if shape is not None else None)
            for name, shape in shapes.items()}


#: free output buffers kept per (size, context), at most this many of each size,
POOL_KEEP = 4
#: and at most this many bytes of them in all (a larger buffer is freed as numba frees any other): the
#: pool saves the host cost of allocating, which matters for small calls, not large ones
POOL_MAX_BYTES = 256 << 20
_POOL: dict = {}
_POOL_LOCK = threading.Lock()


def empty_pool() -> int:
    """Let numba free every output buffer the pool keeps (outputs still held are not affected); the bytes
    let go."""
    with _POOL_LOCK:
        freed = sum(key[0] * len(free) for key, free in _POOL.items())
        _POOL.clear()
    return freed


def _pooled_array(cuda, n: int, dtype):
    """A 1-D device array of n elements, on memory reused once every array made from an earlier one is gone.

    The outputs of a call are handed to the caller, so they cannot be scratch
    buffers; but a training loop drops the last call's gradients before the
    next call of the same shape. Each output allocation therefore wraps a
    buffer from a pool in numba's own kind of self-freeing pointer, whose
    finalizer (run when the caller's last view of it is collected) puts the
    buffer back instead of freeing it. Kernels run in order on one stream, so
    work still queued on a returned buffer precedes any reuse. A device
    allocation with its deferred free cost 105–148 µs of host time on an H200
    (``gpu_breakdown.py --sections launches``); two a forward + backward pass
    are saved. On the simulator, or where numba's pointer classes are not as
    expected, this is a plain allocation.
    """
    from . import _cuda_kernels

    dtype = np.dtype(dtype)
    nbytes = n * dtype.itemsize
    if _cuda_kernels.SIM:
        return cuda.device_array(n, dtype)
    try:
        context = cuda.current_context()
        key = (nbytes, id(context))
        with _POOL_LOCK:
            free = _POOL.get(key)
            buf = free.pop() if free else None
        if buf is None:
            buf = cuda.device_array(nbytes, np.uint8)
        return _lend(buf, context, key, n, dtype)
    except (ImportError, AttributeError):  # another numba-cuda
        return cuda.device_array(n, dtype)


_LENT: dict = {}
_TOKENS = itertools.count()


def _lend(buf, context, key, n: int, dtype):
    """A 1-D array of n elements on the memory of ``buf``, which goes back to the pool (:func:`_release`) once
    the array and every view of it are gone.

    As numba's own allocations are made: a self-freeing pointer kept alive
    here (``_LENT``) and handed out through owned references, whose count
    runs its finalizer once, when the last of them goes.
    """
    from numba.cuda.cudadrv.devicearray import DeviceNDArray
    from numba.cuda.cudadrv.driver import AutoFreePointer, binding

    with _POOL_LOCK:
        token = next(_TOKENS)
    pointer = AutoFreePointer(context, binding.CUdeviceptr(int(buf.device_ctypes_pointer.value)),
                              n * dtype.itemsize, finalizer=functools.partial(_release, key, buf, token))
    with _POOL_LOCK:
        _LENT[token] = pointer
    return DeviceNDArray((n,), (dtype.itemsize,), dtype, gpu_data=pointer.own())


def _release(key, buf, token) -> None:
    """Put an output buffer back into the pool (or let numba free it, when the pool is full: POOL_KEEP,
    POOL_MAX_BYTES)."""
    with _POOL_LOCK:
        _LENT.pop(token, None)
        kept = sum(k[0] * len(free) for k, free in _POOL.items())
        free = _POOL.setdefault(key, [])
        if len(free) < POOL_KEEP and kept + key[0] <= POOL_MAX_BYTES:
            free.append(buf)


def _dummy(cuda, dtype, ndim):
    """A one-element device array standing in for an argument a cell does not use (made once, never written)."""
    key = (np.dtype(dtype).str, ndim, id(cuda))
    if key not in _DUMMIES:
        _DUMMIES[key] = view(cuda.to_device(np.zeros((1,) * ndim, dtype)))
    return _DUMMIES[key]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


# ----------------------------------------------------------------------------
# Launch helpers
# ----------------------------------------------------------------------------


def _gemm_plan(K_, k, M: int, N: int, Kdim: int, step: bool = False):
    """The product kernel (big or small tiles) and the number of parts K is split into.

    Big tiles do the most multiply-adds per shared-memory read; a product with
    too few of them to fill the GPU takes small tiles, and a long product
    (dW_x, dW_h: K = T·B) is split along K until there are enough blocks.
    ``step``: a per-step product of the stepwise loop (M = B rows), planned
    with its own block target and shortest K part (``STEP_*``), since its
    short K loop is bound by latency rather than by multiply-adds.
    """
    work = M * N * Kdim
    target = K_.STEP_TARGET_BLOCKS if step else K_.GEMM_TARGET_BLOCKS
    min_part = K_.STEP_MIN_K_PART if step else K_.GEMM_MIN_K_PART
    for g in (k.gemm_big, k.gemm_small):
        tiles = _cdiv(M, g.tile.BM) * _cdiv(N, g.tile.BN)
        splits = 1
        if work >= K_.GEMM_MIN_SPLIT_WORK:
            splits = max(1, min(_cdiv(target, tiles), Kdim // min_part))
        if tiles * splits >= target:
            break
    return g, splits


class _Product:
    """One product shape op(A) op(B), (M, K) x (K, N), planned once and launched many times.

    Each launch writes the K parts of the product to ``parts`` (shape
    (splits, M, N); one part when K is not split) without adding them: the
    caller adds them in order (:func:`_gemm`, or a time step's pointwise kernel).
    """

    def __init__(self, cuda, K_, k, M: int, N: int, Kdim: int, dtype, role: str = "parts", step: bool = True):
        """``role`` names its scratch buffer of parts (see :func:`_scratch`); ``step``: see :func:`_gemm_plan`."""
        g, splits = _gemm_plan(K_, k, M, N, Kdim, step)
        tile = g.tile
        self.kchunk = max(1, _cdiv(_cdiv(Kdim, splits), tile.BK)) * tile.BK
        splits = max(1, _cdiv(Kdim, self.kchunk))
        self.parts = _scratch(cuda, role, (splits, M, N), dtype)
        self.first = self.parts[0]
        self.bias = _dummy(cuda, dtype, 1)
        self.launch = Site(g, ((_cdiv(N, tile.BN), _cdiv(M, tile.BM), splits), (tile.TN, tile.TM), 0,
                               tile.shared_words * np.dtype(dtype).itemsize), K_.SIM)

    def __call__(self, A, B, ta=False, tb=False):
        """Launch on operands of the signature of the first call (see :class:`._cuda_launch.Site`)."""
        self.launch(A, B, self.first, self.parts, ta, tb, self.bias, False, False, self.kchunk)
        return self.parts


def _gemm(cuda, K_, k, A, B, C, ta=False, tb=False, bias=None, accumulate=False):
    """C (+)= op(A) op(B) (+ bias) on the device (see :mod:`gradlab.kernels._cuda_gemm`)."""
    M, N = C.shape
    if M == 0 or N == 0:
        return
    Kdim = A.shape[0] if ta else A.shape[1]
    g, splits = _gemm_plan(K_, k, M, N, Kdim)
    has_bias = bias is not None
    if bias is None:
        bias = _dummy(cuda, C.dtype, 1)
    if splits == 1:  # one part: the kernel adds bias and C itself
        tile = g.tile
        _run(K_, g, ((_cdiv(N, tile.BN), _cdiv(M, tile.BM), 1), (tile.TN, tile.TM), 0,
                     tile.shared_words * C.dtype.itemsize),
             A, B, C, _dummy(cuda, C.dtype, 3), ta, tb, bias, has_bias, accumulate, max(1, Kdim))
        return
    P = _Product(cuda, K_, k, M, N, Kdim, C.dtype, "gemm", step=False)(A, B, ta, tb)
    threads = K_.THREADS_1D
    _run(K_, k.gemm_reduce, (_cdiv(M * N, threads), threads), P, C, bias, has_bias, accumulate)


def _colsum(cuda, K_, k, A, out):
    """out[n] = Σ_r A[r, n], in a fixed order."""
    R, N = A.shape
    threads = K_.THREADS_1D
    chunk = max(1, _cdiv(R, 2 if K_.SIM else 64))
    nchunks = _cdiv(R, chunk) if R else 1
    part = _scratch(cuda, "colsum", (nchunks, N), out.dtype)
    if R == 0:
        _run(K_, k.fill, (_cdiv(N, threads), threads), out, 0)
        return
    _run(K_, k.colsum_partial, ((_cdiv(N, threads), nchunks), threads), A, part, chunk)
    _run(K_, k.colsum_final, (_cdiv(N, threads), threads), part, out)


def _run(K_, kernel, config, *args):
    """``kernel[config](*args)``, through the launchers kept across calls (:func:`._cuda_launch.launch`)."""
    launch(kernel, config, args, K_.SIM)


def _fill_zero(K_, k, flat):
    """flat[:] = 0 for a 1-D device array."""
    threads = K_.THREADS_1D
    if flat.shape[0]:
        _run(K_, k.fill, (_cdiv(flat.shape[0], threads), threads), flat, 0)


def _pow2_split(work: int, nt: int, length: int, min_part: int) -> int:
    """The largest power of two S with work*S <= nt and length/S >= min_part (at least 1)."""
    S = 1
    while work * S * 2 <= nt and length // (S * 2) >= min_part:
        S *= 2
    return S


def _plan(K_, spec: CellSpec, B: int, H: int, itemsize: int, backward: bool):
    """Choose the persistent, cooperative or stepwise kernels, and their launch shapes.

    Returns ("register", blocks, threads, hr) (:mod:`._cuda_register`; hr:
    the words of W_h a thread keeps in registers),
    ("persistent", blocks, threads, BM, wshared, shared_bytes, S, S2),
    ("cooperative", ...) (see :func:`_coop_plan`) or ("stepwise",) (one
    product launch and one pointwise launch per step). A persistent block
    owns BM batch rows, one thread per hidden unit of them at least; each dot
    product of the step is split over S threads (S2 for the candidate product
    of ``gru``).
    """
    G = spec.num_gates
    GH = G * H
    gru = spec.name == "gru"
    strategy = STRATEGY
    if strategy not in STRATEGIES:
        raise ValueError(f"gradlab.kernels.cuda.STRATEGY must be one of {STRATEGIES}, got {strategy!r}")
    if strategy in ("auto", "register"):
        from . import _cuda_register

        if strategy == "register" or H <= _cuda_register.AUTO_MAX_H:
            hr = _cuda_register.register_words(itemsize, G, H)
            # (the device is asked for its opt-in shared memory only where W_h does not fit the registers)
            limit = SHARED_LIMIT if hr == H else _shared_optin(K_)
            if _cuda_register.supports(spec.name, H, G, itemsize, limit):
                return ("register", B, _cuda_register.layout(G, H)[1], hr)
        strategy = "persistent" if strategy == "register" or H <= PERSISTENT_MAX_H else "stepwise"
    if strategy == "cooperative":
        missing = _cooperative_missing(K_)
        if missing:
            raise RuntimeError(f"the cooperative time loop cannot run here: {missing}")
        plan = _coop_plan(K_, G, B, H, itemsize, backward)
        if plan is not None:
            return plan
        strategy = "stepwise"
    if strategy == "persistent" and H <= K_.PERSISTENT_MAX_THREADS:
        nc1 = 2 * H if gru else GH
        length = (2 * H if gru else GH) if backward else H
        BM = max(1, min(_cdiv(B, K_.PERSISTENT_BLOCKS), K_.PERSISTENT_MAX_THREADS // H))
        while True:
            work = BM * H if backward else BM * nc1
            nt = -(-work // K_.WARP) * K_.WARP
            nt = max(BM * H, min(max(nt, K_.PERSISTENT_THREADS), K_.PERSISTENT_MAX_THREADS))
            S = _pow2_split(work, nt, length, K_.MIN_SPLIT)
            S2 = _pow2_split(BM * H, nt, H, K_.MIN_SPLIT) if gru else 1
            if backward:
                words = 2 * BM * GH + BM * H * S + BM * H * S2
            else:
                words = 2 * BM * H + BM * nc1 * S + BM * H + BM * H * S2
            if words * itemsize <= SHARED_LIMIT or BM == 1:
                break
            BM = max(1, BM // 2)
        if words * itemsize <= SHARED_LIMIT:
            wshared = (words + GH * H) * itemsize <= SHARED_LIMIT
            nbytes = (words + (GH * H if wshared else 0)) * itemsize
            return ("persistent", _cdiv(B, BM), nt, BM, wshared, nbytes, S, S2)
    return ("stepwise",)


def _register_kernels(dtype, spec: CellSpec, H: int, hr: int):
    """The register loop's kernels (:func:`._cuda_register.register_kernels`) for this dtype, cell and H, with
    hr words of W_h in each thread's registers."""
    from . import _cuda_register

    return _cuda_register.register_kernels(np.dtype(dtype).type, spec.name, H, spec.num_gates, _cuda_register.AHEAD,
                                           None if hr == H else hr)


_SM_COUNT: dict = {}
_SHARED_OPTIN: dict = {}


def _shared_optin(K_) -> int:
    """The most shared memory a block of the current device can have when its kernel opts in (bytes)."""
    if K_.SIM:
        return SIM_SHARED_OPTIN
    dev = cuda_module().get_current_device()
    key = getattr(dev, "id", 0)
    if key not in _SHARED_OPTIN:
        _SHARED_OPTIN[key] = int(dev.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
    return _SHARED_OPTIN[key]


def _cooperative_missing(K_) -> str | None:
    """Why the cooperative loop cannot launch on this machine, or None when it can.

    Its grid barrier is linked from the CUDA device runtime, the static
    library libcudadevrt.a (CUDA toolkit, or the nvidia-cuda-runtime wheel).
    Numba's search lists a directory, so it runs once per process, not per call.
    """
    return None if K_.SIM else _cudadevrt_missing()


@functools.cache
def _cudadevrt_missing() -> str | None:
    from numba.cuda.cudadrv import libs

    path = libs.get_cudalib("cudadevrt", static=True)
    if os.path.isfile(path):
        return None
    return (f"its grid barrier needs the CUDA device runtime libcudadevrt.a, which Numba did not find (looked for "
            f"{path!r}); install the CUDA toolkit or `pip install nvidia-cuda-runtime-cu12`, or set CUDA_HOME")


def _multiprocessors() -> int:
    """Multiprocessors of the current device (one cooperative block each)."""
    cuda = cuda_module()
    dev = cuda.get_current_device()
    key = getattr(dev, "id", 0)
    if key not in _SM_COUNT:
        _SM_COUNT[key] = int(dev.MULTIPROCESSOR_COUNT)
    return _SM_COUNT[key]


def _coop_plan(K_, G: int, B: int, H: int, itemsize: int, backward: bool):
    """The launch shape of the cooperative loop, or None when the shape does not suit it.

    Slices of nu hidden units, about one per multiprocessor (all blocks must
    be resident at once for the grid barrier; one block per multiprocessor
    always is). Each block keeps G*nu*H words of W_h for each of its slices,
    its products and a chunk of kc columns of the (B, K) operand, the whole of
    K when it fits; each thread accumulates at most COOP_ROWS batch rows.
    Returns ("cooperative", blocks, threads, nu, slices, kc, shared bytes).
    """
    nt = K_.COOP_THREADS
    if K_.SIM:  # grid sync on the simulator: one block, which then takes every slice
        target, max_blocks = K_.COOP_SLICES, 1
    else:
        target = max_blocks = _multiprocessors()
    nu = max(1, _cdiv(H, target))
    nslices = _cdiv(H, nu)
    blocks = min(nslices, max_blocks)
    nslot = _cdiv(nslices, blocks)
    C = G * nu
    if C > nt or _cdiv(B, nt // C) > K_.COOP_ROWS:
        return None
    fixed = nslot * C * H + B * (nu if backward else C)
    K = G * H if backward else H  # the longest product: DArec W_h, h W_h^T
    kc_min, kc_max = K_.COOP_KC
    kc = min(K, (SHARED_LIMIT // itemsize - fixed) // B - 1, kc_max or K)
    if kc < min(kc_min, K):
        return None
    return ("cooperative", blocks, nt, nu, nslices, kc, (fixed + B * (kc | 1)) * itemsize)


def time_loop(cell: str, B: int, H: int, dtype=np.float32) -> str:
    """Which time loop the forward pass runs for this shape: "register", "persistent", "stepwise" or "cooperative"."""
    from .cells import get_cell

    K_, _ = _ker(dtype)
    return _plan(K_, get_cell(cell), B, H, np.dtype(dtype).itemsize, backward=False)[0]


# ----------------------------------------------------------------------------
# forward / backward
# ----------------------------------------------------------------------------


def forward(spec: CellSpec, p: Params, x, h0, c0) -> Trace:
    """Forward pass on validated inputs (called by :func:`gradlab.forward`)."""
    cuda = cuda_module()
    K_, k = _ker(x.dtype)
    return _forward(cuda, K_, k, spec, p, x, h0, c0)


def _forward(cuda, K_, k, spec, p, x, h0, c0):
    host = not is_device_array(x)
    dtype = np.dtype(x.dtype)
    T, B, D = x.shape
    H, G = p.hidden_size, spec.num_gates
    GH = G * H
    lstm, cudnn, gru = spec.has_cell_state, spec.has_b_hn, spec.name == "gru"
    cell = K_.CELL_ID[spec.name]

    x_dev = _to_device(cuda, x)
    dx = view(x_dev)
    W_x, W_h, b = (view(_to_device(cuda, a)) for a in (p.W_x, p.W_h, p.b))
    b_hn = view(_to_device(cuda, p.b_hn)) if cudnn else _dummy(cuda, dtype, 1)
    zero_h0, zero_c0 = _zero_state(h0, host), lstm and _zero_state(c0, host)
    nz = zero_h0 + zero_c0  # zero initial states, made on the device with one fill
    out = _outputs(cuda, dtype, dict(zeros=(nz, B, H) if nz else None, gates=(T, B, GH), h=(T, B, H),
                                     c=(T, B, H) if lstm else None, hn=(T, B, H) if cudnn else None))
    zeros = out["zeros"]
    if nz:
        _fill_zero(K_, k, zeros.reshape(nz * B * H))
    # the initial states as the trace hands them out, and as the kernels take them
    h0_dev = real(zeros[0]) if zero_h0 else _to_device(cuda, h0)
    c0_dev = (real(zeros[nz - 1]) if zero_c0 else _to_device(cuda, c0)) if lstm else None
    dh0 = view(h0_dev)
    dc0 = view(c0_dev) if lstm else _dummy(cuda, dtype, 2)
    gates, h = out["gates"], out["h"]
    c = out["c"] if lstm else _dummy(cuda, dtype, 3)
    hn = out["hn"] if cudnn else _dummy(cuda, dtype, 3)

    # the input projections of every step, into the gates buffer
    _gemm(cuda, K_, k, dx.reshape(T * B, D), W_x, gates.reshape(T * B, GH), tb=True, bias=b)

    plan = _plan(K_, spec, B, H, dtype.itemsize, backward=False)
    if plan[0] == "register":
        _, blocks, threads, hr = plan
        rk = _register_kernels(dtype, spec, H, hr)
        _run(K_, rk.fwd, (blocks, threads, 0, rk.fwd_shared), W_h, b_hn, dh0, dc0, h, c, gates, hn)
    elif plan[0] == "persistent":
        _, blocks, threads, BM, wshared, nbytes, S, S2 = plan
        if wshared:  # the kernel loads W_h^T into shared memory itself
            WT = _dummy(cuda, dtype, 2)
        else:  # W_h^T in global memory, so that the product's reads are coalesced
            WT = _scratch(cuda, "WT", (H, GH), dtype)
            t2 = K_.THREADS_2D
            _run(K_, k.transpose, ((_cdiv(H, t2), _cdiv(GH, t2)), (t2, t2)), W_h, WT)
        _run(K_, k.fwd_persistent, (blocks, threads, 0, nbytes), cell, W_h, WT, wshared, b_hn, dh0, dc0, h, c, gates,
             hn, BM, S, S2)
    elif plan[0] == "cooperative":
        _, blocks, threads, nu, nslices, kc, nbytes = plan
        S = _scratch(cuda, "S", (B, H), dtype) if gru else _dummy(cuda, dtype, 2)
        _run(K_, k.fwd_coop, (blocks, threads, 0, nbytes), cell, W_h, b_hn, dh0, dc0, h, c, gates, hn, S, nu, nslices,
             kc)
    else:
        # per step: the product h_{t-1} W_h^T into K parts, then the gate math (twice for gru)
        threads = K_.THREADS_1D
        nc1 = 2 * H if gru else GH
        prod = _Product(cuda, K_, k, B, nc1, H, dtype)
        W1 = W_h[:nc1]
        point = Site(k.fwd_point, (_cdiv(B * H, threads), threads), K_.SIM)
        S = _scratch(cuda, "S", (B, H), dtype) if gru else _dummy(cuda, dtype, 2)
        if gru:  # the candidate's product acts on s = r ⊙ h_{t-1}
            prod_n = _Product(cuda, K_, k, B, H, H, dtype, "parts_n")
            W_n = W_h[2 * H:]
            point_n = Site(k.fwd_point_gru_n, (_cdiv(B * H, threads), threads), K_.SIM)
        h_prev = [dh0] + [h[t] for t in range(T - 1)]
        for t in range(T):
            point(cell, t, prod(h_prev[t], W1, tb=True), b_hn, dh0, dc0, h, c, gates, hn, S)
            if gru:
                point_n(t, prod_n(S, W_n, tb=True), dh0, h, gates)

    made = _handed_out({f: out[f] for f in ("h", "c", "gates", "hn")}, host)
    if not host:
        return Trace(cell=spec.name, x=x_dev, h0=h0_dev, c0=c0_dev, backend="cuda", **made)
    trace = Trace(cell=spec.name, x=x, h0=h0, c0=c0, backend="cuda", **made)
    trace._cuda = _DeviceTrace(h=h, c=out["c"], x=dx, h0=dh0, c0=dc0 if lstm else None, gates=gates, hn=out["hn"])
    return trace


def _maybe(fn, a):
    return None if a is None else fn(a)


def _handed_out(views: dict, host: bool) -> dict:
    """The outputs a call returns, from their views of one allocation (:func:`_outputs`): numba device arrays,
    or for NumPy input, NumPy arrays cut out of one copy of the whole allocation (one transfer and one wait
    for the device, not one an array)."""
    if not host:
        return {name: _maybe(real, v) for name, v in views.items()}
    whole = next(v for v in views.values() if v is not None).owner.copy_to_host()
    return {name: _maybe(lambda v: whole[v.offset // v.dtype.itemsize:][:v.size].reshape(v.shape), v)
            for name, v in views.items()}


def _device_trace(cuda, trace: Trace) -> _DeviceTrace:
    """The trace's arrays on the device: kept from a cuda forward pass, else copied up once."""
    dev = getattr(trace, "_cuda", None)
    if isinstance(dev, _DeviceTrace) and dev.h.shape == trace.h.shape:
        return dev
    return _DeviceTrace(**{f: _maybe(view, _to_device(cuda, getattr(trace, f)))
                           for f in ("h", "c", "x", "h0", "c0", "gates", "hn")})


def backward(spec: CellSpec, p: Params, trace: Trace, dh, dc_last, clip_step) -> Grads:
    """Full BPTT on validated inputs (called by :func:`gradlab.backward`)."""
    cuda = cuda_module()
    K_, k = _ker(dh.dtype)
    return _backward(cuda, K_, k, spec, p, trace, dh, dc_last, clip_step)


def _backward(cuda, K_, k, spec, p, trace, dh, dc_last, clip_step):
    host = not is_device_array(dh)
    dtype = np.dtype(dh.dtype)
    tr = _device_trace(cuda, trace)
    T, B, H = tr.h.shape
    D = tr.x.shape[2]
    G = spec.num_gates
    GH = G * H
    lstm, cudnn, gru = spec.has_cell_state, spec.has_b_hn, spec.name == "gru"
    cell = K_.CELL_ID[spec.name]

    W_x, W_h = view(_to_device(cuda, p.W_x)), view(_to_device(cuda, p.W_h))
    ddh = view(_to_device(cuda, dh))
    c = tr.c if lstm else _dummy(cuda, dtype, 3)
    c0 = tr.c0 if lstm else _dummy(cuda, dtype, 2)
    hn = tr.hn if cudnn else _dummy(cuda, dtype, 3)

    DA = _scratch(cuda, "DA", (T, B, GH), dtype)
    DArec = _scratch(cuda, "DArec", (T, B, GH), dtype) if cudnn else DA
    # what is returned: the gradients and the records, in one allocation
    out = _outputs(cuda, dtype, dict(
        W_x=(GH, D), W_h=(GH, H), b=(GH,), b_hn=(H,) if cudnn else None, x=(T, B, D), h0=(B, H),
        c0=(B, H) if lstm else None, dh_norm=(T, B), dc_norm=(T, B) if lstm else None))
    dh_norm = out["dh_norm"]
    dc_norm = out["dc_norm"] if lstm else _dummy(cuda, dtype, 2)
    if lstm and dc_last is not None:
        dcflow = out["c0"]
        src = _to_device(cuda, dc_last)
        t2 = K_.THREADS_2D
        _run(K_, k.copy2d, ((_cdiv(B, t2), _cdiv(H, t2)), (t2, t2)), src, dcflow)
    elif lstm:
        dcflow = out["c0"]
        _fill_zero(K_, k, dcflow.reshape(B * H))
    else:
        dcflow = _dummy(cuda, dtype, 2)
    g_h0 = out["h0"]
    bound = dtype.type(0.0 if clip_step is None else clip_step)  # (in the data's precision: no float64 in the loop)
    do_clip = clip_step is not None

    plan = _plan(K_, spec, B, H, dtype.itemsize, backward=True)
    threads = K_.THREADS_1D
    # part_h[t, b, :] (part_c) receive squares whose sum is ‖∂L/∂h_t‖² (‖∂L/∂c_t‖²) of sequence b
    part_h = _scratch(cuda, "part_h", (T, B, H), dtype)
    part_c = _scratch(cuda, "part_c", (T, B, H), dtype) if lstm else _dummy(cuda, dtype, 3)
    if plan[0] == "register":
        _, blocks, nt, hr = plan
        rk = _register_kernels(dtype, spec, H, hr)
        _run(K_, rk.bwd, (blocks, nt, 0, rk.bwd_shared), W_h, ddh, tr.gates, tr.h, c, hn, tr.h0, c0, bound, do_clip,
             DA, DArec, part_h, part_c, dcflow, g_h0)
    elif plan[0] == "persistent":
        _, blocks, nt, BM, wshared, nbytes, S, S2 = plan
        _run(K_, k.bwd_persistent, (blocks, nt, 0, nbytes),
             cell, W_h, wshared, ddh, tr.gates, tr.h, c, hn, tr.h0, c0, bound, do_clip,
             DA, DArec, part_h, part_c, dcflow, g_h0, BM, S, S2)
    elif plan[0] == "cooperative":
        _, blocks, nt, nu, nslices, kc, nbytes = plan
        direct = _scratch(cuda, "direct", (B, H), dtype)
        _run(K_, k.bwd_coop, (blocks, nt, 0, nbytes), cell, W_h, ddh, tr.gates, tr.h, c, hn, tr.h0, c0, bound,
             do_clip, DA, DArec, part_h, part_c, direct, dcflow, g_h0, nu, nslices, kc)
    else:
        # per step: the product DArec_{t+1} W_h into K parts, then the gate gradients (twice for gru)
        direct = _scratch(cuda, "direct", (B, H), dtype)
        K1 = 2 * H if gru else GH  # for gru only the r, u blocks act on h_{t-1} through W_h
        prod = _Product(cuda, K_, k, B, H, K1, dtype)
        W1 = W_h[:K1]
        rec = [DArec[t][:, :K1] for t in range(T)]
        grid = _cdiv(B * H, threads)
        point = Site(k.bwd_point, (grid, threads), K_.SIM)
        if gru:  # ds = da_n W_hn
            prod_s = _Product(cuda, K_, k, B, H, H, dtype, "parts_n")
            W_n = W_h[2 * H:]
            point_s = Site(k.bwd_point_gru_s, (grid, threads), K_.SIM)
        for t in range(T - 1, -1, -1):
            P = prod(rec[t + 1], W1) if t < T - 1 else prod.parts  # no flow into the last step
            point(cell, t, P, ddh, tr.gates, tr.h, c, hn, tr.h0, c0, bound, do_clip, DA, DArec, part_h, part_c,
                  direct, dcflow)
            if gru:
                point_s(t, prod_s(DA[t][:, 2 * H:], W_n), tr.gates, tr.h, tr.h0, DA, direct)
        _run(K_, k.add_parts, (grid, threads), prod(rec[0], W1), direct, g_h0)
    _run(K_, k.norm_final, (_cdiv(T * B, threads), threads), part_h, dh_norm, part_c, dc_norm, lstm)

    # whole-sequence products
    DA2 = DA.reshape(T * B, GH)
    x2 = tr.x.reshape(T * B, D)
    dW_x, dW_h = out["W_x"], out["W_h"]
    _gemm(cuda, K_, k, DA2, x2, dW_x, ta=True)
    DR2 = DArec.reshape(T * B, GH)
    h2 = tr.h.reshape(T * B, H)
    rows = 2 * H if gru else GH
    # Σ_t DArec_t^T h_{t-1}: the t = 0 term with h0, then the rest over the flattened (T-1)·B rows
    _gemm(cuda, K_, k, DR2[:B, :rows], tr.h0, dW_h[:rows], ta=True)
    if T > 1:
        _gemm(cuda, K_, k, DR2[B:, :rows], h2[: (T - 1) * B], dW_h[:rows], ta=True, accumulate=True)
    if gru:  # the n block of W_h acts on s = r ⊙ h_{t-1}
        rs = _scratch(cuda, "rs", (T, B, H), dtype)
        _run(K_, k.reset_states, (_cdiv(T * B * H, threads), threads), tr.gates, tr.h, tr.h0, rs)
        _gemm(cuda, K_, k, DA2[:, 2 * H:], rs.reshape(T * B, H), dW_h[2 * H:], ta=True)
    _colsum(cuda, K_, k, DA2, out["b"])
    if cudnn:
        _colsum(cuda, K_, k, DR2[:, 2 * H:], out["b_hn"])
    _gemm(cuda, K_, k, DA2, W_x, out["x"].reshape(T * B, D))

    return Grads(**_handed_out(out, host))


def device_nonfinite_flags(arrays) -> list[bool]:
    """For each device array, whether it holds an inf or a nan.

    Checked on the device, eight arrays a launch, with one copy of the flags
    back to the host per launch (one for every call of the API).
    """
    cuda = cuda_module()
    out = [False] * len(arrays)
    groups: dict = {}
    for i, a in enumerate(arrays):
        dtype = np.dtype(a.dtype)
        if dtype.kind != "f" or not a.is_c_contiguous():
            out[i] = not np.isfinite(a.copy_to_host()).all()
        elif a.size:
            groups.setdefault(dtype.str, []).append(i)
    for key, members in groups.items():
        dtype = np.dtype(key)
        K_, k = _ker(dtype)
        threads = K_.THREADS_1D
        for c0 in range(0, len(members), 8):
            chunk = members[c0:c0 + 8]
            flat = [view(arrays[i]).reshape(arrays[i].size) for i in chunk]
            flat += [_dummy(cuda, dtype, 1)] * (8 - len(flat))
            blocks = max(1, min(_cdiv(max(a.size for a in flat), threads), 1 if K_.SIM else 64))
            flags = _scratch(cuda, "flags", (blocks, 8), np.int32)  # every entry is written
            _run(K_, k.nonfinite_flags, (blocks, threads), *flat, flags)
            bad = flags.owner.copy_to_host(_host_flags(cuda, blocks)).any(axis=0)
            for slot, i in enumerate(chunk):
                out[i] = bool(bad[slot])
    return out


def _host_flags(cuda, blocks: int) -> np.ndarray:
    """A pinned host buffer for the flags of :func:`device_nonfinite_flags`, kept per thread (a copy into
    pinned memory needs no staging, and none is allocated per call)."""
    cache = getattr(_SCRATCH, "flags", None)
    if cache is None:
        cache = _SCRATCH.flags = {}
    key = (blocks, id(cuda))
    if key not in cache:
        cache[key] = cuda.pinned_array((blocks, 8), np.int32)
    return cache[key]


def synchronize() -> None:
    """Wait for every kernel launched so far (for timing)."""
    cuda_module().synchronize()


__all__ = ["forward", "backward", "available", "simulating", "is_device_array", "synchronize", "time_loop",
           "empty_pool", "STRATEGY"]
