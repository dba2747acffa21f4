"""``tree``: a scikit-learn decision tree, the non-symbolic control student."""
import numpy as np
import sympy
from sklearn.tree import DecisionTreeRegressor

from jacdistill import hookimpl
from jacdistill.adapters import EstimatorStudent
from jacdistill.contracts import variables


class TreeStudent(EstimatorStudent):
    """Decision tree; its expression is a nested Piecewise and its complexity the leaf count."""

    name = "tree"
    defaults = {"max_depth": 6, "min_samples_leaf": 5}

    @classmethod
    def estimator_class(cls):
        return DecisionTreeRegressor

    def expression(self):
        tree, x = self.estimator_.tree_, variables(self.n_features_)

        def node(i):
            if tree.children_left[i] == -1:
                return sympy.Float(float(np.ravel(tree.value[i])[0]))
            test = x[tree.feature[i]] <= sympy.Float(float(tree.threshold[i]))
            return sympy.Piecewise((node(tree.children_left[i]), test),
                                   (node(tree.children_right[i]), True))

        return node(0)

    def complexity(self):
        return int(self.estimator_.get_n_leaves())


@hookimpl
def register_students(register):
    register(TreeStudent)
