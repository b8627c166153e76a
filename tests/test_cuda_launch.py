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

from gradlab.kernels import _cuda_launch as launch
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

    stand_in = SimpleNamespace(launch=driver, context=lambda: 0xC0)
    packed = _Packed(0x5A5A, 0xC0, formats, (4, 2, 1), (32, 1, 1), 96, stand_in)
    a, v = fake_array(0x10000, (2, 3), np.float32), fake_array(0x20000, (5,), np.float64)
    assert packed((a, -7, True, 1.5, -2.25, 9, v, -3))
    assert packed((a, 8, False, 0.5, 3.0, 1, v, 4))  # the buffer is reused: the second call's values, not the first's
    (head, first), (_, second) = seen
    assert head == (0x5A5A, 4, 2, 1, 32, 1, 1, 96, None, None)
    # numba's array argument: meminfo, parent, size, itemsize, data, shape..., strides... (bytes)
    assert first == [0, 0, 6, 4, 0x10000, 2, 3, 12, 4, -7, True, 1.5, -2.25, 9, 0, 0, 5, 8, 0x20000, 5, 8, -3]
    assert second[9:14] == [8, False, 0.5, 3.0, 1] and second[-1] == 4


def test_packs_a_view_as_its_array():
    """A View is packed with its own address, shape and strides, and an empty one with a null address, as
    numba passes an empty array."""
    from numba.cuda import types

    from gradlab.kernels._cuda_views import View

    formats = _slot_formats((types.Array(types.float64, 2, "A"),))
    seen = []
    stand_in = SimpleNamespace(launch=lambda *a: seen.append(read_slots(a[9], formats)) or 0, context=lambda: 0xC0)
    packed = _Packed(1, 0xC0, formats, (1, 1, 1), (1, 1, 1), 0, stand_in)
    whole = View(None, 0x40000, 0, (6, 8), (64, 8), np.dtype(np.float64))
    assert packed((whole[2:5, 3:7],)) and packed((whole[2:2, :],))
    assert seen[0] == [0, 0, 12, 8, 0x40000 + 2 * 64 + 3 * 8, 3, 4, 64, 8]
    assert seen[1] == [0, 0, 0, 8, 0, 0, 8, 64, 8]


def test_driver_error_is_raised():
    from numba.cuda import types

    formats = _slot_formats((types.int64,))
    stand_in = SimpleNamespace(launch=lambda *a: 700, context=lambda: 0xC0)
    packed = _Packed(1, 0xC0, formats, (1, 1, 1), (1, 1, 1), 0, stand_in)
    with pytest.raises(RuntimeError, match="CUDA error 700"):
        packed((3,))


def test_another_context_is_left_to_numba():
    """With another context current (another device selected since), nothing is launched and the call says so,
    so that the dispatcher launches it there."""
    from numba.cuda import types

    launched = []
    current = [0xC0]
    driver = SimpleNamespace(launch=lambda *a: launched.append(a) or 0, context=lambda: current[0])
    packed = _Packed(1, 0xC0, _slot_formats((types.int64,)), (1, 1, 1), (1, 1, 1), 0, driver)
    assert packed((3,)) and len(launched) == 1
    current[0] = 0xD0
    assert not packed((3,)) and len(launched) == 1


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


def test_launchers_are_kept_per_kernel_configuration_and_signature():
    """``launch`` reuses one Launcher for the same kernel, configuration and argument signature (new arrays
    of the same dtype, shape and strides, new values), and makes another for a different layout or type."""
    cuda = gcuda.cuda_module()
    K_, k = gcuda._ker(np.float64)
    config = (1, K_.THREADS_1D)
    launch._CACHE.clear()
    whole = [cuda.to_device(np.zeros(6)) for _ in range(3)]
    strided = cuda.to_device(np.zeros(12))
    for i, a in enumerate(whole):
        launch.launch(k.fill, config, (a, float(i + 1)), K_.SIM)
        np.testing.assert_array_equal(a.copy_to_host(), i + 1.0)
    assert len(launch._CACHE) == 1
    launch.launch(k.fill, config, (strided[::2], 5.0), K_.SIM)  # the same shape, other strides
    launch.launch(k.fill, config, (whole[0], 7), K_.SIM)  # an int where there was a float
    assert len(launch._CACHE) == 3
    np.testing.assert_array_equal(strided.copy_to_host(), np.tile([5.0, 0.0], 6))
    np.testing.assert_array_equal(whole[0].copy_to_host(), 7.0)
    (only,) = [v for key, v in launch._CACHE.items() if key[2][0][3] == (8,) and key[2][1] is float]
    # three launches through it: on a GPU the third took the direct path (prepared at the second)
    assert only._calls == 3 if gcuda.simulating() else (only._calls == 2 and isinstance(only._packed, _Packed))


