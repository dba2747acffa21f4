"""Plain Markdown tables, shared by reports and benchmarks."""

from __future__ import annotations


def markdown_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A Markdown table of ``rows`` with (key, format) ``columns``; None prints as an empty cell."""
    cells = [[format(row[key], fmt) if row[key] is not None else "" for key, fmt in columns] for row in rows]
    header = [key for key, _ in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    line = lambda values: "| " + " | ".join(v.rjust(w) for v, w in zip(values, widths)) + " |"
    return "\n".join(
        [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(c) for c in cells)]
    )
