"""Views of device memory for kernel arguments, made in plain Python arithmetic.

Slicing or reshaping a numba device array builds a new ``DeviceNDArray``: it
enters the CUDA context, builds a dummy array to find the extent of the view
(walking every row of a non-contiguous slice), and wraps a new memory
pointer. A host profile of one forward + backward pass at (T, B, H) =
(1000, 1, 32) on an H200 (``gpu_breakdown.py --sections profile``) found about
50 of them a call and most of the host time in them; for ``gru_cudnn``, whose
backward slices columns out of a (T·B, 3H) buffer, over a thousand extent
steps a call.

A :class:`View` is what a kernel launch needs of an array (device address,
shape, strides, dtype) and a reference to the array that owns the memory.
Indexing the first axis, slicing with unit steps and reshaping a C-contiguous
view cost a few integer operations. The direct launch path
(:mod:`gradlab.kernels._cuda_launch`) packs a view as it packs an array;
wherever numba itself must see the argument (the dispatcher, the simulator) or
the caller gets it back, :meth:`View.real` makes the numba array (on the
simulator, a NumPy view of the owner's buffer in the simulator's wrapper).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["View", "real", "view"]


def _c_strides(shape, itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    strides.reverse()
    return tuple(strides)


class View:
    """A strided view (byte ``offset`` into ``owner``'s memory) of a device array ``owner``.

    ``owner`` is a numba device array (or the simulator's stand-in) whose
    memory starts at device address ``base``; the view keeps it alive.
    """

    __slots__ = ("owner", "base", "offset", "shape", "strides", "dtype", "size", "ndim", "_fields")

    def __init__(self, owner, base: int, offset: int, shape, strides, dtype):
        self.owner, self.base, self.offset = owner, base, offset
        self.shape, self.strides, self.dtype = tuple(shape), tuple(strides), dtype
        self.ndim = len(self.shape)
        self.size = math.prod(self.shape)
        self._fields = None

    @property
    def fields(self) -> tuple:
        """The view as a kernel argument: numba's array fields (meminfo, parent, size, itemsize, data pointer,
        shape, strides), computed once (a view does not change)."""
        if self._fields is None:
            self._fields = (0, 0, self.size, self.dtype.itemsize, self.ptr, *self.shape, *self.strides)
        return self._fields

    @property
    def ptr(self) -> int:
        """The device address of element 0 (0 for an empty view, as numba passes it)."""
        return self.base + self.offset if self.size else 0

    def is_c_contiguous(self) -> bool:
        step = self.dtype.itemsize
        for n, s in zip(reversed(self.shape), reversed(self.strides)):
            if n == 0:
                return True
            if n > 1 and s != step:
                return False
            step *= n
        return True

    def reshape(self, *shape) -> "View":
        """The same elements in another shape (C order; the view must be C-contiguous)."""
        if len(shape) == 1 and isinstance(shape[0], tuple):
            shape = shape[0]
        shape = tuple(int(n) for n in shape)
        if -1 in shape:
            known = math.prod(n for n in shape if n != -1)
            shape = tuple(self.size // max(known, 1) if n == -1 else n for n in shape)
        if math.prod(shape) != self.size:
            raise ValueError(f"cannot reshape a view of shape {self.shape} into {shape}")
        if not self.is_c_contiguous():
            raise ValueError(f"cannot reshape a non-contiguous view (shape {self.shape}, strides {self.strides})")
        return View(self.owner, self.base, self.offset, shape, _c_strides(shape, self.dtype.itemsize), self.dtype)

    def __getitem__(self, key) -> "View":
        """``v[i]`` (first axis), ``v[a:b]``, ``v[a:b, c:d]``, …: integers and slices with unit steps."""
        if not isinstance(key, tuple):
            key = (key,)
        if len(key) > self.ndim:
            raise IndexError(f"too many indices ({len(key)}) for a view of {self.ndim} dimensions")
        offset, shape, strides = self.offset, [], []
        for axis, k in enumerate(key):
            n, s = self.shape[axis], self.strides[axis]
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                if step != 1:
                    raise IndexError("views take slices with a step of 1 only")
                offset += start * s
                shape.append(max(stop - start, 0))
                strides.append(s)
            else:
                i = int(k)
                if i < 0:
                    i += n
                if not 0 <= i < n:
                    raise IndexError(f"index {k} is out of range for axis {axis} of size {n}")
                offset += i * s
        shape += self.shape[len(key):]
        strides += self.strides[len(key):]
        return View(self.owner, self.base, offset, shape, strides, self.dtype)

    def real(self):
        """The numba device array (the simulator's stand-in) of this view, sharing the owner's memory."""
        owner = self.owner
        if hasattr(owner, "_ary"):  # the simulator's FakeCUDAArray: a NumPy view of the owner's buffer
            ary = np.ndarray(self.shape, self.dtype, buffer=owner._ary, offset=self.offset, strides=self.strides)
            return type(owner)(ary)
        from numba.cuda.cudadrv.devicearray import DeviceNDArray

        extent = self.dtype.itemsize + sum((n - 1) * s for n, s in zip(self.shape, self.strides)) if self.size else 0
        return DeviceNDArray(self.shape, self.strides, self.dtype, gpu_data=owner.gpu_data.view(
            self.offset, self.offset + extent))

    def __repr__(self) -> str:
        return f"View(shape={self.shape}, strides={self.strides}, dtype={self.dtype}, offset={self.offset})"


def view(a) -> View:
    """A :class:`View` of the whole of ``a`` (a numba device array, the simulator's stand-in, or a View)."""
    if type(a) is View:
        return a
    if hasattr(a, "_ary"):
        base = 0
    else:
        base = int(a.device_ctypes_pointer.value or 0)
    return View(a, base, 0, a.shape, a.strides, np.dtype(a.dtype))


def real(a):
    """``a`` as numba sees it: a View's device array, anything else as it is."""
    return a.real() if type(a) is View else a