def test_a_site_looks_its_launcher_up_once():
    """A loop's launch site takes the kept Launcher of its first launch's signature and calls it from then on."""
    cuda = gcuda.cuda_module()
    K_, k = gcuda._ker(np.float64)
    config = (1, K_.THREADS_1D)
    launch._CACHE.clear()
    site = launch.Site(k.fill, config, K_.SIM)
    steps = [cuda.to_device(np.zeros(4)) for _ in range(3)]
    for t, a in enumerate(steps):
        site(a, float(t))
    kept = launch.kept_launcher(k.fill, config, (steps[0], 0.0), K_.SIM)
    assert site._launcher is kept and len(launch._CACHE) == 1
    for t, a in enumerate(steps):
        np.testing.assert_array_equal(a.copy_to_host(), float(t))


def test_a_site_checks_the_context_once_per_call():
    """Within one call of the backend (one Site) the current context is checked at the first direct launch
    only; a new Site checks again."""
    from numba.cuda import types

    checks, launched = [], []
    driver = SimpleNamespace(launch=lambda *a: launched.append(a) or 0, context=lambda: checks.append(1) or 0xC0)
    launcher = Launcher(None, (1, 1), False)
    launcher._packed = _Packed(1, 0xC0, _slot_formats((types.int64,)), (1, 1, 1), (1, 1, 1), 0, driver)
    for calls in (1, 2):
        site = launch.Site(None, (1, 1), False)
        site._launcher = launcher
        for t in range(4):
            site(t)
        assert len(checks) == calls and len(launched) == 4 * calls


class _KernelStandIn:
    """A dispatcher stand-in: compile() hands out a compiled kernel whose function (``handle``) lives on
    device 3."""

    def __init__(self, handle):
        self.compiled_for, self.launches = [], []
        fn = SimpleNamespace(handle=handle, device=SimpleNamespace(id=3))
        self.compiled = SimpleNamespace(_codelibrary=SimpleNamespace(get_cufunc=lambda: fn))
        self.py_func = SimpleNamespace(__name__="stand_in")

    def typeof_pyval(self, a):
        return ("type of", a)

    def compile(self, argtypes):
        self.compiled_for.append(argtypes)
        return self.compiled

    def __getitem__(self, config):
        return lambda *args: self.launches.append((config, args))


def test_past_48_kb_a_kernel_opts_in_before_the_dispatcher_launches_it(monkeypatch):
    """A launch asking for more than 48 KB of dynamic shared memory first sets the compiled kernel's
    MAX_DYNAMIC_SHARED_SIZE_BYTES on its device; at 48 KB or less, or on the simulator, nothing is asked."""
    from numba.cuda.cudadrv import driver as drv

    calls = []
    monkeypatch.setattr(drv, "driver", SimpleNamespace(cuKernelSetAttribute=lambda *a: calls.append(("kernel", a)),
                                                       cuFuncSetAttribute=lambda *a: calls.append(("function", a))))
    attr = "the attribute"  # (the simulator's driver module has no bindings: a stand-in for them too)
    monkeypatch.setattr(drv, "binding", SimpleNamespace(CUfunction_attribute=SimpleNamespace(
        CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES=attr)), raising=False)
    handle = 0xF00
    kernel = _KernelStandIn(handle)
    Launcher(kernel, (2, 64, 0, 100_000), simulated=False).launch((7,))
    assert calls == [("kernel", (attr, 100_000, handle, 3))] and kernel.compiled_for == [(("type of", 7),)]
    assert kernel.launches == [((2, 64, 0, 100_000), (7,))]
    for config, simulated in (((2, 64, 0, 48 * 1024), False), ((2, 64), False), ((2, 64, 0, 100_000), True)):
        Launcher(kernel, config, simulated).launch((7,))
    assert len(calls) == 1 and len(kernel.launches) == 4
    # numba's ctypes bindings (no cuda-python): the kernel is a module's CUfunction, set by cuFuncSetAttribute
    monkeypatch.delattr(drv, "binding", raising=False)
    launch.allow_shared(_KernelStandIn(0xF01), (7,), 200_000, simulated=False)
    assert calls[1] == ("function", (0xF01, 8, 200_000))

    def refuse(*a):
        raise drv.CudaAPIError(1, "invalid value")  # (what numba raises for a failed driver call)

    monkeypatch.setattr(drv, "driver", SimpleNamespace(cuKernelSetAttribute=refuse, cuFuncSetAttribute=refuse))
    with pytest.raises(RuntimeError, match="stand_in needs 300000 bytes of shared memory a block, and asking"):
        launch.allow_shared(kernel, (7,), 300_000, simulated=False)
