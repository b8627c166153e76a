"""The direct kernel launch of the cuda backend: what it hands the driver, and when it stays out of the way.

The launch itself needs a GPU (``tests/test_cuda.py`` runs the stepwise time
loop through it on one); here a stand-in for ``cuLaunchKernel`` receives the
parameter array, and each slot is read back.
"""

from __future__ import annotations

import ctypes
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from gradlab.kernels import cuda as gcuda
from gradlab.kernels._cuda_launch import Launcher, _Packed, _slot_formats

pytestmark = pytest.mark.skipif(not gcuda.available(), reason="backend 'cuda' unavailable: no CUDA driver and no simulator")


def fake_array(ptr, shape, dtype):
    dtype = np.dtype(dtype)
    strides = tuple(int(s) for s in np.empty(shape, dtype).strides)
    return SimpleNamespace(size=int(np.prod(shape)), dtype=dtype, shape=shape, strides=strides,
                           device_ctypes_pointer=ctypes.c_void_p(ptr))


def read_slots(params, formats):
    """The values the driver reads: slot i holds kernel parameter i, in the slot's format."""
    out = []
    i = 0
    for fmt, _ in formats:
        for field in (c for c in fmt if c in "?qQiIfd"):
            raw = ctypes.string_at(params[i], 8)
            out.append(struct.unpack_from("<" + field, raw)[0])
            i += 1
    assert i == len(params)
    return out


def test_packs_each_field_into_its_own_slot():
    from numba.cuda import types

    argtypes = (types.Array(types.float32, 2, "C"), types.int64, types.boolean, types.float32, types.float64,
                types.uint32, types.Array(types.float64, 1, "A"), types.int32)
    formats = _slot_formats(argtypes)
    seen = []

    def driver(handle, gx, gy, gz, bx, by, bz, shmem, stream, params, extra):
        seen.append(((handle.value, gx, gy, gz, bx, by, bz, shmem, stream, extra), read_slots(params, formats)))
        return 0

    packed = _Packed(0x5A5A, formats, (4, 2, 1), (32, 1, 1), 96, driver)
    a, v = fake_array(0x10000, (2, 3), np.float32), fake_array(0x20000, (5,), np.float64)
    packed((a, -7, True, 1.5, -2.25, 9, v, -3))
    packed((a, 8, False, 0.5, 3.0, 1, v, 4))  # the buffer is reused: the second call's values, not the first's
    (head, first), (_, second) = seen
    assert head == (0x5A5A, 4, 2, 1, 32, 1, 1, 96, None, None)
    # numba's array argument: meminfo, parent, size, itemsize, data, shape..., strides... (bytes)
    assert first == [0, 0, 6, 4, 0x10000, 2, 3, 12, 4, -7, True, 1.5, -2.25, 9, 0, 0, 5, 8, 0x20000, 5, 8, -3]
    assert second[9:14] == [8, False, 0.5, 3.0, 1] and second[-1] == 4


def test_driver_error_is_raised():
    from numba.cuda import types

    formats = _slot_formats((types.int64,))
    packed = _Packed(1, formats, (1, 1, 1), (1, 1, 1), 0, lambda *a: 700)
    with pytest.raises(RuntimeError, match="CUDA error 700"):
        packed((3,))


def test_unhandled_argument_types_are_left_to_numba():
    from numba.cuda import types

    assert _slot_formats((types.int64, types.complex128)) is None
    assert _slot_formats((types.UniTuple(types.int64, 2),)) is None


def test_repeated_launches_land():
    """The fill kernel through a Launcher, again with new values, on a contiguous and on a strided array.

    On a GPU every launch after the second is the direct one (the strided
    array checks that the strides are handed over); on the simulator every
    launch goes through numba.
    """
    cuda = gcuda.cuda_module()
    K_, k = gcuda._ker(np.float64)
    for stride in (1, 3):
        a = cuda.to_device(np.zeros(7 * stride))
        view = a[::stride]
        launch = Launcher(k.fill, (1, K_.THREADS_1D), K_.SIM)
        for value in (1.0, 2.0, -4.0):
            launch(view, value)
            want = np.zeros(7 * stride)
            want[::stride] = value
            np.testing.assert_array_equal(a.copy_to_host(), want)
        assert (launch._packed is False) if gcuda.simulating() else isinstance(launch._packed, _Packed)
