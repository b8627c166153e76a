"""Repeated kernel launches with less host work than numba.cuda's dispatcher.

numba.cuda launches a kernel by typing every argument, looking the compiled
overload up, flattening each array into its fields through several Python
objects and handing the list to ``cuda.core.launch``; on an H200 this took
20–27 µs for a two-argument kernel and 58–89 µs for the eleven-argument
pointwise kernel of a time step (``benchmarks/gpu_breakdown.py``). The cuda
backend launches the same kernels with arguments of the same types over and
over: every step of the stepwise time loop, and every call of the same shape.
So the typing is done once: a :class:`Launcher` launches the first two times
through the dispatcher (which compiles the kernel if needed), then packs the
same fields into one reused parameter buffer with one
:func:`struct.pack_into` and calls the driver's ``cuLaunchKernel`` itself, on
the same (default) stream (8 µs and 13 µs for those two kernels). :func:`launch`
keeps one Launcher per kernel, launch configuration and argument signature;
a :class:`Site` looks it up once for all the steps of a time loop.

It falls back to the dispatcher, for good, wherever it cannot do exactly what
the dispatcher does: on the CUDA simulator, for argument types other than
arrays, integers, floats and booleans, for debug or cooperative kernels, and
where the driver library or numba's compiled-kernel attributes are not found;
and for a single launch, when the current context is not the one the kernel
was prepared in (another device selected since).

A launch that asks for more than 48 KB of dynamic shared memory a block (the
register time loop with part of W_h in shared memory) first lets its kernel
have it on the current device (:func:`allow_shared`), as CUDA requires.
"""

from __future__ import annotations

import ctypes
import struct
import sys
import threading
from collections import OrderedDict

from ._cuda_views import View, real

__all__ = ["Launcher", "Site", "allow_shared", "kept_launcher", "launch"]

#: Dynamic shared memory a block has without asking (bytes); past it the kernel must opt in (:func:`allow_shared`).
SHARED_WITHOUT_OPT_IN = 48 * 1024
_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8  # CUfunction_attribute's value, for numba's ctypes bindings

_DRIVER = None
_DRIVER_LOCK = threading.Lock()


class _Driver:
    """``cuLaunchKernel`` and ``cuCtxGetCurrent`` of the CUDA driver library, through ctypes."""

    def __init__(self, lib):
        self.launch = lib.cuLaunchKernel
        self.launch.restype = ctypes.c_int
        self.launch.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3
        self._get = lib.cuCtxGetCurrent
        self._get.restype = ctypes.c_int
        self._get.argtypes = [ctypes.POINTER(ctypes.c_void_p)]

    def context(self) -> int:
        """The calling thread's current CUDA context (0 if none)."""
        ctx = ctypes.c_void_p()
        return (ctx.value or 0) if self._get(ctypes.byref(ctx)) == 0 else 0


