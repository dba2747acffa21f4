"""``gplearn``: genetic-programming symbolic regression (gplearn.SymbolicRegressor)."""

import functools
import numbers

import sympy

from jacdistill import JacdistillError, hookimpl
from jacdistill.adapters import EstimatorStudent
from jacdistill.contracts import Candidate, variables
from jacdistill.options import Boolean, Interval, ListOf, OneOf


def _protected(value, guard, fallback):
    """gplearn's protection: ``value`` where |guard| > 0.001, else the constant ``fallback``."""
    return sympy.Piecewise((value, sympy.Abs(guard) > PROTECTION), (fallback, True))


PROTECTION = 0.001
# gplearn's built-in functions in sympy, protected ones included exactly as gplearn computes them.
FUNCTIONS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: _protected(a / b, b, 1),
    "sqrt": lambda a: sympy.sqrt(sympy.Abs(a)),
    "log": lambda a: _protected(sympy.log(sympy.Abs(a)), a, 0),
    "abs": sympy.Abs,
    "neg": lambda a: -a,
    "inv": lambda a: _protected(1 / a, a, 0),
    "max": sympy.Max,
    "min": sympy.Min,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
}
# The chances of gplearn's genetic operations; the rest of each generation is reproduction.
OPERATIONS = ("p_crossover", "p_subtree_mutation", "p_hoist_mutation", "p_point_mutation")


class GplearnStudent(EstimatorStudent):
    """gplearn with a small budget; its program (prefix list) is converted node by node."""

    name = "gplearn"
    defaults = {
        "population_size": 1000,
        "generations": 20,
        "tournament_size": 20,
        "function_set": ("add", "sub", "mul", "div", "sin", "cos"),
        "parsimony_coefficient": 0.001,
        "p_crossover": 0.7,
        "p_subtree_mutation": 0.1,
        "p_hoist_mutation": 0.05,
        "p_point_mutation": 0.1,
        "max_samples": 1.0,
        "n_jobs": 1,  # gplearn's process pool is slower than one core at these budgets (measured)
    }
    constraints = {
        "population_size": Interval(int, 1, None),
        "generations": Interval(int, 1, None),
        "tournament_size": Interval(int, 1, None),
        "function_set": ListOf(OneOf(*FUNCTIONS)),
        "parsimony_coefficient": [Interval(float, 0, None), OneOf("auto")],
        **{p: Interval(float, 0, 1) for p in OPERATIONS},
        "p_point_replace": Interval(float, 0, 1),
        "max_samples": Interval(float, 0, 1, closed="right"),
        "n_jobs": [Interval(int, 1, None), Interval(int, None, -1)],
        "init_method": OneOf("half and half", "grow", "full"),
        "warm_start": Boolean,
        "low_memory": Boolean,
    }

    @classmethod
    def check_options(cls, options):
        total = sum(options[p] for p in OPERATIONS)
        if total > 1:
            raise JacdistillError(
                f"student 'gplearn': options {', '.join(OPERATIONS)} must sum to at most 1, got {total:g}"
            )

    @classmethod
    def estimator_class(cls):
        from gplearn.genetic import SymbolicRegressor

        return SymbolicRegressor

    def expression(self):
        return to_sympy(self.estimator_._program.program, self.n_features_)

    def complexity(self):
        """Nodes of gplearn's program (the protection guards of the exact expression not counted)."""
        return int(self.estimator_._program.length_)

    def candidates(self):
        """The final generation's distinct programs (the best, ``_program``, among them): scoring
        them with gplearn's own evaluator is cheap, and only the kept ones are converted."""
        programs = {}
        for program in self.estimator_._programs[-1]:
            # repr, not str (which rounds constants), and not the nodes (feature 0 == constant 0.0)
            key = tuple(getattr(node, "name", None) or repr(node) for node in program.program)
            programs.setdefault(key, program)
        return [
            Candidate(p.length_, functools.partial(to_sympy, p.program, self.n_features_), p.execute)
            for p in programs.values()
        ]


def to_sympy(program, n_features):
    """A gplearn program (prefix list of functions, feature indices and constants) in sympy."""
    x, nodes = variables(n_features), iter(program)

    def build():
        item = next(nodes)
        if isinstance(item, numbers.Integral):
            return x[item]
        if isinstance(item, numbers.Real):
            return sympy.Float(item)
        if item.name not in FUNCTIONS:
            raise ValueError(f"gplearn function '{item.name}' has no sympy translation")
        return FUNCTIONS[item.name](*(build() for _ in range(item.arity)))

    return build()


@hookimpl
def register_students(register):
    register(GplearnStudent)
