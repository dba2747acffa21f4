"""Reading a sweep directory: the trial files and ``sweep.json``, and the small helpers every part of
the report uses to order arms and to read a trial's numbers (a complexity cap's among them)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from jacdistill.options import JacdistillError
from jacdistill.trials import ARMS, REQUIRED_KEYS


def load_trials(sweep_dir: str | Path) -> list[dict]:
    """Every trial of a sweep (``SWEEP_DIR/trials/*.json``; hidden and other files are ignored),
    sorted by dataset, student, arm (in ``ARMS`` order) and seed.

    A missing folder, a folder without trials, an unreadable or malformed trial file, or two files
    for the same (dataset, student, arm, seed) is a :class:`JacdistillError`.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise JacdistillError(f"sweep directory {root} does not exist")
    folder = root / "trials"
    if not folder.is_dir():
        raise JacdistillError(
            f"{root} has no trials/ folder: not a sweep directory, or no trial has finished"
        )
    trials, seen = [], {}
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            trial = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise JacdistillError(f"cannot read trial file {path}: {exc}") from None
        if not isinstance(trial, dict):
            raise JacdistillError(f"trial file {path} does not hold a JSON object")
        missing = [key for key in REQUIRED_KEYS if key not in trial]
        if missing:
            raise JacdistillError(f"trial file {path} lacks the key '{missing[0]}'")
        if (
            not all(isinstance(trial[key], str) for key in ("dataset", "student", "arm"))
            or not isinstance(trial["seed"], int)
            or isinstance(trial["seed"], bool)
        ):
            raise JacdistillError(
                f"trial file {path}: dataset, student and arm must be text, seed an integer"
            )
        key = tuple(trial[k] for k in REQUIRED_KEYS)
        if key in seen:
            raise JacdistillError(
                f"trial files {seen[key].name} and {path.name} are the same trial "
                f"(dataset {key[0]}, student {key[1]}, arm {key[2]}, seed {key[3]})"
            )
        seen[key] = path
        trials.append(trial)
    if not trials:
        raise JacdistillError(f"{folder} holds no trial (*.json) yet")
    return sorted(trials, key=_trial_order)


def read_settings(sweep_dir: str | Path) -> tuple[dict | None, str | None]:
    """``sweep.json`` (optional): (its content, None), (None, None) if absent, (None, why) if unreadable."""
    path = Path(sweep_dir) / "sweep.json"
    if not path.is_file():
        return None, None
    try:
        return json.loads(path.read_text()), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"sweep.json could not be read: {exc}"


def _trial_order(trial: dict):
    return (trial["dataset"], trial["student"], _arm_rank(trial["arm"]), trial["arm"], trial["seed"])


def _arm_rank(arm: str) -> int:
    return ARMS.index(arm) if arm in ARMS else len(ARMS)  # an arm this version does not know goes last


def ordered_arms(arms: Iterable[str]) -> list[str]:
    """The distinct arm names, in ``ARMS`` order (unknown ones last, alphabetically)."""
    return sorted(set(arms), key=lambda arm: (_arm_rank(arm), arm))


def arms_in(trials: list[dict]) -> list[str]:
    return ordered_arms(t["arm"] for t in trials)


def finite(x) -> float | None:
    """A finite number as float; None (missing, null, NaN, ±inf, not a number) otherwise."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def failed(trial: dict) -> bool:
    """A trial without a finite student test R² (the formula blew up) is a failure."""
    return finite(trial.get("student_r2_test")) is None


CAPS = (10, 20, 40)  # complexity caps the report reads each trial's front at


def has_front(trial: dict) -> bool:
    """Whether the trial recorded its student's accuracy–complexity front (older trials did not)."""
    return isinstance(trial.get("front"), list)


def capped_r2(trial: dict, cap: int) -> float | None:
    """The student test R² of the trial's formula under a complexity cap: among the front's members
    with complexity ≤ ``cap``, the one with the highest validation R² (the lower complexity on a
    tie), as the sweep itself selects, never looking at the test rows. None when the trial has no
    front, no member fits the cap with a finite validation R², or that member's test R² is not
    finite (a failure at that cap)."""
    members = [
        m
        for m in (trial.get("front") if has_front(trial) else ())
        if isinstance(m, dict)
        and finite(m.get("complexity")) is not None
        and m["complexity"] <= cap
        and finite(m.get("student_r2_val")) is not None
    ]
    if not members:
        return None
    best = max(members, key=lambda m: (m["student_r2_val"], -m["complexity"]))
    return finite(best.get("student_r2_test"))
