"""jacdistill: distil a neural network into a formula a person can read.

A teacher MLP is trained with a smoothness penalty (λ·mean‖∂f/∂x‖²_F and relatives) and a
symbolic-regression student is fitted to its predictions. Regularizers, students and λ tuners are
plugins registered through the ``jacdistill`` entry-point group.
"""

import importlib

from jacdistill.hookspecs import hookimpl
from jacdistill.options import JacdistillError

__version__ = "0.1.0"
__all__ = ["Distiller", "JacdistillError", "Regularizer", "Student", "Tuner", "hookimpl", "__version__"]

_LAZY = {
    "Distiller": "jacdistill.estimator",
    "Regularizer": "jacdistill.contracts",
    "Student": "jacdistill.contracts",
    "Tuner": "jacdistill.search",
}


def __getattr__(name):  # torch, sklearn and sympy load on first use, so the CLI starts fast
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jacdistill' has no attribute {name!r}")
