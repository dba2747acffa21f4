"""``tree``: a scikit-learn decision tree, the non-symbolic control student."""

import numpy as np
import sympy
from sklearn.tree import DecisionTreeRegressor

from jacdistill import hookimpl
from jacdistill.adapters import EstimatorStudent
from jacdistill.contracts import variables
from jacdistill.options import Interval, OneOf


class TreeStudent(EstimatorStudent):
    """Decision tree; its expression is a nested Piecewise and its complexity the leaf count."""

    name = "tree"
    defaults = {"max_depth": 6, "min_samples_leaf": 5}
    constraints = {  # a float is a fraction: of the training rows, of the features
        "max_depth": [Interval(int, 1, None), None],
        "min_samples_leaf": [Interval(int, 1, None), Interval(float, 0, 1, closed="neither")],
        "max_features": [
            Interval(int, 1, None),
            Interval(float, 0, 1, closed="right"),
            OneOf("sqrt", "log2"),
            None,
        ],
        "max_leaf_nodes": [Interval(int, 2, None), None],
        "criterion": OneOf("squared_error", "friedman_mse", "absolute_error", "poisson"),
        "splitter": OneOf("best", "random"),
        "ccp_alpha": Interval(float, 0, None),
    }

    @classmethod
    def estimator_class(cls):
        return DecisionTreeRegressor

    def expression(self):
        tree, x = self.estimator_.tree_, variables(self.n_features_)

        def node(i):
            if tree.children_left[i] == -1:
                return sympy.Float(float(np.ravel(tree.value[i])[0]))
            test = x[tree.feature[i]] <= sympy.Float(float(tree.threshold[i]))
            return sympy.Piecewise((node(tree.children_left[i]), test), (node(tree.children_right[i]), True))

        return node(0)

    def complexity(self):
        return int(self.estimator_.get_n_leaves())


@hookimpl
def register_students(register):
    register(TreeStudent)
