"""The run directory's figures: fronts and fitted curves, drawn with hostile names and bad values."""

import math
import warnings

import numpy as np
import pytest

from jacdistill import run_plots, storage

NAMES = ["a$x^2$b", "a$x_$b", "a$\\foo$b", "back\\slash", "under_score"]  # $x_$, $\foo$: bad mathtext


def is_png(path) -> bool:
    return path.read_bytes().startswith(b"\x89PNG")


@pytest.fixture
def drawn(monkeypatch):
    """The figures handed to ``write_figure``, which still writes them."""
    figures = []
    write = storage.write_figure

    def keep(path, figure):
        figures.append(figure)
        write(path, figure)

    monkeypatch.setattr(storage, "write_figure", keep)
    return figures


def front(r2s: list, chosen: int) -> list[dict]:
    return [
        {"complexity": 2 * k + 1, "student_r2_val": r2, "chosen": k == chosen} for k, r2 in enumerate(r2s)
    ]


def test_fronts_are_drawn_with_hostile_labels_and_bad_r2(tmp_path, drawn):
    fronts = {
        "regularized (λ = 0.01)": front([0.2, 0.7, float("nan"), 0.93, 0.94], chosen=3),
        "baseline (λ = 0)": front([0.1, None, -40.0, 0.8], chosen=3),  # blown up: clipped
        **{name: front([0.3, 0.5], chosen=0) for name in NAMES},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_plots.plot_front(fronts, tmp_path / "front.png", title=NAMES[0])
    assert is_png(tmp_path / "front.png")
    (axes,) = drawn[0].axes
    assert axes.get_ylim()[0] == pytest.approx(run_plots.R2_FLOOR - 0.05)
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert lines["regularized (λ = 0.01)"].get_color() == "C1"
    assert lines["baseline (λ = 0)"].get_color() == "C0"
    assert list(lines["baseline (λ = 0)"].get_xdata()) == [1, 5, 7]  # None left out
    assert [t.get_text() for t in axes.texts][:2] == [
        "chosen: 7 nodes, R² = 0.930",
        "chosen: 7 nodes, R² = 0.800",
    ]


def test_a_front_without_finite_r2_is_still_drawn(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_plots.plot_front({"baseline": front([math.nan, None], chosen=0)}, tmp_path / "front.png")
    assert is_png(tmp_path / "front.png")


def teacher(X: np.ndarray) -> np.ndarray:
    """Depends on columns 7, 2 and 5 (in that order of range along the sweeps), on no other."""
    return 3 * X[:, 7] + 2 * np.sin(X[:, 2]) + 0.1 * X[:, 5]


def data(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_important_features_are_those_the_teacher_depends_on():
    X = data(500, 10)
    assert run_plots.important_features(teacher, X, 3) == [7, 2, 5]
    assert run_plots.important_features(teacher, X, 20)[:3] == [7, 2, 5]
    assert sorted(run_plots.important_features(teacher, X, 20)) == list(range(10))


@pytest.mark.parametrize("d", [1, 3, 10])
def test_fits_are_drawn_one_panel_per_important_feature(tmp_path, drawn, d):
    X = data(3000, d)
    X[:, -1] = 4.0  # a constant feature
    n_panels = min(d, 6)
    curve = (lambda X: teacher(X)) if d == 10 else (lambda X: 2 * X[:, 0] + X.sum(axis=1))
    curves = {
        "teacher": curve,
        "formula (regularized)": lambda X: curve(X) + 0.1,
        "formula (baseline)": lambda X: 1 / X[:, 0] + np.log(X[:, 0]),  # inf, NaN and huge values
        NAMES[0]: lambda X: np.full(len(X), np.inf),  # never finite
    }
    names = [NAMES[k % len(NAMES)] + str(k) for k in range(d)]
    y = curve(X) + data(3000, 1, seed=1)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_plots.plot_fit(X, y, names, NAMES[1], curves, tmp_path / "fit.png")
    assert is_png(tmp_path / "fit.png")
    figure = drawn[0]
    panels = [axes for axes in figure.axes if axes.axison]
    assert len(panels) == n_panels
    expected = run_plots.important_features(curve, X, 6)
    assert [axes.get_title() for axes in panels] == [names[j] for j in expected]
    if d == 10:
        assert expected[:3] == [7, 2, 5]
    assert figure.get_size_inches()[0] <= 15
    assert len(panels[0].collections[0].get_offsets()) == run_plots.MAX_SCATTER
    low, high = panels[0].get_ylim()
    assert y.min() - 2 * np.ptp(y) <= low and high <= y.max() + 2 * np.ptp(y)  # blow-ups clipped


def test_a_failing_curve_is_a_warning_not_an_error(tmp_path):
    def broken(X):
        raise ValueError("no")

    with pytest.warns(UserWarning, match="could not draw"):
        run_plots.plot_fit(
            data(50, 2), np.zeros(50), ["a", "b"], "y", {"teacher": broken}, tmp_path / "f.png"
        )
    assert not (tmp_path / "f.png").exists()
