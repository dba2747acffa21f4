"""``operon``: Operon's fast C++ genetic programming with local constant optimisation (pyoperon)."""

import functools

from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations

from jacdistill import hookimpl
from jacdistill.adapters import EstimatorStudent
from jacdistill.contracts import Candidate, count_nodes, variables
from jacdistill.options import Boolean, Interval, ListOf, OneOf, Text

# pyoperon 0.6's fitness objectives (its _VALID_OBJECTIVES); more than one runs NSGA-II
OBJECTIVES = "r2 c2 nmse rmse mse mae length shape diversity mdl poisson gauss".split()
CRITERIA = (
    "mean_squared_error",
    "minimum_description_length",
    "bayesian_information_criterion",
    "akaike_information_criterion",
)


class OperonStudent(EstimatorStudent):
    """pyoperon's SymbolicRegressor; its infix model string (variables X1…Xd) is parsed by sympy.

    By default it runs NSGA-II on accuracy and length, so that its Pareto front is the student's
    accuracy–complexity front, and its own model is the front's most accurate member (as a
    single-objective run's best model was)."""

    name = "operon"
    jobs_parameter = "n_threads"  # Operon's result does not depend on its thread count (checked)
    defaults = {
        "allowed_symbols": "add,sub,mul,div,constant,variable,sin,cos,exp,tanh",
        "population_size": 500,
        "generations": 100,
        "max_evaluations": 200_000,
        "max_length": 30,
        "optimizer_iterations": 5,
        "objectives": ("r2", "length"),
        "model_selection_criterion": "mean_squared_error",
    }
    constraints = {
        "allowed_symbols": Text,
        "population_size": Interval(int, 1, None),
        "generations": Interval(int, 1, None),
        "max_evaluations": Interval(int, 1, None),
        "max_length": Interval(int, 3, None),  # shorter crashes Operon
        "max_depth": Interval(int, 1, None),
        "optimizer_iterations": Interval(int, 0, None),
        "n_threads": Interval(int, 1, None),
        "tournament_size": Interval(int, 1, None),
        "crossover_probability": Interval(float, 0, 1),
        "mutation_probability": Interval(float, 0, 1),
        "optimizer": OneOf("lm", "lbfgs", "sgd"),
        "symbolic_mode": Boolean,
        "objectives": ListOf(OneOf(*OBJECTIVES)),
        "model_selection_criterion": OneOf(*CRITERIA),
    }

    @classmethod
    def estimator_class(cls):
        from pyoperon.sklearn import SymbolicRegressor

        return SymbolicRegressor

    def fit(self, X, y):
        super().fit(X, y)
        # The final population: pyoperon objects that do not pickle, read only when this estimator
        # is fitted again with warm_start, which a student never does (each fit makes a new one).
        # The Pareto front's trees (linear scaling included) pickle, and stay.
        del self.estimator_.individuals_
        return self

    def _parse(self, tree):
        # precision counts decimals: 17 round-trip every float32 constant above 1e-8
        text = self.estimator_.get_model_string(tree, 17)
        names = {f"X{i + 1}": x for i, x in enumerate(variables(self.n_features_))}
        return parse_expr(text, local_dict=names, transformations=standard_transformations + (convert_xor,))

    def expression(self):
        return self._parse(self.estimator_.model_)

    def candidates(self):
        """Operon's Pareto front; complexity as ``complexity()``: nodes of the parsed expression."""
        members = []
        for member in self.estimator_.pareto_front_:
            expr = self._parse(member["tree"])
            native = functools.partial(self.estimator_.evaluate_model, member["tree"])
            members.append(Candidate(count_nodes(expr), lambda expr=expr: expr, native))
        return members


@hookimpl
def register_students(register):
    register(OperonStudent)
