"""Moving parameters between gradlab and ``torch.nn.RNN``, ``GRU`` and ``LSTM`` (SPEC §2).

PyTorch keeps, per layer and direction, ``weight_ih_l{k}``, ``weight_hh_l{k}``,
``bias_ih_l{k}``, ``bias_hh_l{k}`` (``_reverse`` appended for the backward
direction). The mapping:

* ``torch.nn.RNN`` (``nonlinearity="tanh"`` / ``"relu"``) -> ``rnn_tanh`` / ``rnn_relu``:
  ``W_x = weight_ih``, ``W_h = weight_hh``, ``b = bias_ih + bias_hh``.
* ``torch.nn.LSTM`` -> ``lstm``: the gate order i, f, g, o is gradlab's; ``b = bias_ih + bias_hh``.
* ``torch.nn.GRU`` -> ``gru_cudnn``: PyTorch's order is r, z, n with
  h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}, so gradlab's update gate is u = 1 - z = σ(-a_z):
  the z rows of both weights and of the summed z bias are negated. The r and
  n input biases add as above, except the n block of ``bias_hh``, which sits
  inside the reset product and becomes ``b_hn``.

PyTorch has no reset-before GRU (``gru``) or simplified GRU, so those cells
have no mapping. torch is imported only by :func:`params_to_torch` when
tensors are asked for; :func:`params_from_torch` reads tensors by duck typing.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .kernels.cells import get_cell
from .types import Params

TORCH_CELLS = ("rnn_tanh", "rnn_relu", "gru_cudnn", "lstm")


def _check_cell(cell: str) -> None:
    get_cell(cell)
    if cell not in TORCH_CELLS:
        raise ValueError(f"cell: {cell!r} has no torch.nn equivalent; expected one of {', '.join(TORCH_CELLS)}")


def _suffix(layer: int, reverse: bool) -> str:
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or layer < 0:
        raise ValueError(f"layer: expected an integer >= 0, got {layer!r}")
    return f"_l{int(layer)}" + ("_reverse" if reverse else "")


def _to_numpy(name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, read without importing torch here
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"state_dict[{name!r}]: expected a tensor or NumPy array, got {type(value).__name__}")
    if value.dtype not in (np.float32, np.float64):
        raise TypeError(f"state_dict[{name!r}]: expected float32 or float64, got {value.dtype}")
    return np.array(value, copy=True, order="C")


def params_from_torch(state_dict: Mapping[str, Any], cell: str, layer: int = 0, reverse: bool = False) -> Params:
    """The gradlab :class:`Params` of one layer and direction of a PyTorch recurrent module.

    Parameters
    ----------
    state_dict : mapping
        ``module.state_dict()`` of ``torch.nn.RNN``, ``GRU`` or ``LSTM``, tensors or arrays.
    cell : {"rnn_tanh", "rnn_relu", "gru_cudnn", "lstm"}
    layer : int
        Which layer of a stacked module.
    reverse : bool
        The reversed direction of a bidirectional module.
    """
    _check_cell(cell)
    sfx = _suffix(layer, reverse)
    w_name, u_name = "weight_ih" + sfx, "weight_hh" + sfx
    for name in (w_name, u_name):
        if name not in state_dict:
            found = ", ".join(sorted(state_dict)) or "nothing"
            raise KeyError(f"state_dict: no {name!r} (layer={layer}, reverse={reverse}); it holds {found}")
    W_x, W_h = _to_numpy(w_name, state_dict[w_name]), _to_numpy(u_name, state_dict[u_name])
    G = get_cell(cell).num_gates
    if W_h.ndim != 2 or W_h.shape[0] != G * W_h.shape[1]:
        raise ValueError(f"state_dict[{u_name!r}]: expected shape ({G}*H, H) for cell {cell!r}, got {W_h.shape}")
    if W_x.ndim != 2 or W_x.shape[0] != W_h.shape[0]:
        raise ValueError(f"state_dict[{w_name!r}]: expected shape ({W_h.shape[0]}, D), got {W_x.shape}")
    H = W_h.shape[1]
    zeros = np.zeros(G * H, W_h.dtype)
    b_ih = _to_numpy("bias_ih" + sfx, state_dict["bias_ih" + sfx]) if "bias_ih" + sfx in state_dict else zeros
    b_hh = _to_numpy("bias_hh" + sfx, state_dict["bias_hh" + sfx]) if "bias_hh" + sfx in state_dict else zeros
    for name, bias in (("bias_ih" + sfx, b_ih), ("bias_hh" + sfx, b_hh)):
        if bias.shape != (G * H,):
            raise ValueError(f"state_dict[{name!r}]: expected shape ({G * H},), got {bias.shape}")
    if cell != "gru_cudnn":
        return Params(W_x=W_x, W_h=W_h, b=b_ih + b_hh)
    z = slice(H, 2 * H)
    b = b_ih + b_hh
    b[2 * H :] = b_ih[2 * H :]
    W_x[z] *= -1
    W_h[z] *= -1
    b[z] *= -1
    return Params(W_x=W_x, W_h=W_h, b=b, b_hn=b_hh[2 * H :].copy())


def params_to_torch(
    params: Params, cell: str, layer: int = 0, reverse: bool = False, *, as_tensors: bool = True
) -> dict[str, Any]:
    """The PyTorch state-dict entries of one layer and direction.

    The inverse of :func:`params_from_torch`: ``bias_ih`` holds gradlab's ``b``
    and ``bias_hh`` is zero except, for ``gru_cudnn``, its n block, which holds
    ``b_hn``. Load it with ``module.load_state_dict(d, strict=False)`` for one
    layer of several, or merge the dicts of every layer.

    Parameters
    ----------
    params : Params
    cell : {"rnn_tanh", "rnn_relu", "gru_cudnn", "lstm"}
    layer, reverse : as in :func:`params_from_torch`.
    as_tensors : bool
        Return ``torch.Tensor`` values (imports torch) or, if False, NumPy arrays.
    """
    from .validate import check_params

    _check_cell(cell)
    sfx = _suffix(layer, reverse)
    _, params = check_params(cell, params, finite=False)
    H = params.hidden_size
    W_x, W_h, b_ih = params.W_x.copy(), params.W_h.copy(), params.b.copy()
    b_hh = np.zeros_like(b_ih)
    if cell == "gru_cudnn":
        z = slice(H, 2 * H)
        W_x[z] *= -1
        W_h[z] *= -1
        b_ih[z] *= -1
        b_hh[2 * H :] = params.b_hn
    out = {"weight_ih" + sfx: W_x, "weight_hh" + sfx: W_h, "bias_ih" + sfx: b_ih, "bias_hh" + sfx: b_hh}
    if as_tensors:
        try:
            import torch
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("params_to_torch(as_tensors=True) needs torch; install gradlab[compare]") from err
        out = {k: torch.from_numpy(v) for k, v in out.items()}
    return out


__all__ = ["TORCH_CELLS", "params_from_torch", "params_to_torch"]
