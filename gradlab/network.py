"""Recurrent networks built from the cells: layers, directions, heads, modes (SPEC §5).

A :class:`Network` stacks ``num_layers`` recurrent layers of one cell; layer
l's hidden sequence is layer l+1's input (a deep RNN). With
``bidirectional=True`` every layer runs a forward pass and a time-reversed
pass over its input and concatenates them, the notes' a⟨t⟩ = [→a⟨t⟩, ←a⟨t⟩],
so the next layer (and the head) sees 2H features per step. The head is

    softmax:  ŷ⟨t⟩ = softmax(W_y a⟨t⟩ + b_y)   (classes; cross-entropy loss)
    linear:   ŷ⟨t⟩ = W_y a⟨t⟩ + b_y            (regression; mean squared error)

and the loss follows the notes, L = (1/B) Σ_b Σ_t L⟨t⟩ over the scored steps
(:mod:`gradlab.losses`). The modes of the notes:

* ``"many_to_many"`` — an output at every step, a loss at every step or at the
  steps a mask selects (tagging, language models, copy memory);
* ``"many_to_one"`` — one output after the last step (the adding problem);
  bidirectional, the head reads a⟨T⟩ = [→a⟨T⟩, ←a⟨T⟩] like every other step;
* ``"seq2seq"`` — an encoder–decoder with input length Tx and output length
  Ty ≠ Tx (Sutskever et al. 2014; Cho et al. 2014; the notes' machine
  translation model): the encoder's final state (h_Tx, and c_Tx for the LSTM)
  of layer l is the initial state of the decoder's layer l, the decoder reads
  its previous target (teacher forcing: one-hot of y⟨t-1⟩ for a softmax head,
  y⟨t-1⟩ itself for a linear head, zeros at t = 1) and the loss sits on its
  outputs. The decoder's ∂L/∂h_0 (and ∂L/∂c_0) are the outside gradient of
  the encoder's last step, so the loss trains the encoder through that state.
* one-to-many generation (sampling) runs a trained ``many_to_many`` network
  one step at a time with :meth:`Network.step` (see :mod:`gradlab.sampling`).

Everything runs through :func:`gradlab.forward` and :func:`gradlab.backward`,
so a network works on every backend (``backend=``).

The dynamics record
-------------------
:meth:`Network.loss_and_grads` returns ``record.dh_norm`` of shape
``(layers, directions, T, B)``: ``dh_norm[l, d, t, b]`` is ‖∂L/∂h_t‖ of layer
l, direction d (0 forward, 1 reversed) — the total gradient, as in
:class:`gradlab.Grads`. **Both directions are indexed by real time t**: the
reversed pass processes x_T first, and its record is flipped back so that
``dh_norm[l, 1, t]`` belongs to the reversed state that sits at input position
t (the one concatenated with the forward state at t). In the reversed
direction gradients flow from large t to small t backwards in *its* time,
i.e. from small real t towards large real t. For ``seq2seq`` the time axis is
the encoder's Tx steps followed by the decoder's Ty steps
(``record.encoder_steps`` = Tx). ``record.dc_norm`` is the same for the LSTM's
memory cell, None otherwise.

Parameters
----------
A network's parameters are a flat dict of arrays, ``network.params``, named
``layer{l}.{forward|reverse}.{W_x|W_h|b|b_hn}``, ``decoder.layer{l}.forward.*``
(seq2seq) and ``head.W_y`` (K, dirs·H), ``head.b_y`` (K,). Gradients come back
as a dict with the same keys, which :mod:`gradlab.clip` and :mod:`gradlab.optim`
act on directly. :meth:`Network.save` / :meth:`Network.load` write and read
them with the configuration as one ``.npz`` file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from typing import Any, NamedTuple

import numpy as np

from . import api, losses
from .initializers import init_params
from .kernels.cells import get_cell
from .kernels.cpu import _blas_threads_for
from .types import Params
from .validate import FLOAT_DTYPES, check_array, check_finite

MODES = ("many_to_many", "many_to_one", "seq2seq")
HEADS = ("softmax", "linear")
DIRECTIONS = ("forward", "reverse")
PARAM_NAMES = ("W_x", "W_h", "b", "b_hn")


@dataclass
class Record:
    """What one call of :meth:`Network.loss_and_grads` saw, besides the loss and gradients.

    Attributes
    ----------
    dh_norm : ndarray, shape (layers, directions, T, B)
        ‖∂L/∂h_t‖ per layer, direction and real time step t (see the module
        docstring); for ``seq2seq`` T = Tx + Ty, encoder first.
    dc_norm : ndarray, shape (layers, directions, T, B), or None
        ‖∂L/∂c_t‖ for the LSTM.
    outputs : ndarray
        The head's outputs: logits (softmax head) or predictions (linear
        head), ``(T, B, K)``, ``(B, K)`` for many-to-one, ``(Ty, B, K)`` for seq2seq.
    final_state : list of (h, c)
        The forward direction's last state of every layer (the decoder's for
        seq2seq), for carrying across windows of truncated BPTT.
    encoder_steps : int or None
        seq2seq only: Tx, where the decoder's steps begin in ``dh_norm``.
    """

    dh_norm: np.ndarray
    dc_norm: np.ndarray | None
    outputs: np.ndarray
    final_state: list
    encoder_steps: int | None = None


class LossAndGrads(NamedTuple):
    """``(loss, grads, record)`` returned by :meth:`Network.loss_and_grads`."""

    loss: float
    grads: dict
    record: Record


class _NonFinite(FloatingPointError):
    """Raised inside the forward pass when a hidden state overflowed to inf or nan."""


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _check_backend(backend: Any) -> str | None:
    if backend is not None and (not isinstance(backend, str) or backend not in api.available_backends()):
        raise ValueError(
            f"backend: unknown backend {backend!r}; expected one of {', '.join(api.available_backends())} or None"
        )
    return backend


class Network:
    """A deep, optionally bidirectional recurrent network with an output head.

    Parameters
    ----------
    cell : str
        One of ``gradlab.CELL_NAMES``; every layer and direction uses it.
    input_size, hidden_size, output_size : int
        D, H (per direction) and K.
    num_layers : int
        Recurrent layers stacked; layer l+1 reads layer l's hidden sequence.
    bidirectional : bool
        A forward and a time-reversed pass per layer, concatenated
        (not with ``mode="seq2seq"``).
    head : {"softmax", "linear"}
        Classes with softmax cross-entropy, or regression with mean squared error.
    mode : {"many_to_many", "many_to_one", "seq2seq"}
        Where the outputs and the loss are (see the module docstring).
    init, scale : as in :func:`gradlab.init_params`
        How every layer's recurrent weights are drawn.
    forget_bias : float, optional
        The LSTM's forget-gate bias; None means 1.0 for the LSTM (Gers et
        al. 2000; Jozefowicz et al. 2015) and 0 for the other cells.
    dtype : float32 or float64
    seed : int
        Seeds every layer, direction and the head through
        ``numpy.random.SeedSequence(seed).spawn``.
    backend : str, optional
        The default backend of :meth:`loss_and_grads` and :meth:`predict`.

    Notes
    -----
    The head's W_y is drawn from N(0, 1/(dirs·H)) and b_y is zero.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        output_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        head: str = "softmax",
        mode: str = "many_to_many",
        *,
        init: str = "orthogonal",
        scale: float = 1.0,
        forget_bias: float | None = None,
        dtype=np.float64,
        seed: int = 0,
        backend: str | None = None,
    ):
        self.spec = get_cell(cell)
        self.cell = cell
        self.input_size = _positive_int("input_size", input_size)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.output_size = _positive_int("output_size", output_size)
        self.num_layers = _positive_int("num_layers", num_layers)
        if not isinstance(bidirectional, (bool, np.bool_)):
            raise TypeError(f"bidirectional: expected True or False, got {bidirectional!r}")
        self.bidirectional = bool(bidirectional)
        if head not in HEADS:
            raise ValueError(f"head: unknown head {head!r}; expected one of {', '.join(HEADS)}")
        if mode not in MODES:
            raise ValueError(f"mode: unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        if mode == "seq2seq" and self.bidirectional:
            raise ValueError("bidirectional: mode='seq2seq' needs a unidirectional encoder, whose final state starts the decoder")
        self.head, self.mode = head, mode
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
        self.dtype = dtype
        self.backend = _check_backend(backend)
        if forget_bias is None:
            forget_bias = 1.0 if cell == "lstm" else 0.0
        self.init = {"init": init, "scale": scale, "forget_bias": forget_bias, "seed": seed}

        self.params: dict[str, np.ndarray] = {}
        parts = ["encoder", "decoder"] if mode == "seq2seq" else ["encoder"]
        n_draws = sum(self.num_layers * (1 if p == "decoder" else self.num_directions) for p in parts) + 1
        seeds = iter(np.random.SeedSequence(seed).spawn(n_draws))
        for part in parts:
            for layer in range(self.num_layers):
                for d in range(1 if part == "decoder" else self.num_directions):
                    p = init_params(
                        cell, self._layer_input_size(part, layer), self.hidden_size, init=init, scale=scale,
                        dtype=dtype, seed=next(seeds), forget_bias=forget_bias,
                    )
                    for name, a in p.arrays().items():
                        self.params[self._key(part, layer, d, name)] = a
        rng = np.random.default_rng(next(seeds))
        F = self.num_directions * self.hidden_size
        self.params["head.W_y"] = np.ascontiguousarray(rng.normal(0.0, 1.0 / np.sqrt(F), (self.output_size, F)), dtype)
        self.params["head.b_y"] = np.zeros(self.output_size, dtype)

    # ------------------------------------------------------------------ structure

    @property
    def num_directions(self) -> int:
        """2 for a bidirectional network, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def num_parameters(self) -> int:
        """The number of scalar parameters, head included."""
        return int(sum(a.size for a in self.params.values()))

    def config(self) -> dict:
        """The constructor arguments that define the architecture (what :meth:`save` stores)."""
        return {
            "cell": self.cell, "input_size": self.input_size, "hidden_size": self.hidden_size,
            "output_size": self.output_size, "num_layers": self.num_layers, "bidirectional": self.bidirectional,
            "head": self.head, "mode": self.mode, "dtype": self.dtype.name,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"Network({args})"

    def _layer_input_size(self, part: str, layer: int) -> int:
        if layer > 0:
            return self.num_directions * self.hidden_size if part == "encoder" else self.hidden_size
        return self.input_size if part == "encoder" else self.output_size

    @staticmethod
    def _key(part: str, layer: int, direction: int, name: str) -> str:
        prefix = "decoder." if part == "decoder" else ""
        return f"{prefix}layer{layer}.{DIRECTIONS[direction]}.{name}"

    def layer_params(self, layer: int, direction: int | str = 0, part: str = "encoder") -> Params:
        """The :class:`gradlab.Params` of one layer and direction (views of ``self.params``).

        Parameters
        ----------
        layer : int
        direction : 0, 1, "forward" or "reverse"
        part : {"encoder", "decoder"}
            ``"decoder"`` only for seq2seq; the encoder is the only stack otherwise.
        """
        if direction not in (0, 1, *DIRECTIONS):
            raise ValueError(f"direction: expected 0, 1, 'forward' or 'reverse', got {direction!r}")
        d = DIRECTIONS.index(direction) if isinstance(direction, str) else int(direction)
        keys = {name: self._key(part, layer, d, name) for name in PARAM_NAMES}
        if keys["W_h"] not in self.params:
            raise ValueError(f"layer: no layer {layer}, direction {direction!r} in the {part} of this network")
        return Params(**{name: self.params.get(key) for name, key in keys.items()})

    def copy(self) -> "Network":
        """A deep copy (parameters copied)."""
        other = object.__new__(Network)
        other.__dict__.update(self.__dict__)
        other.params = {k: v.copy() for k, v in self.params.items()}
        other.init = dict(self.init)
        return other

    # ------------------------------------------------------------------ arguments

    def _check_x(self, x: Any, name: str = "x") -> np.ndarray:
        x = check_array(name, x, ("T", "B", self.input_size), self.dtype)
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"{name}: expected at least one step and one sequence, got shape {x.shape}")
        check_finite(name, x)
        return x

    def _check_state(self, state: Any, B: int) -> list | None:
        if state is None:
            return None
        if self.bidirectional:
            raise ValueError("state: a bidirectional network has no state to carry (its reversed pass needs the future)")
        if not isinstance(state, (list, tuple)) or len(state) != self.num_layers:
            raise ValueError(f"state: expected a list of {self.num_layers} (h, c) pairs, one per layer")
        out = []
        for l, pair in enumerate(state):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError(f"state[{l}]: expected an (h, c) pair (c None for {self.cell!r})")
            h = check_array(f"state[{l}].h", pair[0], (B, self.hidden_size), self.dtype)
            c = pair[1]
            if self.spec.has_cell_state:
                c = np.zeros_like(h) if c is None else check_array(f"state[{l}].c", c, (B, self.hidden_size), self.dtype)
            elif c is not None:
                raise ValueError(f"state[{l}].c: only the LSTM has a memory cell; expected None for {self.cell!r}")
            out.append((h, c))
        return out

    def _check_targets(self, y: Any, shape: tuple[int, ...]) -> np.ndarray:
        if self.head == "softmax":
            return losses.check_class_targets(y, shape, self.output_size)
        return losses.check_real_targets(y, shape + (self.output_size,), self.dtype)

    def initial_state(self, batch_size: int) -> list:
        """Zero state of every layer, ``[(h, c), ...]`` with ``c`` None except for the LSTM."""
        B, H = _positive_int("batch_size", batch_size), self.hidden_size
        c = (lambda: np.zeros((B, H), self.dtype)) if self.spec.has_cell_state else (lambda: None)
        return [(np.zeros((B, H), self.dtype), c()) for _ in range(self.num_layers)]

    # ------------------------------------------------------------------ forward

    def _forward_stack(self, part: str, x: np.ndarray, state: list | None, backend) -> tuple[list, np.ndarray]:
        """Run the layers of one stack; return per-layer lists of traces and the top layer's output."""
        traces, u = [], x
        for layer in range(self.num_layers):
            outs, layer_traces = [], []
            for d in range(1 if part == "decoder" else self.num_directions):
                p = self.layer_params(layer, d, part)
                if d == 0:
                    h0, c0 = state[layer] if state is not None else (None, None)
                    tr = api.forward(self.cell, p, u, h0, c0, backend=backend)
                    out = tr.h
                else:
                    tr = api.forward(self.cell, p, u[::-1], backend=backend)
                    out = tr.h[::-1]
                if not np.isfinite(tr.h).all() or (tr.c is not None and not np.isfinite(tr.c).all()):
                    raise _NonFinite(f"{part} layer {layer} {DIRECTIONS[d]}")
                outs.append(out)
                layer_traces.append(tr)
            traces.append(layer_traces)
            u = outs[0] if len(outs) == 1 else np.ascontiguousarray(np.concatenate(outs, axis=-1))
        return traces, u

    def _head(self, a: np.ndarray) -> np.ndarray:
        W_y = self.params["head.W_y"]
        with _blas_threads_for(a.size * W_y.shape[0]):
            return a @ W_y.T + self.params["head.b_y"]

    def _decoder_inputs(self, y: np.ndarray) -> np.ndarray:
        """Teacher forcing: the decoder reads its previous target, zeros at the first step."""
        Ty, B = y.shape[0], y.shape[1]
        d = np.zeros((Ty, B, self.output_size), self.dtype)
        if self.head == "softmax":
            t, b = np.meshgrid(np.arange(1, Ty), np.arange(B), indexing="ij")
            d[t, b, y[:-1]] = 1.0
        else:
            d[1:] = y[:-1]
        return d

    @staticmethod
    def _final_state(traces: list) -> list:
        return [(tr[0].h[-1].copy(), None if tr[0].c is None else tr[0].c[-1].copy()) for tr in traces]

    def predict(self, x: np.ndarray, state: list | None = None, *, backend: str | None = None) -> np.ndarray:
        """The head's outputs (logits or predictions) for ``x``: ``(T, B, K)``, or ``(B, K)`` many-to-one.

        Not for seq2seq, whose outputs depend on the targets (teacher forcing);
        use :func:`gradlab.sampling.decode` there.
        """
        if self.mode == "seq2seq":
            raise ValueError("mode: predict() needs a many_to_many or many_to_one network; use gradlab.sampling.decode for seq2seq")
        backend = _check_backend(backend) or self.backend
        x = self._check_x(x)
        state = self._check_state(state, x.shape[1])
        try:
            _, a = self._forward_stack("encoder", x, state, backend)
        except _NonFinite:
            shape = (x.shape[1], self.output_size) if self.mode == "many_to_one" else (x.shape[0], x.shape[1], self.output_size)
            return np.full(shape, np.nan, self.dtype)
        return self._head(a[-1] if self.mode == "many_to_one" else a)

    def final_state(self, x: np.ndarray, state: list | None = None, *, backend: str | None = None) -> list:
        """Run the (forward-direction) stack over ``x`` from ``state``; return the last state of every layer."""
        backend = _check_backend(backend) or self.backend
        x = self._check_x(x)
        state = self._check_state(state, x.shape[1])
        if self.bidirectional:
            raise ValueError("bidirectional: a bidirectional network has no state to carry")
        try:
            traces, _ = self._forward_stack("encoder", x, state, backend)
        except _NonFinite:
            return [(np.full_like(h, np.nan), None if c is None else np.full_like(c, np.nan))
                    for h, c in self.initial_state(x.shape[1])]
        return self._final_state(traces)

    def step(self, x_t: np.ndarray, state: list | None = None, *, part: str = "encoder",
             backend: str | None = None) -> tuple[np.ndarray, list]:
        """One time step, for generation: ``(outputs (B, K), new state)``.

        Parameters
        ----------
        x_t : ndarray, shape (B, D)
            The input of this step (for ``part="decoder"``, D is the output size K).
        state : list of (h, c), optional
            The previous state of every layer; zeros when None.
        part : {"encoder", "decoder"}
            ``"decoder"`` steps a seq2seq network's decoder.
        """
        if self.bidirectional:
            raise ValueError("bidirectional: a bidirectional network cannot run one step at a time")
        if part not in ("encoder", "decoder") or (part == "decoder" and self.mode != "seq2seq"):
            raise ValueError(f"part: expected 'encoder' (or 'decoder' for seq2seq), got {part!r}")
        backend = _check_backend(backend) or self.backend
        D = self.output_size if part == "decoder" else self.input_size
        x_t = check_array("x_t", x_t, ("B", D), self.dtype)
        state = self._check_state(state, x_t.shape[0])
        traces, a = self._forward_stack(part, x_t[None], state, backend)
        return self._head(a[0]), self._final_state(traces)

    # ------------------------------------------------------------------ backward

    def _backward_stack(self, part, traces, dtop, dfinal, clip_step, backend, grads):
        """BPTT through one stack, top layer first.

        ``dtop`` (T, B, dirs·H) is ∂L/∂(top layer's output); ``dfinal`` a list
        of (dh, dc) per layer added at the forward direction's last step (the
        seq2seq decoder's ∂L/∂h_0, ∂L/∂c_0), or None. Fills ``grads`` and
        returns (dh_norm, dc_norm, d_initial_state).
        """
        L, dirs, H = self.num_layers, len(traces[0]), self.hidden_size
        T, B = dtop.shape[0], dtop.shape[1]
        dh_norm = np.zeros((L, dirs, T, B), self.dtype)
        dc_norm = np.zeros((L, dirs, T, B), self.dtype) if self.spec.has_cell_state else None
        dinit = [None] * L
        du = dtop
        for layer in range(L - 1, -1, -1):
            dx = None
            for d in range(dirs):
                p, tr = self.layer_params(layer, d, part), traces[layer][d]
                dh = np.array(du[..., d * H : (d + 1) * H], copy=True)
                dc_last = None
                if d == 0 and dfinal is not None:
                    dh[-1] += dfinal[layer][0]
                    dc_last = dfinal[layer][1]
                if d == 1:
                    dh = dh[::-1]
                finite = np.isfinite(dh).all() and (dc_last is None or np.isfinite(dc_last).all())
                if finite:
                    g = api.backward(self.cell, p, tr, dh, dc_last, backend=backend, clip_step=clip_step)
                    gx, gh_norm, gc_norm = g.x, g.dh_norm, g.dc_norm
                    pgrads = g.params()
                    dinit[layer] = (g.h0, g.c0) if d == 0 else dinit[layer]
                else:  # an overflow upstream: this layer's gradient is undefined
                    pgrads = {k: np.full_like(v, np.nan) for k, v in p.arrays().items()}
                    gx = np.full(tr.x.shape, np.nan, self.dtype)
                    gh_norm = np.full((T, B), np.nan, self.dtype)
                    gc_norm = None if dc_norm is None else gh_norm
                    if d == 0:
                        dinit[layer] = (np.full((B, H), np.nan, self.dtype),
                                        None if dc_norm is None else np.full((B, H), np.nan, self.dtype))
                if d == 1:
                    gx, gh_norm = gx[::-1], gh_norm[::-1]
                    gc_norm = None if gc_norm is None else gc_norm[::-1]
                for name, a in pgrads.items():
                    grads[self._key(part, layer, d, name)] = a
                dh_norm[layer, d] = gh_norm
                if dc_norm is not None:
                    dc_norm[layer, d] = gc_norm
                dx = gx if dx is None else dx + gx
            du = dx
        return dh_norm, dc_norm, dinit

    def _head_backward(self, a: np.ndarray, dz: np.ndarray, grads: dict) -> np.ndarray:
        """Head gradients from ∂L/∂z (…, B, K) and the features a (…, B, F); return ∂L/∂a."""
        W_y = self.params["head.W_y"]
        F = W_y.shape[1]
        with _blas_threads_for(a.size * self.output_size):
            grads["head.W_y"] = dz.reshape(-1, self.output_size).T @ a.reshape(-1, F)
            grads["head.b_y"] = dz.reshape(-1, self.output_size).sum(axis=0)
            return dz @ W_y

    def _loss(self, z: np.ndarray, y: np.ndarray, mask) -> tuple[float, np.ndarray]:
        if self.head == "softmax":
            return losses.softmax_cross_entropy(z, y, mask)
        return losses.mean_squared_error(z, y, mask)

    def loss_and_grads(
        self,
        x: np.ndarray,
        y: np.ndarray,
        mask: np.ndarray | None = None,
        *,
        state: list | None = None,
        clip_step: float | None = None,
        tbptt: int | None = None,
        backend: str | None = None,
    ) -> LossAndGrads:
        """The loss, the gradient of every parameter (head included) and the dynamics record.

        Parameters
        ----------
        x : ndarray, shape (T, B, D)
            Inputs (the encoder's, Tx steps, for seq2seq), in the network's dtype.
        y : ndarray
            Targets. Softmax head: integer classes of shape ``(T, B)``
            (many-to-many), ``(B,)`` (many-to-one) or ``(Ty, B)`` (seq2seq).
            Linear head: the same with a trailing axis K, in the network's dtype.
        mask : ndarray, shape (T, B) or (Ty, B), optional
            Weights of the scored steps (many-to-many and seq2seq only).
        state : list of (h, c), optional
            Initial state of every layer's forward direction (zeros when
            None); not for bidirectional networks.
        clip_step : float, optional
            Per-step clipping inside BPTT (:func:`gradlab.backward`), in every layer.
        tbptt : int, optional
            Truncated BPTT (Williams & Peng 1990), many-to-one and many-to-many
            only: the sequence is cut into windows of ``tbptt`` steps; the
            hidden state is carried from window to window but gradients are
            not, and the gradients of the windows are summed. None (default)
            is full BPTT; ``tbptt >= T`` is identical to it.
        backend : str, optional
            Overrides the network's backend for this call.

        Returns
        -------
        LossAndGrads
            ``(loss, grads, record)``: the loss L = (1/B) Σ_b Σ_t m_{t,b} L⟨t⟩
            (a float), a dict of gradients with the keys of ``params``, and a
            :class:`Record`. If a hidden state overflows to inf or nan in the
            forward pass, the loss is nan and so is every gradient; a gradient
            that overflows in BPTT is returned as it is — check it (e.g.
            :func:`gradlab.clip.is_finite`) before applying it.
        """
        backend = _check_backend(backend) or self.backend
        x, y, mask, state = self._check_call(x, y, mask, state)
        T = x.shape[0]
        if tbptt is not None:
            tbptt = _positive_int("tbptt", tbptt)
            if self.mode == "seq2seq" or self.bidirectional:
                raise ValueError("tbptt: truncated BPTT needs a unidirectional many_to_many or many_to_one network")
            if tbptt < T:
                return self._truncated(x, y, mask, state, clip_step, tbptt, backend)
        try:
            if self.mode == "seq2seq":
                return self._seq2seq(x, y, mask, state, clip_step, backend)
            return self._sequence(x, y, mask, state, clip_step, backend)
        except _NonFinite:
            return self._nonfinite_result(x, y)

    def loss(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None, *,
             state: list | None = None, backend: str | None = None) -> float:
        """The loss alone (a forward pass, no BPTT); arguments as in :meth:`loss_and_grads`."""
        backend = _check_backend(backend) or self.backend
        x, y, mask, state = self._check_call(x, y, mask, state)
        try:
            traces, a = self._forward_stack("encoder", x, state, backend)
            if self.mode == "seq2seq":
                _, a = self._forward_stack("decoder", self._decoder_inputs(y), self._final_state(traces), backend)
        except _NonFinite:
            return float("nan")
        return self._loss(self._head(a[-1] if self.mode == "many_to_one" else a), y, mask)[0]

    def _check_call(self, x, y, mask, state):
        """Validate the arguments shared by :meth:`loss_and_grads` and :meth:`loss`."""
        x = self._check_x(x)
        T, B = x.shape[0], x.shape[1]
        if self.mode == "seq2seq":
            if not isinstance(y, np.ndarray) or y.ndim < 1:
                raise ValueError("y: expected the decoder's targets, an array of shape (Ty, B) or (Ty, B, K)")
            y = self._check_targets(y, (y.shape[0], B))
            if y.shape[0] < 1:
                raise ValueError(f"y: expected at least one decoder step, got shape {y.shape}")
            mask_shape = (y.shape[0], B)
        elif self.mode == "many_to_one":
            y = self._check_targets(y, (B,))
            if mask is not None:
                raise ValueError("mask: a many_to_one network scores only the last step; expected None")
            mask_shape = None
        else:
            y = self._check_targets(y, (T, B))
            mask_shape = (T, B)
        mask = None if mask is None else losses.check_mask(mask, mask_shape, self.dtype)
        return x, y, mask, self._check_state(state, B)

    def _sequence(self, x, y, mask, state, clip_step, backend) -> LossAndGrads:
        traces, a = self._forward_stack("encoder", x, state, backend)
        grads: dict[str, np.ndarray] = {}
        if self.mode == "many_to_one":
            z = self._head(a[-1])
            loss, dz = self._loss(z, y, None)
            da = np.zeros_like(a)
            da[-1] = self._head_backward(a[-1], dz, grads)
        else:
            z = self._head(a)
            loss, dz = self._loss(z, y, mask)
            da = self._head_backward(a, dz, grads)
        dh_norm, dc_norm, _ = self._backward_stack("encoder", traces, da, None, clip_step, backend, grads)
        record = Record(dh_norm, dc_norm, z, self._final_state(traces))
        return LossAndGrads(loss, self._ordered(grads), record)

    def _seq2seq(self, x, y, mask, state, clip_step, backend) -> LossAndGrads:
        enc_traces, _ = self._forward_stack("encoder", x, state, backend)
        dec_state = self._final_state(enc_traces)
        dec_traces, a = self._forward_stack("decoder", self._decoder_inputs(y), dec_state, backend)
        z = self._head(a)
        loss, dz = self._loss(z, y, mask)
        grads: dict[str, np.ndarray] = {}
        da = self._head_backward(a, dz, grads)
        dec_h, dec_c, dinit = self._backward_stack("decoder", dec_traces, da, None, clip_step, backend, grads)
        zeros = np.zeros((x.shape[0], x.shape[1], self.hidden_size), self.dtype)
        enc_h, enc_c, _ = self._backward_stack("encoder", enc_traces, zeros, dinit, clip_step, backend, grads)
        dh_norm = np.concatenate([enc_h, dec_h], axis=2)
        dc_norm = None if enc_c is None else np.concatenate([enc_c, dec_c], axis=2)
        record = Record(dh_norm, dc_norm, z, self._final_state(dec_traces), encoder_steps=x.shape[0])
        return LossAndGrads(loss, self._ordered(grads), record)

    def _truncated(self, x, y, mask, state, clip_step, k, backend) -> LossAndGrads:
        """Truncated BPTT: windows of k steps, state carried, gradients cut at window edges, summed."""
        T, B = x.shape[0], x.shape[1]
        total, grads, outputs = 0.0, None, []
        dh_norm = np.zeros((self.num_layers, 1, T, B), self.dtype)
        dc_norm = np.zeros_like(dh_norm) if self.spec.has_cell_state else None
        for t0 in range(0, T, k):
            t1 = min(t0 + k, T)
            xw = x[t0:t1]
            if self.mode == "many_to_one" and t1 < T:  # no loss in this window: only carry the state
                state = self.final_state(xw, state, backend=backend)
                if not all(np.isfinite(h).all() for h, _ in state):
                    return self._nonfinite_result(x, y)
                continue
            if self.mode == "many_to_one":
                res = self.loss_and_grads(xw, y, None, state=state, clip_step=clip_step, backend=backend)
            else:
                mw = None if mask is None else mask[t0:t1]
                res = self.loss_and_grads(xw, y[t0:t1], mw, state=state, clip_step=clip_step, backend=backend)
            if not np.isfinite(res.loss):
                return self._nonfinite_result(x, y)
            total += res.loss
            grads = res.grads if grads is None else {key: grads[key] + g for key, g in res.grads.items()}
            dh_norm[:, :, t0:t1] = res.record.dh_norm
            if dc_norm is not None:
                dc_norm[:, :, t0:t1] = res.record.dc_norm
            outputs.append(res.record.outputs)
            state = res.record.final_state
        z = outputs[-1] if self.mode == "many_to_one" else np.concatenate(outputs, axis=0)
        return LossAndGrads(total, grads, Record(dh_norm, dc_norm, z, state))

    def _ordered(self, grads: dict) -> dict:
        return {k: grads[k] for k in self.params}

    def _nonfinite_result(self, x, y) -> LossAndGrads:
        T, B = x.shape[0], x.shape[1]
        if self.mode == "seq2seq":
            T, out_shape = T + y.shape[0], (y.shape[0], B, self.output_size)
        elif self.mode == "many_to_one":
            out_shape = (B, self.output_size)
        else:
            out_shape = (T, B, self.output_size)
        dirs = self.num_directions
        nan = np.full((self.num_layers, dirs, T, B), np.nan, self.dtype)
        state = [(np.full(h.shape, np.nan, self.dtype), None if c is None else np.full(c.shape, np.nan, self.dtype))
                 for h, c in self.initial_state(B)]
        record = Record(nan, nan.copy() if self.spec.has_cell_state else None, np.full(out_shape, np.nan, self.dtype),
                        state, x.shape[0] if self.mode == "seq2seq" else None)
        return LossAndGrads(float("nan"), {k: np.full_like(v, np.nan) for k, v in self.params.items()}, record)

    # ------------------------------------------------------------------ persistence

    def set_params(self, params: dict) -> None:
        """Replace the parameters with copies of ``params`` (same keys, shapes and dtype)."""
        if not isinstance(params, dict):
            raise TypeError(f"params: expected a dict of arrays, got {type(params).__name__}")
        missing, extra = set(self.params) - set(params), set(params) - set(self.params)
        if missing or extra:
            raise ValueError(f"params: keys do not match this network (missing {sorted(missing)}, unexpected {sorted(extra)})")
        new = {}
        for k, ref in self.params.items():
            a = params[k]
            if not isinstance(a, np.ndarray) or a.shape != ref.shape or a.dtype != ref.dtype:
                got = f"{a.shape} {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
                raise ValueError(f"params[{k!r}]: expected shape {ref.shape} {ref.dtype}, got {got}")
            new[k] = np.array(a, copy=True, order="C")
        self.params = new

    def save(self, path: str | PathLike) -> None:
        """Write the configuration and every parameter to one ``.npz`` file."""
        np.savez(path, __config__=np.array(json.dumps(self.config())), **self.params)

    @classmethod
    def load(cls, path: str | PathLike, *, backend: str | None = None) -> "Network":
        """Read a network written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as f:
            if "__config__" not in f.files:
                raise ValueError(f"path: {path} is not a gradlab network file (no __config__ entry)")
            config = json.loads(str(f["__config__"]))
            arrays = {k: f[k] for k in f.files if k != "__config__"}
        net = cls(**config, backend=backend)
        net.set_params(arrays)
        return net


__all__ = ["DIRECTIONS", "HEADS", "MODES", "LossAndGrads", "Network", "Record"]
