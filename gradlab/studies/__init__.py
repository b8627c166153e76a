"""The studies: each a module here, run by ``gradlab study NAME`` or ``studies/NAME.py``.

A study module defines ``TITLE``, ``QUESTION`` and ``run(ctx)``, where ``ctx``
is a :class:`~gradlab.studies.context.StudyContext`: ``run`` sweeps its grids
with ``ctx.sweep`` (on Dask, resumable) and writes its report with
``ctx.report``/``ctx.finish``. The functions a sweep evaluates live at module
level so that Dask workers can import them.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: Every study, in the order ``gradlab study --all`` (the main job) runs them.
ORDER = (
    "vanishing_exploding",
    "clipping",
    "long_range",
    "language_model",
    "char_vs_word",
    "training_dynamics",
    "scaling",
)
#: The studies this installation has (those of ``ORDER`` whose module is present).
STUDIES = tuple(n for n in ORDER if importlib.util.find_spec(f"{__name__}.{n}") is not None)


def load(name: str) -> ModuleType:
    """The module of study ``name``; a clear error for an unknown name."""
    if name not in STUDIES:
        raise ValueError(f"study: unknown study {name!r}; expected one of {', '.join(STUDIES)}")
    return importlib.import_module(f"{__name__}.{name}")


__all__ = ["STUDIES", "load"]
