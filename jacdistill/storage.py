"""Atomic file writes: a crash or Ctrl-C leaves either the old file or the new one, never half."""

from __future__ import annotations

import functools
import inspect
import io
import json
import math
import os
import secrets
import warnings
from pathlib import Path

import torch


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``path`` through a temporary ``.<name>.<random>.tmp`` beside it, created with the mode the
    umask allows (``tempfile.mkstemp`` would make every output file 0600)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def to_json(obj) -> str:
    """JSON with non-finite floats as null (strict JSON has no NaN)."""

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(obj), indent=2)


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def write_json(path: str | Path, obj) -> None:
    write_text(path, to_json(obj) + "\n")


def write_torch(path: str | Path, obj) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def write_figure(path: str | Path, figure) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    finally:
        pyplot().close(figure)
    write_bytes(path, buffer.getvalue())


def figure(draw):
    """Decorate ``draw(..., path, ...)``, which draws a figure and saves it to its argument ``path``
    with ``write_figure``: text is drawn as written (a name such as ``a$x^2$b`` or ``a\\b`` is
    neither mathtext nor TeX, which would fail to parse), and a failure is a one-line warning, since
    figures come after the results they show and must not cost them."""
    signature = inspect.signature(draw)

    @functools.wraps(draw)
    def drawn(*args, **kwargs) -> None:
        import matplotlib

        path = signature.bind(*args, **kwargs).arguments["path"]
        try:
            with matplotlib.rc_context({"text.usetex": False, "text.parse_math": False}):
                draw(*args, **kwargs)
        except Exception as exc:
            warnings.warn(
                f"could not draw {path} ({type(exc).__name__}: {exc})".splitlines()[0], stacklevel=2
            )

    return drawn