def _driver():
    """The CUDA driver library's functions, or None where it cannot be loaded."""
    global _DRIVER
    with _DRIVER_LOCK:
        if _DRIVER is None:
            try:
                _DRIVER = _Driver(ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"))
            except (OSError, AttributeError):
                _DRIVER = False
        return _DRIVER or None


def _slot_formats(argtypes):
    """(struct format, is an array) per kernel argument, each field in its own 8-byte slot; None if a type is
    not handled."""
    from numba.cuda import types

    scalar = {types.int64: "q", types.uint64: "Q", types.int32: "i4x", types.uint32: "I4x",
              types.float64: "d", types.float32: "f4x", types.boolean: "?7x"}
    out = []
    for t in argtypes:
        if isinstance(t, types.Array):
            # meminfo, parent, size, itemsize, data pointer, shape, strides (numba's array argument model)
            out.append(("qqqqQ" + "q" * (2 * t.ndim), True))
        elif t in scalar:
            out.append((scalar[t], False))
        else:
            return None
    return out


class _Packed:
    """The compiled kernel's driver handle, the context it was loaded in, and a reused parameter buffer for
    its flattened arguments."""

    def __init__(self, handle, context, formats, griddim, blockdim, sharedmem, driver):
        self.fmt = "<" + "".join(f for f, _ in formats)
        self.pack = struct.Struct(self.fmt).pack_into
        slots = struct.calcsize(self.fmt) // 8
        self.buf = (ctypes.c_char * (8 * slots))()
        base = ctypes.addressof(self.buf)
        self.params = (ctypes.c_void_p * slots)(*(base + 8 * i for i in range(slots)))
        self.arrays = [is_array for _, is_array in formats]
        self.handle, self.context = ctypes.c_void_p(handle), context
        self.dims = (*griddim, *blockdim, sharedmem)
        self.driver = driver
        self.lock = threading.Lock()

    def __call__(self, args, check: bool = True) -> bool:
        """Launch; False (and nothing launched) when the current context is not the kernel's (another device
        selected since), which the dispatcher then handles. ``check=False``: the caller knows it is."""
        if check and self.driver.context() != self.context:
            return False
        values = []
        for is_array, a in zip(self.arrays, args):
            if not is_array:
                values.append(a)
            elif type(a) is View:
                values += a.fields
            else:
                values += (0, 0, a.size, a.dtype.itemsize, a.device_ctypes_pointer.value or 0, *a.shape, *a.strides)
        with self.lock:  # the buffer is read by the driver during the call, then free
            self.pack(self.buf, 0, *values)
            err = self.driver.launch(self.handle, *self.dims, None, self.params, None)
        if err:
            raise RuntimeError(f"cuLaunchKernel failed with CUDA error {err}")
        return True


def allow_shared(kernel, args, nbytes: int, simulated: bool) -> None:
    """Let the kernel compiled for ``args`` take ``nbytes`` of dynamic shared memory a block on the current
    device (CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES; needed past 48 KB). Compiles the kernel for those
    argument types if it is not yet; nothing to do on the simulator or at 48 KB and below."""
    if simulated or nbytes <= SHARED_WITHOUT_OPT_IN:
        return
    from numba.cuda.cudadrv import driver as drv

    args = [real(a) for a in args]
    compiled = kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))
    try:
        fn = compiled._codelibrary.get_cufunc()
        binding = getattr(drv, "binding", None)
        if binding is not None:  # cuda-python bindings: a library's CUkernel (as numba sets a kernel's carveout)
            attr = binding.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            drv.driver.cuKernelSetAttribute(attr, int(nbytes), fn.handle, fn.device.id)
        else:  # numba's ctypes bindings: a module's CUfunction
            drv.driver.cuFuncSetAttribute(fn.handle, _MAX_DYNAMIC_SHARED_SIZE_BYTES, int(nbytes))
    except (AttributeError, drv.CudaAPIError) as err:
        raise RuntimeError(f"{kernel.py_func.__name__} needs {nbytes} bytes of shared memory a block, and asking "
                           f"the device for more than {SHARED_WITHOUT_OPT_IN} failed: {err}") from err


def _dim3(d):
    d = tuple(d) if isinstance(d, (tuple, list)) else (d,)
    return (tuple(int(v) for v in d) + (1, 1, 1))[:3]


