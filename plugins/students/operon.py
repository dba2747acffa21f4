"""``operon``: Operon's fast C++ genetic programming with local constant optimisation (pyoperon)."""

from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations

from jacdistill import hookimpl
from jacdistill.adapters import EstimatorStudent
from jacdistill.contracts import variables
from jacdistill.options import Boolean, Interval, OneOf, Text


class OperonStudent(EstimatorStudent):
    """pyoperon's SymbolicRegressor; its infix model string (variables X1…Xd) is parsed by sympy."""

    name = "operon"
    jobs_parameter = "n_threads"  # Operon's result does not depend on its thread count (checked)
    defaults = {
        "allowed_symbols": "add,sub,mul,div,constant,variable,sin,cos,exp,tanh",
        "population_size": 500,
        "generations": 100,
        "max_evaluations": 200_000,
        "max_length": 30,
        "optimizer_iterations": 5,
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
    }

    @classmethod
    def estimator_class(cls):
        from pyoperon.sklearn import SymbolicRegressor

        return SymbolicRegressor

    def fit(self, X, y):
        super().fit(X, y)
        # The final population: pyoperon objects that do not pickle, read only when this estimator
        # is fitted again with warm_start, which a student never does (each fit makes a new one).
        del self.estimator_.individuals_
        return self

    def expression(self):
        text = self.estimator_.get_model_string(self.estimator_.model_, 17)
        names = {f"X{i + 1}": x for i, x in enumerate(variables(self.n_features_))}
        return parse_expr(text, local_dict=names, transformations=standard_transformations + (convert_xor,))


@hookimpl
def register_students(register):
    register(OperonStudent)
