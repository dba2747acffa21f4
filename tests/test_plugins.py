"""Discovery of plugins from OUTSIDE distributions through the ``jacdistill`` entry-point group.

Each test builds a tiny "installed" distribution in tmp_path — a module file plus a
``*.dist-info`` folder with METADATA and entry_points.txt — and puts tmp_path on PYTHONPATH of a
real ``jacdistill`` process (or on sys.path, for the in-process Registry tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jacdistill.options import JacdistillError
from jacdistill.registry import PluginWarning, Registry

JACDISTILL = Path(sys.executable).with_name("jacdistill")
BUILTINS = {
    ("regularizer", "jacobian"),
    ("regularizer", "none"),
    ("student", "tree"),
    ("student", "gplearn"),
    ("student", "operon"),
    ("student", "pysr"),
}

SMOOTHL1 = '''
import json
import os

import torch

from jacdistill import Regularizer, hookimpl


class L2Weights(Regularizer):
    """Sum of squared parameters: differentiable, independent of x."""

    name = "l2weights"
    defaults = {"scale": 1.0}
    called = False

    def output_and_penalty(self, model, x):
        if not L2Weights.called and os.environ.get("JD_SMOOTHL1_MARK"):
            L2Weights.called = True
            with open(os.environ["JD_SMOOTHL1_MARK"], "w") as fh:
                json.dump({"scale": self.options["scale"], "batch": list(x.shape)}, fh)
        return model(x), self.options["scale"] * sum((p ** 2).sum() for p in model.parameters())


@hookimpl
def register_regularizers(register):
    register(L2Weights)
'''


def make_dist(root: Path, dist: str, module: str, source: str, entry_points: dict[str, str]) -> None:
    """Write ``module.py`` and ``<dist>-0.1.dist-info`` so importlib.metadata finds ``dist``."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[jacdistill]\n{lines}")


