"""``tree``: a scikit-learn decision tree, the non-symbolic control student."""

import functools

import numpy as np
import sympy
from sklearn.base import clone
from sklearn.tree import DecisionTreeRegressor

from jacdistill import hookimpl
from jacdistill.adapters import EstimatorStudent
from jacdistill.contracts import Candidate, variables
from jacdistill.options import Interval, OneOf


class TreeStudent(EstimatorStudent):
    """Decision tree; its expression is a nested Piecewise and its complexity the leaf count.

    Its front is the cost-complexity pruning path: the tree pruned at each of the path's alphas,
    from the fitted tree itself (the most accurate) down to a single leaf."""

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

    def fit(self, X, y):
        super().fit(X, y)
        # The same tree grown again (same parameters and random state) and pruned at each alpha
        # beyond the student's own; one tree per leaf count, since alphas that differ by rounding
        # alone prune alike.
        own = self.estimator_.ccp_alpha
        self.pruned_ = {self.complexity(): self.estimator_}
        for alpha in self.estimator_.cost_complexity_pruning_path(X, y).ccp_alphas:
            if alpha > own:
                pruned = clone(self.estimator_).set_params(ccp_alpha=alpha).fit(X, y)
                self.pruned_.setdefault(int(pruned.get_n_leaves()), pruned)
        return self

    def expression(self):
        return to_sympy(self.estimator_.tree_, self.n_features_)

    def complexity(self):
        return int(self.estimator_.get_n_leaves())

    def candidates(self):
        return [
            Candidate(leaves, functools.partial(to_sympy, tree.tree_, self.n_features_), tree.predict)
            for leaves, tree in self.pruned_.items()
        ]


def to_sympy(tree, n_features):
    """A fitted sklearn ``tree_`` as a nested Piecewise over ``x0 … x{n-1}``."""
    x = variables(n_features)

    def node(i):
        if tree.children_left[i] == -1:
            return sympy.Float(float(np.ravel(tree.value[i])[0]))
        test = x[tree.feature[i]] <= sympy.Float(float(tree.threshold[i]))
        return sympy.Piecewise((node(tree.children_left[i]), test), (node(tree.children_right[i]), True))

    return node(0)


@hookimpl
def register_students(register):
    register(TreeStudent)
