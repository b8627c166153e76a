"""Kernels: the cell registry, the NumPy reference and the compiled backends."""

from .cells import CELL_NAMES, CELLS, CellSpec, get_cell

__all__ = ["CELL_NAMES", "CELLS", "CellSpec", "get_cell"]
