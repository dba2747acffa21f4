"""The contracts of regularizer and student plugins (a tuner's, :class:`jacdistill.search.Tuner`,
lives beside the search it drives).

A plugin module registers classes that subclass one of these through the hooks in
:mod:`jacdistill.hookspecs`. Each class carries a unique ``name`` (what users type after
``--regularizer``, ``--student`` or ``--tuner``) and takes its options as keyword arguments.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import sympy
import torch
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import precedence
from torch import nn

from jacdistill.options import PluginOptions


class Regularizer(PluginOptions, ABC):
    """A smoothness penalty R for the teacher: training minimises MSE + λ·R(f, x) per batch.

    ``output_and_penalty(model, x)`` returns the model's output and a penalty tensor that autograd
    can differentiate with respect to the model's parameters (it is usually built with
    ``create_graph=True``), so that both can share one forward pass. ``loss`` is the full
    per-batch objective; override it when the parameter gradients can be had more cheaply than
    autograd would give them.

    Stacks: several teachers of one architecture can train together as a
    :class:`jacdistill.teacher.MLPStack`, whose inputs have a leading member axis (k×B×d). A
    regularizer whose ``output_and_penalty`` then returns one penalty per member (shape k) says so
    in ``handles_stacks``; others train their teachers one at a time, as plain modules. Random
    draws go through :mod:`jacdistill.probes`, where each teacher in training has its own stream.
    """

    kind = "regularizer"

    def __init__(self, **options: Any):
        self.options = self.resolve_options(options)

    def check_device(self, device: str) -> None:
        """Raise JacdistillError if this regularizer cannot run on ``device`` (checked before any
        training starts); the default runs anywhere."""

    def handles_stacks(self) -> bool:
        """True when ``output_and_penalty`` and ``loss`` accept an MLPStack (see above)."""
        return False

    @abstractmethod
    def output_and_penalty(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(model(x), penalty)`` for the batch ``x`` (B×d: a scalar penalty; k×B×d for a stack:
        one penalty per member)."""

    def penalty(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The penalty alone."""
        return self.output_and_penalty(model, x)[1]

    def loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, lam: float | torch.Tensor
    ) -> torch.Tensor:
        """The training objective on one batch (y: B×k_out): MSE plus ``lam`` times the penalty;
        for a stack, one objective per member, ``lam`` holding one λ per member."""
        if not bool(torch.as_tensor(lam).any()):
            return mean_squared_error(model(x), y)
        out, penalty = self.output_and_penalty(model, x)
        return mean_squared_error(out, y) + lam * penalty


def mean_squared_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MSE over the batch and outputs (the last two axes): a scalar, or one value per member."""
    return (out - y).square().mean(dim=(-2, -1))


class Student(PluginOptions, ABC):
    """A symbolic (or tree) model fitted to the teacher's predictions, scikit-learn style.

    Inputs to ``fit``/``predict`` are standardized arrays (n×d) and a 1-d target. After ``fit``
    the student exposes its model as a sympy expression over sympy Symbols named ``x0 … x{d-1}``;
    the pipeline renames them to feature names and undoes the standardization.

    A fitted student must pickle, and predict exactly as before once loaded: a pickled
    ``Distiller`` carries its student and those of its search's trials. Python, numpy and
    scikit-learn state pickles as it is. A student that holds objects which do not (handles into
    C++ or Julia) drops them after ``fit`` if ``predict``, ``expression`` and ``complexity`` do not
    need them (the Operon student drops pyoperon's final population), or else defines
    ``__getstate__`` to store a picklable form of them (a model string, node list or sympy
    expression) and ``__setstate__`` to rebuild them from it.
    """

    kind = "student"
    jobs: int = 1  # cores one fit may use; the distiller sets it (its ``jobs``) before ``fit``

    def __init__(self, seed: int = 0, **options: Any):
        self.seed = seed
        self.options = self.resolve_options(options)

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray) -> Student:
        """Fit to (X, y) and return self."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions of the fitted model, shape (n,)."""

    @abstractmethod
    def expression(self) -> sympy.Expr:
        """The fitted model as a sympy expression over Symbols ``x0 … x{d-1}``."""

    def complexity(self) -> int:
        """Model size: nodes of the expression tree (trees override this with their leaf count)."""
        return count_nodes(self.expression())

    def candidates(self) -> list[Candidate]:
        """The fitted models this student offers, from simple to complex: its accuracy–complexity
        front before scoring (``jacdistill.fronts.front`` scores them on the training rows and keeps
        the non-dominated ones). A student with one model offers that one (a front of one);
        symbolic regressors override this with their Pareto front, trees with their pruning path."""
        return [Candidate(self.complexity(), self.expression, self.predict)]


