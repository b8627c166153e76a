"""Views of device memory (:mod:`gradlab.kernels._cuda_views`): the same elements numba's slicing gives.

On the simulator a view's numba array is a NumPy view of the owner's buffer;
on a GPU it is a ``DeviceNDArray`` over the owner's memory. Either way, what
is read through it, and what a kernel writes through it, must be what NumPy
indexing of the same array says.
"""

from __future__ import annotations

import numpy as np
import pytest

from gradlab.kernels import cuda as gcuda
from gradlab.kernels._cuda_views import View, real, view

pytestmark = pytest.mark.skipif(not gcuda.available(), reason="backend 'cuda' unavailable: no CUDA driver and no simulator")

HOST = np.arange(4 * 5 * 6, dtype=np.float64).reshape(4, 5, 6)

KEYS = [1, -1, slice(1, 3), (slice(None), slice(2, 5)), (2, slice(1, 4)), (slice(1, 4), 3),
        (slice(0, 0),), (slice(3, 1),), (slice(None), slice(None), slice(4, 6))]


@pytest.mark.parametrize("key", KEYS, ids=str)
def test_indexing_reads_what_numpy_reads(key):
    cuda = gcuda.cuda_module()
    v = view(cuda.to_device(HOST))[key]
    want = HOST[key]
    assert v.shape == want.shape and v.strides == want.strides and v.size == want.size
    got = real(v)
    assert got.shape == want.shape and tuple(got.strides) == want.strides
    np.testing.assert_array_equal(got.copy_to_host(), want)
    assert v.is_c_contiguous() == want.flags.c_contiguous


def test_reshape_and_nested_views():
    cuda = gcuda.cuda_module()
    v = view(cuda.to_device(HOST))
    flat = v.reshape(HOST.size)
    assert flat.shape == (120,) and flat.strides == (8,) and v.reshape(-1, 6).shape == (20, 6)
    two = flat[30:90].reshape(10, 6)[2:7, 1:4]  # offsets add up through views of views
    np.testing.assert_array_equal(real(two).copy_to_host(), HOST.reshape(120)[30:90].reshape(10, 6)[2:7, 1:4])
    with pytest.raises(ValueError, match="non-contiguous"):
        v[:, 1:3].reshape(8, 6)
    with pytest.raises(ValueError, match="cannot reshape"):
        v.reshape(7, 3)


def test_bad_keys_are_refused():
    cuda = gcuda.cuda_module()
    v = view(cuda.to_device(HOST))
    with pytest.raises(IndexError, match="step of 1"):
        v[::2]
    with pytest.raises(IndexError, match="out of range"):
        v[4]
    with pytest.raises(IndexError, match="too many indices"):
        v[0, 0, 0, 0]


def test_a_kernel_writes_through_a_view():
    """The fill kernel on a column block of a matrix (a strided view) and on one row of it, as the backend
    launches it: through the kept launchers, so that on a GPU the later calls take the direct path, which
    reads the view's address and strides itself."""
    cuda = gcuda.cuda_module()
    K_, k = gcuda._ker(np.float64)
    a = cuda.to_device(np.zeros((6, 7)))
    want = np.zeros((6, 7))
    for value in (1.0, 2.0, 3.0):
        cols = view(a)[1:5, 2:6]
        for r in range(cols.shape[0]):
            gcuda._run(K_, k.fill, (1, K_.THREADS_1D), cols[r], value)
        want[1:5, 2:6] = value
        np.testing.assert_array_equal(a.copy_to_host(), want)
    row = view(a)[5]
    gcuda._fill_zero(K_, k, row)
    gcuda._run(K_, k.fill, (1, K_.THREADS_1D), row[3:], -1.0)
    want[5] = 0.0
    want[5, 3:] = -1.0
    np.testing.assert_array_equal(a.copy_to_host(), want)


def test_a_view_is_the_whole_array_and_is_kept_alive():
    cuda = gcuda.cuda_module()
    a = cuda.to_device(HOST)
    v = view(a)
    assert isinstance(v, View) and view(v) is v and real(a) is a and v.owner is a
    del a
    np.testing.assert_array_equal(real(v[3]).copy_to_host(), HOST[3])


POOL_CHECK = """
import ctypes, gc
from types import SimpleNamespace
import numpy as np
from gradlab.kernels import cuda as gcuda
from gradlab.kernels._cuda_views import real, view

buf = SimpleNamespace(device_ctypes_pointer=ctypes.c_void_p(0x7F0000))
key = (4096, 0)
held = {"array": gcuda._lend(buf, None, key, 1024, np.dtype(np.float32))}
assert held["array"].shape == (1024,) and held["array"].device_ctypes_pointer.value == 0x7F0000
held["view"] = view(held["array"])
held["rows"] = real(held["view"][0:10].reshape(2, 5))
held["tail"] = real(held["view"][100:200])
assert held["tail"].device_ctypes_pointer.value == 0x7F0000 + 400
for name in ("array", "view", "rows"):
    del held[name]
    gc.collect()
    assert gcuda._POOL.get(key, []) == [], name  # something made from the buffer is still alive
del held["tail"]
gc.collect()
assert gcuda._POOL[key] == [buf], gcuda._POOL
gcuda._lend(gcuda._POOL[key].pop(), None, key, 8, np.dtype(np.float64))  # dropped at once: back at once
gc.collect()
assert gcuda._POOL[key] == [buf] and not gcuda._LENT, (gcuda._POOL, gcuda._LENT)
# the pool is bounded: in bytes (a buffer over the bound is not kept) and in buffers of one size
gcuda.POOL_MAX_BYTES = 2 * 4096  # 4096 kept already: 8192 more would pass it
big = (8192, 0)
gcuda._lend(SimpleNamespace(device_ctypes_pointer=ctypes.c_void_p(0x900000)), None, big, 2048, np.dtype(np.float32))
gc.collect()
assert big not in gcuda._POOL or gcuda._POOL[big] == [], gcuda._POOL
gcuda.POOL_MAX_BYTES = 1 << 30
spare = [SimpleNamespace(device_ctypes_pointer=ctypes.c_void_p(0xA00000 + i * 4096))
         for i in range(gcuda.POOL_KEEP + 2)]
held = [gcuda._lend(b, None, key, 1024, np.dtype(np.float32)) for b in spare]
del held
gc.collect()
assert len(gcuda._POOL[key]) == gcuda.POOL_KEEP, gcuda._POOL
assert gcuda.empty_pool() == gcuda.POOL_KEEP * 4096 and not gcuda._POOL
print("pool ok")
"""


def test_pooled_output_memory_returns_only_when_every_view_is_gone():
    """An output array lent from the pool (numba's own self-freeing pointer over a pooled buffer) gives its
    buffer back once, after the array and every view made of it are gone, and not before. Runs numba's real
    pointer and array classes (not the simulator's, so in a process of its own) at a made-up device address;
    nothing is read or written through them, so no GPU is needed."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    out = subprocess.run([sys.executable, "-c", POOL_CHECK], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and "pool ok" in out.stdout, out.stdout + out.stderr
