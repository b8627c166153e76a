"""The registry of recurrent cells: names, gate blocks and where their equations come from.

Every backend reads this table; nothing else in gradlab lists the cells.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CellSpec:
    """Static facts about one cell.

    Attributes
    ----------
    name : str
        The public name, e.g. ``"lstm"``.
    gates : tuple of str
        Gate blocks in the order they are stacked along the first axis of
        ``W_x``, ``W_h`` and ``b`` (SPEC §1-§2).
    has_cell_state : bool
        True for the LSTM, which carries a memory cell ``c_t``.
    has_b_hn : bool
        True for ``gru_cudnn``, whose recurrent candidate product has its own bias.
    gamma : float
        Bound on the derivative of the recurrent nonlinearity (Pascanu et al.
        2013): 1 for tanh and relu.
    source : str
        Where the equations come from.
    """

    name: str
    gates: tuple[str, ...]
    has_cell_state: bool
    has_b_hn: bool
    gamma: float
    source: str

    @property
    def num_gates(self) -> int:
        """G, the number of stacked gate blocks."""
        return len(self.gates)


CELLS: dict[str, CellSpec] = {
    spec.name: spec
    for spec in (
        CellSpec("rnn_tanh", ("h",), False, False, 1.0, "Elman 1990; the course notes' basic RNN"),
        CellSpec("rnn_relu", ("h",), False, False, 1.0, "Le et al. 2015 (IRNN) with identity init"),
        CellSpec("gru_simple", ("u", "n"), False, False, 1.0, "the course notes' simplified GRU (no reset gate)"),
        CellSpec("gru", ("r", "u", "n"), False, False, 1.0, "Cho et al. 2014; the course notes' full GRU (reset before W_hn)"),
        CellSpec("gru_cudnn", ("r", "u", "n"), False, True, 1.0, "cuDNN / PyTorch GRU (reset after W_hn h + b_hn)"),
        CellSpec("lstm", ("i", "f", "g", "o"), True, False, 1.0, "Hochreiter & Schmidhuber 1997 with the forget gate of Gers et al. 2000"),
    )
}

CELL_NAMES: tuple[str, ...] = tuple(CELLS)


def get_cell(cell: str) -> CellSpec:
    """Look up a cell by name, with an error that lists the valid names."""
    if not isinstance(cell, str) or cell not in CELLS:
        raise ValueError(f"cell: unknown cell {cell!r}; expected one of {', '.join(CELL_NAMES)}")
    return CELLS[cell]
