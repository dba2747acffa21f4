"""``operon``: Operon's fast C++ genetic programming with local constant optimisation (pyoperon)."""
from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations

from jacdistill import hookimpl
from jacdistill.adapters import EstimatorStudent
from jacdistill.contracts import variables


class OperonStudent(EstimatorStudent):
    """pyoperon's SymbolicRegressor; its infix model string (variables X1…Xd) is parsed by sympy."""

    name = "operon"
    defaults = {"allowed_symbols": "add,sub,mul,div,constant,variable,sin,cos,exp,tanh",
                "population_size": 500, "generations": 100, "max_evaluations": 200_000,
                "max_length": 30, "optimizer_iterations": 5, "n_threads": 1}

    @classmethod
    def estimator_class(cls):
        from pyoperon.sklearn import SymbolicRegressor
        return SymbolicRegressor

    def expression(self):
        text = self.estimator_.get_model_string(self.estimator_.model_, 17)
        names = {f"X{i + 1}": x for i, x in enumerate(variables(self.n_features_))}
        return parse_expr(text, local_dict=names, transformations=standard_transformations + (convert_xor,))


@hookimpl
def register_students(register):
    register(OperonStudent)
