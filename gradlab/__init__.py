"""gradlab: kernels and studies of gradient dynamics in recurrent networks.

The public API (SPEC §1-§4)::

    import gradlab
    params = gradlab.init_params("lstm", input_size=8, hidden_size=16, scale=1.0, seed=0)
    trace = gradlab.forward("lstm", params, x)          # x: (T, B, D)
    grads = gradlab.backward("lstm", params, trace, dh)  # dh: (T, B, H)
    grads.dh_norm                                        # ‖∂L/∂h_t‖, (T, B)
"""

from . import clip, interop
from .api import available_backends, backward, default_backend, forward
from .initializers import init_params
from .kernels.cells import CELL_NAMES, CELLS
from .types import Grads, Params, Trace
from . import losses, optim, sampling, tasks
from .network import LossAndGrads, Network, Record
from . import language_model
from . import dynamics
from .optim import SGD, Adam, StepDecay
from .sampling import sample_text
from .train import train

__version__ = "0.1.0"

__all__ = [
    "CELL_NAMES",
    "CELLS",
    "Grads",
    "Params",
    "Trace",
    "available_backends",
    "backward",
    "clip",
    "default_backend",
    "dynamics",
    "forward",
    "init_params",
    "interop",
    "language_model",
    "losses",
    "optim",
    "sampling",
    "tasks",
    "train",
    "Adam",
    "LossAndGrads",
    "Network",
    "Record",
    "SGD",
    "StepDecay",
    "sample_text",
    "__version__",
]