def jd(*args: str, cwd: Path, pythonpath: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    assert JACDISTILL.exists(), f"console script missing: {JACDISTILL} (pip install -e .)"
    env = {**os.environ, **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [str(JACDISTILL), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def shown(proc: subprocess.CompletedProcess) -> str:
    return f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def listing(proc: subprocess.CompletedProcess) -> dict[tuple[str, str], dict]:
    assert proc.returncode == 0, shown(proc)
    assert "Traceback" not in proc.stderr, shown(proc)
    return {(row["kind"], row["name"]): row for row in json.loads(proc.stdout)}


@pytest.fixture
def site(tmp_path) -> Path:
    """A folder that stands in for site-packages; a separate one is the working directory."""
    (tmp_path / "site").mkdir()
    (tmp_path / "work").mkdir()
    return tmp_path / "site"


# --------------------------------------------------------------------------- a working plugin


def test_outside_regularizer_is_listed_with_its_distribution(site):
    make_dist(site, "jacdistill-smoothl1", "jd_smoothl1", SMOOTHL1, {"l2weights": "jd_smoothl1"})
    proc = jd("plugins", "--json", cwd=site.parent / "work", pythonpath=site)
    rows = listing(proc)
    assert "warning" not in proc.stderr, shown(proc)
    assert rows[("regularizer", "l2weights")] == {
        "kind": "regularizer",
        "name": "l2weights",
        "source": "jacdistill-smoothl1",
        "available": True,
        "reason": None,
    }
    for key in BUILTINS:
        assert rows[key]["source"] == "jacdistill", key


def test_outside_regularizer_trains_the_teacher(site):
    make_dist(site, "jacdistill-smoothl1", "jd_smoothl1", SMOOTHL1, {"l2weights": "jd_smoothl1"})
    work, mark = site.parent / "work", site.parent / "penalty-called.json"
    proc = jd(
        "run",
        "--dataset",
        "yacht",
        "--regularizer",
        "l2weights",
        "--lam",
        "0.01",
        "--reg-opt",
        "scale=2.5",
        "--student",
        "tree",
        "--epochs",
        "5",
        "--no-baseline",
        "--json",
        "--out",
        "r",
        cwd=work,
        pythonpath=site,
        extra_env={"JD_SMOOTHL1_MARK": str(mark)},
    )
    assert proc.returncode == 0, shown(proc)
    metrics = json.loads(proc.stdout)
    assert metrics["regularizer"] == "l2weights"
    assert metrics["lam"] == pytest.approx(0.01)
    assert metrics["baseline"] is None
    assert json.loads((work / "r" / "config.json").read_text())["regularizer_options"] == {"scale": 2.5}
    # the plugin's penalty really ran inside training, with the option given on the command line
    called = json.loads(mark.read_text())
    assert called["scale"] == 2.5
    assert called["batch"][1] == 6  # yacht has six features


# --------------------------------------------------------------------------- broken plugins


def test_broken_plugins_warn_and_the_rest_load(site):
    make_dist(site, "jacdistill-smoothl1", "jd_smoothl1", SMOOTHL1, {"l2weights": "jd_smoothl1"})
    make_dist(
        site,
        "jacdistill-broken",
        "jd_broken",
        'raise ImportError("No module named \'totally_missing_dependency\'")\n',
        {"broken": "jd_broken"},
    )
    make_dist(
        site,
        "jacdistill-notaclass",
        "jd_notaclass",
        '''
        from jacdistill import hookimpl

        @hookimpl
        def register_regularizers(register):
            register(object)
        ''',
        {"notaclass": "jd_notaclass"},
    )
    work = site.parent / "work"

    proc = jd("plugins", cwd=work, pythonpath=site)
    assert proc.returncode == 0, shown(proc)
    assert "Traceback" not in proc.stderr, shown(proc)
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    assert all(line.startswith("warning: ") for line in warnings), shown(proc)
    broken = [line for line in warnings if "'broken'" in line]
    assert len(broken) == 1, shown(proc)
    assert "jacdistill-broken" in broken[0] and "ImportError" in broken[0], shown(proc)
    assert any("jacdistill-notaclass" in line for line in warnings), shown(proc)
    listed = {tuple(line.split()[:2]) for line in proc.stdout.splitlines()[1:]}
    assert BUILTINS | {("regularizer", "l2weights")} <= listed, shown(proc)

    as_json = jd("plugins", "--json", cwd=work, pythonpath=site)
    rows = listing(as_json)  # the warnings stay on stderr; stdout is still JSON
    assert BUILTINS | {("regularizer", "l2weights")} <= set(rows)
    assert not any(row["source"] in ("jacdistill-broken", "jacdistill-notaclass") for row in rows.values())


def test_entry_point_named_like_a_builtin_does_not_crash(site):
    """A third-party entry point that happens to be called ``none`` (as a built-in's is)."""
    make_dist(
        site, "jacdistill-clash", "jd_clash", SMOOTHL1.replace("l2weights", "l2clash"), {"none": "jd_clash"}
    )
    proc = jd("plugins", "--json", cwd=site.parent / "work", pythonpath=site)
    rows = listing(proc)
    assert BUILTINS <= set(rows)
    assert rows[("regularizer", "none")]["source"] == "jacdistill"
    assert (("regularizer", "l2clash") in rows) or "jacdistill-clash" in proc.stderr, shown(proc)


def test_outside_plugin_cannot_replace_a_builtin(site):
    """``none`` is what the λ = 0 baseline uses; a third-party class of that name must not take over."""
    make_dist(
        site,
        "jacdistill-shadow",
        "jd_shadow",
        '''
        from jacdistill import Regularizer, hookimpl

        class Shadow(Regularizer):
            name = "none"

            def output_and_penalty(self, model, x):
                raise RuntimeError("the shadow 'none' was used")

        @hookimpl
        def register_regularizers(register):
            register(Shadow)
        ''',
        {"shadow": "jd_shadow"},
    )
    proc = jd("plugins", "--json", cwd=site.parent / "work", pythonpath=site)
    rows = listing(proc)
    assert rows[("regularizer", "none")]["source"] == "jacdistill", shown(proc)
    warning = [line for line in proc.stderr.splitlines() if "already provided" in line]
    assert len(warning) == 1 and "jacdistill-shadow" in warning[0].split("already provided")[0], shown(proc)


def test_a_student_that_raises_in_a_sweep_fails_its_unit_only(site):
    """A third-party student with a bug beyond six columns: its unit fails, the sweep finishes the
    others and says so in one line (exit 1), the traceback goes to failures.log."""
    make_dist(
        site,
        "jacdistill-fragile",
        "jd_fragile",
        '''
        from jacdistill import hookimpl
        from jacdistill.plugins.students.tree import TreeStudent

        class Fragile(TreeStudent):
            name = "fragile"

            def fit(self, X, y):
                if X.shape[1] > 6:
                    raise RuntimeError("fragile cannot fit more than six columns")
                return super().fit(X, y)

        @hookimpl
        def register_students(register):
            register(Fragile)
        ''',
        {"fragile": "jd_fragile"},
    )
    work = site.parent / "work"
    args = ("sweep", "--datasets", "yacht,servo", "--students", "fragile", "--arms", "direct", "--seeds", "0")
    proc = jd(*args, "--out", "s", cwd=work, pythonpath=site)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("sweep:")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, shown(proc)
    assert len(lines) == 1 and lines[0].startswith("sweep: 1 of 2 units failed"), shown(proc)
    assert "servo" in lines[0] and "fragile cannot fit more than six columns" in lines[0], shown(proc)
    assert [p.name for p in (work / "s" / "trials").glob("*.json")] == ["yacht__fragile__direct__seed0.json"]
    log = (work / "s" / "failures.log").read_text()
    assert "Traceback" in log and "RuntimeError: fragile cannot fit more than six columns" in log


# --------------------------------------------------------------------------- plugin commands

HELLO = '''
import os

import click

from jacdistill import hookimpl

if os.environ.get("JD_HELLO_MARK"):  # proves when jacdistill imports this module
    open(os.environ["JD_HELLO_MARK"], "w").close()


@click.command()
@click.argument("name")
@click.option("--shout", is_flag=True, help="Upper case.")
def hello(name, shout):
    """Greet NAME from an outside plugin."""
    text = f"hello {name}"
    click.echo(text.upper() if shout else text)


@hookimpl
def register_commands(cli):
    cli.add_command(hello)
'''


def test_outside_plugin_adds_a_command(site):
    make_dist(site, "jacdistill-hello", "jd_hello", HELLO, {"hello": "jd_hello"})
    work, mark = site.parent / "work", site.parent / "hello-imported"
    env = {"JD_HELLO_MARK": str(mark)}

    proc = jd("hello", "world", "--shout", cwd=work, pythonpath=site, extra_env=env)
    assert proc.returncode == 0, shown(proc)
    assert proc.stdout == "HELLO WORLD\n" and proc.stderr == "", shown(proc)
    assert mark.exists()
    helped = jd("hello", "--help", cwd=work, pythonpath=site)
    assert helped.returncode == 0 and "Greet NAME from an outside plugin." in helped.stdout, shown(helped)
    # jacdistill's own bench commands come through the same hook and still work beside it
    bench = jd("bench", "--help", cwd=work, pythonpath=site)
    assert bench.returncode == 0 and {"step", "kernel", "tuners"} <= set(bench.stdout.split()), shown(bench)

    # built-in commands and the top-level help do not load plugins at all (start-up stays fast)
    mark.unlink()
    for args in (("--help",), ("datasets",)):
        proc = jd(*args, cwd=work, pythonpath=site, extra_env=env)
        assert proc.returncode == 0, shown(proc)
        assert not mark.exists(), args
    unknown = jd("nosuch", cwd=work, pythonpath=site)
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: No such command 'nosuch'"), shown(
        unknown
    )


def test_broken_register_commands_warns_and_the_cli_works(site):
    make_dist(site, "jacdistill-hello", "jd_hello", HELLO, {"hello": "jd_hello"})
    make_dist(
        site,
        "jacdistill-badcmd",
        "jd_badcmd",
        '''
        import click

        from jacdistill import hookimpl

        @click.command()
        def half():
            """Added just before the hook fails."""

        @hookimpl
        def register_commands(cli):
            cli.add_command(half)
            raise RuntimeError("no commands today")
        ''',
        {"badcmd": "jd_badcmd"},
    )
    make_dist(
        site,
        "jacdistill-takeover",
        "jd_takeover",
        '''
        import click

        from jacdistill import hookimpl

        @click.command("bench")
        def fake_bench():
            raise SystemExit("the takeover bench ran")

        @hookimpl
        def register_commands(cli):
            cli.add_command(fake_bench)
        ''',
        {"takeover": "jd_takeover"},
    )
    make_dist(
        site,
        "jacdistill-badsig",
        "jd_badsig",
        '''
        from jacdistill import hookimpl

        @hookimpl
        def register_commands(group):
            raise AssertionError("never called")
        ''',
        {"badsig": "jd_badsig"},
    )
    work = site.parent / "work"

    proc = jd("hello", "you", cwd=work, pythonpath=site)
    assert proc.returncode == 0 and proc.stdout == "hello you\n", shown(proc)
    assert "Traceback" not in proc.stderr, shown(proc)
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3, shown(proc)  # (pluggy's reason for 'invalid' spans more lines)
    (failed,) = (line for line in warnings if "jacdistill-badcmd" in line)
    assert "'badcmd'" in failed and "RuntimeError: no commands today" in failed, shown(proc)
    (taken,) = (line for line in warnings if "jacdistill-takeover" in line)
    assert "command 'bench', already provided by jacdistill" in taken, shown(proc)
    assert any("jacdistill-badsig" in line and "invalid" in line for line in warnings), shown(proc)

    # what the failing hook added before it raised is not there; jacdistill's bench is kept
    half = jd("half", cwd=work, pythonpath=site)
    assert half.returncode == 2 and "No such command 'half'" in half.stderr, shown(half)
    bench = jd("bench", "--help", cwd=work, pythonpath=site)
    assert bench.returncode == 0 and "step" in bench.stdout.split(), shown(bench)
    assert "takeover" not in bench.stdout, shown(bench)


def test_registry_add_commands_in_process(site, monkeypatch):
    import click
    from click.testing import CliRunner

    make_dist(
        site,
        "jacdistill-inproc-cmd",
        "jd_inproc_cmd",
        HELLO.replace("hello", "hi"),
        {"inproc_cmd": "jd_inproc_cmd"},
    )
    make_dist(
        site,
        "jacdistill-inproc-badcmd",
        "jd_inproc_badcmd",
        '''
        from jacdistill import hookimpl

        @hookimpl
        def register_commands(cli):
            raise ValueError("broken on purpose")
        ''',
        {"inproc_badcmd": "jd_inproc_badcmd"},
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("JD_HELLO_MARK", raising=False)
    group = click.Group("g")
    with pytest.warns(
        PluginWarning,
        match="'inproc_badcmd' from jacdistill-inproc-badcmd failed to add "
        "its commands: ValueError: broken on purpose",
    ):
        Registry().add_commands(group)
    assert {"hi", "bench"} <= set(group.commands)
    result = CliRunner().invoke(group, ["hi", "there"])
    assert result.exit_code == 0 and result.output == "hi there\n", result.output
    monkeypatch.delitem(sys.modules, "jd_inproc_cmd", raising=False)
    monkeypatch.delitem(sys.modules, "jd_inproc_badcmd", raising=False)


# --------------------------------------------------------------------------- in-process Registry


def test_registry_unknown_names():
    registry = Registry()
    names = registry.names("regularizer")
    assert {"jacobian", "none"} <= set(names) and names == sorted(names)
    with pytest.raises(JacdistillError) as exc:
        registry.get("regularizer", "foo")
    assert str(exc.value) == f"unknown regularizer 'foo'; known: {', '.join(names)}"
    with pytest.raises(JacdistillError) as exc:
        registry.available("student", "foo")
    assert str(exc.value).startswith("unknown student 'foo'; known: ")
    with pytest.raises(
        JacdistillError, match="unknown tuner 'nosuch'; known: adaptive, constrained, grid, optuna"
    ):
        registry.get("tuner", "nosuch")
    kinds = [info.kind for info in registry.all()]
    assert kinds == sorted(kinds, key=["regularizer", "student", "tuner"].index)


def test_registry_in_process_discovery(site, monkeypatch):
    make_dist(
        site,
        "jacdistill-inproc",
        "jd_inproc",
        SMOOTHL1.replace("l2weights", "l2inproc"),
        {"l2inproc": "jd_inproc"},
    )
    make_dist(
        site,
        "jacdistill-inproc-broken",
        "jd_inproc_broken",
        "raise ImportError('nope')\n",
        {"inproc_broken": "jd_inproc_broken"},
    )
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(PluginWarning, match="'inproc_broken' from jacdistill-inproc-broken failed to load"):
        registry = Registry()
    info = {(i.kind, i.name): i for i in registry.all()}[("regularizer", "l2inproc")]
    assert info.source == "jacdistill-inproc"
    reg = registry.available("regularizer", "l2inproc")(scale=3)
    assert reg.options == {"scale": 3}
    import torch

    model = torch.nn.Linear(2, 1)
    penalty = reg.penalty(model, torch.zeros(4, 2))
    penalty.backward()
    assert model.weight.grad is not None and torch.allclose(model.weight.grad, 6 * model.weight.detach())
    monkeypatch.delitem(sys.modules, "jd_inproc", raising=False)
    monkeypatch.delitem(sys.modules, "jd_inproc_broken", raising=False)


def test_option_values_parse_as_literals_or_toml_words():
    from jacdistill.options import parse_key_values

    parsed = parse_key_values(["n=3", "grid=[0, 1e-3]", "on=true", "off=false", "py=True", "name=x"], "--opt")
    assert parsed == {"n": 3, "grid": [0, 1e-3], "on": True, "off": False, "py": True, "name": "x"}
    assert isinstance(parsed["on"], bool)
