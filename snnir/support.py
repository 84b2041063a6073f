"""The support matrix: which backend lowers which node kind, generated from the lowering tables."""

from __future__ import annotations

from .ir.io import Input, Output
from .ir.node import Node
from .registry import backend_names, get_backend


def support_table() -> dict[str, dict[str, str]]:
    """``{backend: {kind: "yes" | "no" | "unavailable: reason"}}`` for every registered node kind."""
    kinds = [k for k in Node.registry if k not in (Input.kind, Output.kind)]
    table: dict[str, dict[str, str]] = {}
    for name in backend_names():
        try:
            backend = get_backend(name)
        except Exception as error:  # noqa: BLE001 - any failure to load is reported, not raised
            table[name] = {kind: f"unavailable: {error}" for kind in kinds}
            continue
        supported = set(backend.rules.supported())
        table[name] = {kind: "yes" if kind in supported else "no" for kind in kinds}
    return table


def known_gaps() -> dict[str, dict[str, str]]:
    """``{backend: {feature: reason}}`` as each available backend declares them."""
    gaps = {}
    for name in backend_names():
        try:
            gaps[name] = dict(get_backend(name).known_gaps)
        except Exception:  # noqa: BLE001
            continue
    return gaps


def support_matrix(markdown: bool = False) -> str:
    """The matrix as text (or a Markdown table for docs), followed by the declared gaps."""
    table = support_table()
    backends = list(table)
    kinds = list(next(iter(table.values())))
    mark = {"yes": "yes", "no": "-"}
    rows = [["node", *backends]]
    for kind in kinds:
        rows.append([kind, *(mark.get(table[b][kind], "n/a") for b in backends)])
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    else:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    unavailable = {b: next(iter(v.values())) for b, v in table.items() if next(iter(v.values())).startswith("unavailable")}
    notes = [f"{backend}: {reason}" for backend, reason in unavailable.items()]
    notes += [f"{backend} gap: {feature}: {reason}" for backend, gaps in known_gaps().items() for feature, reason in gaps.items()]
    if markdown:
        lines += ["", "Declared gaps (run as strict expected failures by the conformance suite):", ""]
        lines += [f"- {note}" for note in notes] or ["- none: every backend runs every conformance case"]
    else:
        lines += notes
    return "\n".join(lines)


def support_document() -> str:
    """The text of docs/support.md (``snnir info --backends --markdown``); a test keeps the file in sync."""
    return (
        "# Support matrix\n\n"
        "Generated from the backends' lowering tables and declared gaps by "
        "`snnir info --backends --markdown > docs/support.md`; `tests/test_support_doc.py` fails when it is stale.\n\n"
        + support_matrix(markdown=True)
        + "\n"
    )


__all__ = ["support_table", "support_matrix", "support_document", "known_gaps"]