class Launcher:
    """``kernel[config](*args)``, repeated with arguments of unchanging types, at less host cost.

    Parameters
    ----------
    kernel : numba.cuda dispatcher
        The kernel.
    config : tuple
        ``(griddim, blockdim)`` or ``(griddim, blockdim, stream, sharedmem)``
        as given to ``kernel[...]``; the stream must be 0 (the default).
    simulated : bool
        True on the CUDA simulator, where every launch goes through it.

    Every call must pass arguments of the types of the first call (the same
    dtypes, dimensions and memory layouts, integers where there were
    integers): the compiled overload is looked up once. Arrays may be numba
    device arrays or :class:`~gradlab.kernels._cuda_views.View` s of them. The first two calls
    launch through the dispatcher (the direct path is prepared at the second,
    so a call site that launches once pays nothing for it), and so does every
    call where the direct path is not available.
    """

    def __init__(self, kernel, config, simulated: bool):
        self.kernel, self.config = kernel, tuple(config)
        self.simulated = simulated
        self._calls = 0
        self._packed = None  # None: not prepared yet; False: the dispatcher only

    def __call__(self, *args):
        self.launch(args)

    def launch(self, args, check: bool = True) -> bool:
        """Launch with the arguments ``args``; True when the direct path launched it (see :meth:`_Packed.__call__`
        for ``check``)."""
        packed = self._packed
        if packed and packed(args, check):
            return True
        args = [real(a) for a in args]
        if len(self.config) > 3:
            allow_shared(self.kernel, args, int(self.config[3]), self.simulated)
        self.kernel[self.config](*args)
        self._calls += 1
        if self._calls >= 2 and self._packed is None:
            self._packed = (not self.simulated and self._prepare(args)) or False
        return False

    def _prepare(self, args):
        griddim, blockdim = self.config[0], self.config[1]
        stream = self.config[2] if len(self.config) > 2 else 0
        sharedmem = self.config[3] if len(self.config) > 3 else 0
        driver = _driver()
        if stream or driver is None:
            return None
        try:
            argtypes = tuple(self.kernel.typeof_pyval(a) for a in args)
            compiled = self.kernel.overloads[argtypes]
            if compiled.debug or compiled.cooperative or compiled.extensions:
                return None
            formats = _slot_formats(compiled.argument_types)
            if formats is None:
                return None
            handle = int(compiled._codelibrary.get_cufunc().handle)
        except (AttributeError, KeyError, TypeError):
            return None
        context = driver.context()  # the dispatcher has just launched the kernel in it
        if not context:
            return None
        return _Packed(handle, context, formats, _dim3(griddim), _dim3(blockdim), int(sharedmem), driver)


#: how many (kernel, configuration, argument signature) launchers :func:`launch` keeps, the oldest dropped first
CACHE_ENTRIES = 1024
_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _signature(args) -> tuple:
    """What fixes the numba types of the arguments: type, dtype, shape and strides of an array (its layout
    follows from them), the Python type of anything else."""
    return tuple((type(a), a.dtype, a.shape, a.strides) if hasattr(a, "strides") else type(a) for a in args)


def kept_launcher(kernel, config, args, simulated: bool) -> Launcher:
    """The :class:`Launcher` kept for this kernel, configuration and the signature of ``args``, so that a
    launch repeated across calls (same shapes) takes the direct path too."""
    key = (kernel, config, _signature(args))
    with _CACHE_LOCK:
        launcher = _CACHE.get(key)
        if launcher is None:
            launcher = _CACHE[key] = Launcher(kernel, config, simulated)
            while len(_CACHE) > CACHE_ENTRIES:
                _CACHE.popitem(last=False)
    return launcher


def launch(kernel, config, args, simulated: bool) -> None:
    """``kernel[config](*args)`` through the kept :class:`Launcher` (see :func:`kept_launcher`)."""
    kept_launcher(kernel, config, args, simulated)(*args)


class Site:
    """One launch site of a loop whose launches all pass arguments of one signature (the time loop's steps):
    the kept :class:`Launcher` is looked up at the first launch and called directly at the others. A Site
    lives for one call of the backend, in one thread: once a launch has taken the direct path (the current
    context checked), the later ones skip the check."""

    def __init__(self, kernel, config, simulated: bool):
        self.kernel, self.config, self.simulated = kernel, config, simulated
        self._launcher = None
        self._checked = False

    def __call__(self, *args):
        if self._launcher is None:
            self._launcher = kept_launcher(self.kernel, self.config, args, self.simulated)
        if self._launcher.launch(args, not self._checked):
            self._checked = True
