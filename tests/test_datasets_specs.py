"""Dataset specs: one grammar (bundled name, file path, feynman:…) for run, tune and sweep."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from jacdistill.cli import cli
from jacdistill.data import load_bundled, load_spec, spec_name
from jacdistill.options import JacdistillError
from jacdistill.trials import trial_path

SAFE = re.compile(r"[A-Za-z0-9._+-]+")


def invoke(*args: str):
    """The CLI in this process; stderr apart from stdout."""
    return CliRunner().invoke(cli, list(args))


def assert_one_line_error(result, *fragments: str) -> str:
    shown = f"exit={result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.exit_code == 2, shown
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    for fragment in fragments:
        assert fragment in lines[0], shown
    return lines[0]


def test_a_bundled_name_loads_the_bundled_dataset():
    table, bundled = load_spec("yacht"), load_bundled("yacht")
    assert table.name == spec_name("yacht") == "yacht"
    assert np.array_equal(table.X, bundled.X) and np.array_equal(table.y, bundled.y)
    assert table.y_true is None and table.formula is None
    assert load_spec("yacht", target=bundled.target_name).name == "yacht"  # its own target is fine


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_path_loads_the_file_with_the_last_or_a_named_target(tmp_path, suffix):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=40), "power": rng.normal(size=40), "b": rng.normal(size=40)})
    path = tmp_path / f"my data{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    last, named = load_spec(str(path)), load_spec(str(path), target="power")
    assert last.target_name == "b" and last.feature_names == ["a", "power"]
    assert named.target_name == "power" and named.feature_names == ["a", "b"]
    assert last.name == spec_name(str(path)) == "my data" and last.y_true is None


def test_a_feynman_spec_is_named_safely_and_defaults_leave_the_name():
    spec = "feynman:I.6.2?n=100&noise=0.1"
    table = load_spec(spec)
    assert table.name == spec_name(spec) == spec_name("feynman:I.6.2?noise=0.1&n=100")
    assert table.name == "feynman-I.6.2-n100-noise0.1"
    assert spec_name("feynman:I.6.2?n=1000&noise=0&seed=0") == spec_name("feynman:I.6.2") == "feynman-I.6.2"
    assert spec_name("feynman:II.6.15a?noise=1e-05&seed=7") == "feynman-II.6.15a-noise1e-05-seed7"
    assert spec_name("feynman:I.6.2?noise=1") == "feynman-I.6.2-noise1"
    for name in (table.name, spec_name("feynman:I.6.2?noise=0.123456789")):
        assert SAFE.fullmatch(name), name
        path = trial_path(Path("s"), name, "tree", "direct", 0)
        assert path.parent.name == "trials" and path.name.startswith(name + "__")
    assert table.X.shape == (100, 2) and table.feature_names == ["sigma", "theta"]
    assert table.target_name == "f" and table.y_true.shape == (100,)
    assert {s.name for s in table.formula.free_symbols} == {"sigma", "theta"}


BAD_SPECS = {
    "unknown-equation": ("feynman:I.6.3", ["unknown Feynman equation 'I.6.3'", "I.6.2", "--feynman"]),
    "no-equation": ("feynman:", ["names no equation", "feynman:I.6.2?"]),
    "few-rows": ("feynman:I.6.2?n=19", ["n must be an integer from 20", "'19'"]),
    "float-rows": ("feynman:I.6.2?n=100.5", ["n must be an integer", "'100.5'"]),
    "text-rows": ("feynman:I.6.2?n=many", ["n must be an integer", "'many'"]),
    "too-many-rows": ("feynman:I.6.2?n=10000000000", ["n must be an integer from 20 to 1000000"]),
    "negative-noise": ("feynman:I.6.2?noise=-0.1", ["noise must be a finite number >= 0", "'-0.1'"]),
    "infinite-noise": ("feynman:I.6.2?noise=inf", ["noise must be a finite number >= 0"]),
    "negative-seed": ("feynman:I.6.2?seed=-1", ["seed must be an integer >= 0"]),
    "unknown-key": ("feynman:I.6.2?rows=100", ["unknown key 'rows'", "n, noise, seed"]),
    "no-value": ("feynman:I.6.2?n", ["expected KEY=VALUE", "'n'"]),
    "empty-pair": ("feynman:I.6.2?n=100&&seed=1", ["expected KEY=VALUE"]),
    "twice": ("feynman:I.6.2?n=100&n=200", ["'n' given twice"]),
    "unknown-name": ("nosuch", ["unknown dataset 'nosuch'", "airfoil", "feynman:EQUATION"]),
    "equation-without-prefix": ("I.6.2", ["unknown dataset 'I.6.2'", "did you mean feynman:I.6.2?"]),
    "missing-file": ("nope.csv", ["data file not found", "nope.csv"]),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_a_bad_spec_is_a_one_line_error(case):
    spec, fragments = BAD_SPECS[case]
    with pytest.raises(JacdistillError) as caught:
        load_spec(spec)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_only_a_file_takes_a_target():
    for spec in ("yacht", "feynman:I.6.2"):
        with pytest.raises(JacdistillError, match="--target names a column of a data file"):
            load_spec(spec, target="zz")
    assert load_spec("feynman:I.6.2?n=50", target="f").target_name == "f"


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--dataset", "feynman:I.6.2?n=10"], ["n must be an integer from 20"]),
        (["--dataset", "feynman:nosuch"], ["unknown Feynman equation 'nosuch'"]),
        (["--dataset", "feynman:I.6.2?noise=-1"], ["noise must be"]),
        (["--dataset", "feynman:I.6.2?bad=1"], ["unknown key 'bad'"]),
        (["--dataset", "feynman:I.6.2", "--target", "zz"], ["--target"]),
        (["--dataset", "nosuch"], ["unknown dataset 'nosuch'"]),
    ],
)
def test_the_cli_refuses_a_bad_spec_in_one_line(tmp_path, args, fragments):
    for command in ("run", "tune"):
        result = invoke(command, *args, "--student", "tree", "--out", str(tmp_path / command))
        assert_one_line_error(result, *fragments)
        assert not (tmp_path / command).exists()
    if "--target" not in args:  # sweep has no --target
        result = invoke("sweep", "--datasets", args[1], "--students", "tree", "--out", str(tmp_path / "s"))
        assert_one_line_error(result, *fragments)
        assert not (tmp_path / "s").exists()


def test_datasets_help_and_feynman_listing():
    helped = invoke("datasets", "--help")
    assert helped.exit_code == 0 and "feynman:EQ?n=N&noise=L&seed=S" in helped.stdout
    listed = invoke("datasets", "--feynman")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert len(lines) == 101 and lines[1].split()[0] == "I.6.2a"
    rows = json.loads(invoke("datasets", "--feynman", "--json").stdout)
    assert len(rows) == 100
    assert {"name": "I.6.2", "variables": ["sigma", "theta"], "target": "f"}.items() <= rows[1].items()


def test_a_run_on_a_feynman_spec(tmp_path):
    spec = "feynman:I.12.1?n=200&noise=0.01&seed=3"
    out = tmp_path / "r"
    result = invoke(
        "run", "--dataset", spec, "--regularizer", "none", "--student", "tree", "--epochs", "3",
        "--no-baseline", "--json", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["dataset"] == "feynman-I.12.1-n200-noise0.01-seed3"
    assert metrics["formula"].startswith("F = ")
    assert metrics["rows"] == {"train": 140, "val": 30, "test": 30}
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == metrics["dataset"] and config["dataset_spec"] == spec
    assert config["features"] == ["mu", "Nn"] and config["target"] == "F"


def test_a_sweep_names_trials_by_the_spec_name(tmp_path):
    from jacdistill import sweep
    from jacdistill.report.loading import load_trials

    spec = sweep.spec_from(
        None,
        {"datasets": ("feynman:I.12.1?n=100&noise=0.1", "yacht"), "students": ("tree",),
         "seeds": (0,), "arms": ("direct",)},
        {}, {},
    )  # fmt: skip
    sweep.check(spec)
    sweep.prepare(tmp_path, spec)
    assert [unit for unit, _ in sweep.missing(tmp_path, spec)][0][0] == "feynman:I.12.1?n=100&noise=0.1"
    assert sweep.run_unit(spec, str(tmp_path), ("feynman:I.12.1?n=100&noise=0.1", "tree", 0)) == 1
    name = "feynman-I.12.1-n100-noise0.1"
    assert (tmp_path / "trials" / f"{name}__tree__direct__seed0.json").is_file()
    assert [unit for unit, _ in sweep.missing(tmp_path, spec)] == [("yacht", "tree", 0)]
    assert [t["dataset"] for t in load_trials(tmp_path)] == [name]


def test_a_sweep_refuses_two_specs_of_one_name(tmp_path):
    from jacdistill import sweep

    yacht = load_bundled("yacht")  # and a file named like it
    frame = pd.DataFrame(yacht.X, columns=yacht.feature_names).assign(y=yacht.y)
    frame.to_csv(tmp_path / "yacht.csv", index=False)
    for datasets, named in [
        (("feynman:I.12.1", "feynman:I.12.1?n=1000&seed=0"), "feynman-I.12.1"),
        (("yacht", str(tmp_path / "yacht.csv")), "yacht"),
    ]:
        spec = sweep.spec_from(None, {"datasets": datasets, "students": ("tree",)}, {}, {})
        with pytest.raises(JacdistillError, match=f"are both named '{named}'"):
            sweep.check(spec)