class Candidate:
    """One model of a student's front: its ``complexity`` (the student's measure, as
    :meth:`Student.complexity`), its sympy ``expression`` over ``x0 … x{d-1}`` (built on first use
    from ``build``), and its predictions on standardized rows (from ``native``, the student's own
    evaluator, while the candidate is live; from the expression once pickled, since native
    evaluators may hold C++ or Julia objects). The expression must compute what ``native`` does.
    ``error``: its mean squared error on the rows the student was fitted to, set when the front
    is scored (``jacdistill.fronts.front``)."""

    def __init__(
        self,
        complexity: int,
        build: Callable[[], sympy.Expr],
        native: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        self.complexity, self._build, self._native = int(complexity), build, native
        self._expression: sympy.Expr | None = None
        self._compiled: Callable | None = None
        self.error = math.nan

    @property
    def expression(self) -> sympy.Expr:
        if self._expression is None:
            self._expression = self._build()
        return self._expression

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions on standardized rows (n×d), float64 (n,)."""
        if self._native is not None:
            values = self._native(X)
        else:
            if self._compiled is None:
                self._compiled = numpy_function(variables(X.shape[1]), self.expression)
            with np.errstate(all="ignore"):  # numpy evaluates every branch of a Piecewise
                values = self._compiled(*np.asarray(X, dtype=np.float64).T)
        return np.broadcast_to(np.asarray(values, dtype=np.float64), (len(X),)).reshape(-1).copy()

    def __getstate__(self) -> dict:
        # the expression, not the evaluators: native ones may not pickle, compiled ones never do
        return {"complexity": self.complexity, "expression": self.expression, "error": self.error}

    def __setstate__(self, state: dict) -> None:
        expression = state["expression"]
        self.__init__(state["complexity"], lambda: expression)  # type: ignore[misc]
        self._expression, self.error = expression, state["error"]

    def __repr__(self) -> str:
        return f"Candidate(complexity={self.complexity}, error={self.error:.4g})"


def count_nodes(expr: sympy.Expr) -> int:
    """Number of nodes in the expression tree (operators, variables and constants)."""
    return sum(1 for _ in sympy.preorder_traversal(expr))


def _select(condlist, choicelist, default=0.0):
    # sympy prints a condition built of nested ITEs as a select of booleans whose nan default makes
    # it a float array, and numpy >= 2 refuses non-boolean conditions: cast them back. Such a
    # select ends in a True branch, so its nan never reaches the cast.
    return np.select([np.asarray(c, dtype=bool) for c in condlist], choicelist, default)


class _NumPyPrinter(NumPyPrinter):
    """Prints ``c*exp(a)*…`` with a float ``c`` as ``±exp(a + log|c|)*…``. sympy takes a float
    term out of an exponential's argument (``exp(0.44*t - 884.3)`` becomes
    ``4.6e-385*exp(0.44*t)``), a product whose factors lie beyond float64 where their value
    does not: evaluated as written it gives 0·∞ = NaN."""

    def _print_Mul(self, expr):
        coeff, rest = expr.as_coeff_Mul()
        factors = sympy.Mul.make_args(rest)
        exponential = next((f for f in factors if isinstance(f, sympy.exp)), None)
        if not isinstance(coeff, sympy.Float) or coeff == 0 or exponential is None:
            return super()._print_Mul(expr)
        shift = sympy.log(abs(coeff))  # evaluated by sympy: the float may be out of float64's range
        argument = f"{self._print(exponential.args[0])} + ({self._print(shift)})"
        folded = f"{self._module_format('numpy.exp')}({argument})"
        others = [self.parenthesize(f, precedence(expr)) for f in factors if f is not exponential]
        return ("-" if coeff < 0 else "") + "*".join([folded, *others])


def numpy_function(args: list[sympy.Symbol], expr: sympy.Expr) -> Callable:
    """``sympy.lambdify(args, expr)`` over numpy, for every Piecewise a student's formula can hold,
    and for float factors of exponentials beyond float64 (:class:`_NumPyPrinter`)."""
    printer = _NumPyPrinter(  # the settings lambdify gives its own numpy printer
        {
            "fully_qualified_modules": False,
            "inline": True,
            "allow_unknown_functions": True,
            "user_functions": {"select": "select"},
        }
    )
    return sympy.lambdify(args, expr, [{"select": _select}, "numpy"], printer=printer)


def variables(n_features: int) -> list[sympy.Symbol]:
    """The Symbols ``x0 … x{n-1}`` that student expressions are written over."""
    return [sympy.Symbol(f"x{i}", real=True) for i in range(n_features)]
