"""``pysr``: PySR 2.x (Julia's SymbolicRegression.jl). Imported lazily: it needs a working Julia."""

import contextlib
import functools
import importlib.util
import io

from jacdistill import hookimpl
from jacdistill.adapters import EstimatorStudent
from jacdistill.contracts import Candidate, count_nodes, variables
from jacdistill.options import Boolean, Interval, ListOf, OneOf, Text


@functools.cache
def _import_problem() -> str | None:
    """Why ``import pysr`` fails here, or None. Importing PySR locates (or installs) Julia."""
    if importlib.util.find_spec("pysr") is None:
        return "needs the pysr package, which is not installed: pip install 'jacdistill[pysr]'"
    chatter = io.StringIO()  # juliapkg reports its progress on stdout/stderr
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            import pysr  # noqa: F401
    except Exception as exc:  # not only ImportError: without Julia, juliapkg raises URLError etc.
        if isinstance(exc, OSError):  # URLError included: no Julia, and no way to download one
            detail = "none is installed and juliapkg could not download one"
        else:
            detail = f"importing pysr failed ({type(exc).__name__}: {exc})".splitlines()[0]
        return f"needs Julia, which is not available here: {detail}; try --student operon"
    return None


class PySRStudent(EstimatorStudent):
    """PySRRegressor, serial and seeded so that a seed gives the same formula."""

    name = "pysr"
    defaults = {
        "niterations": 40,
        "populations": 15,
        "maxsize": 30,
        "binary_operators": ["+", "-", "*", "/"],
        "unary_operators": ["sin", "cos", "exp"],
        "parallelism": "serial",
        "deterministic": True,
        "progress": False,
        "verbosity": 0,
        "temp_equation_file": True,
    }
    constraints = {
        "niterations": Interval(int, 1, None),
        "populations": Interval(int, 1, None),
        "population_size": Interval(int, 1, None),
        "maxsize": Interval(int, 7, None),
        "maxdepth": [Interval(int, 1, None), None],
        "binary_operators": ListOf(Text, allow_empty=True),
        "unary_operators": ListOf(Text, allow_empty=True),
        "parallelism": [OneOf("serial", "multithreading", "multiprocessing"), None],
        "deterministic": Boolean,
        "progress": Boolean,
        "verbosity": Interval(int, 0, None),
        "temp_equation_file": Boolean,
    }

    @classmethod
    def check_options(cls, options):
        if options["deterministic"] and options["parallelism"] != "serial":
            raise cls.option_error(
                "parallelism", "'serial' while deterministic is true", options["parallelism"]
            )

    @classmethod
    def unavailable_reason(cls):
        return _import_problem()

    @classmethod
    def estimator_class(cls):
        from pysr import PySRRegressor

        return PySRRegressor

    def _renamed(self, expr):
        """PySR's sympy expression over our real ``x0 … x{d-1}`` (PySR's symbols have no assumptions)."""
        by_name = {x.name: x for x in variables(self.n_features_)}
        return expr.xreplace({s: by_name[s.name] for s in expr.free_symbols if s.name in by_name})

    def expression(self):
        return self._renamed(self.estimator_.sympy())

    def candidates(self):
        """PySR's hall of fame, one equation per complexity; complexity as ``complexity()``
        (nodes of the expression, not PySR's own measure). ``lambda_format`` takes the full X."""
        members = []
        for row in self.estimator_.equations_.itertuples():
            expr = self._renamed(row.sympy_format)
            members.append(Candidate(count_nodes(expr), lambda expr=expr: expr, row.lambda_format))
        return members


@hookimpl
def register_students(register):
    register(PySRStudent)
