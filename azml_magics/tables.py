"""Small tables that render as HTML in notebooks and as aligned text in terminals and logs.

Used for the effective-parameter table, job and endpoint lists and ``%azml_status``. Values are
HTML-escaped; nothing here imports pandas.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Table:
    columns: list[str]
    rows: list[list[object]]
    title: str | None = None
    notes: list[str] = field(default_factory=list)

    def _cell(self, value) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    def __str__(self) -> str:
        cells = [[self._cell(v) for v in row] for row in self.rows]
        widths = [len(c) for c in self.columns]
        for row in cells:
            for i, v in enumerate(row):
                widths[i] = max(widths[i], len(v))
        lines = []
        if self.title:
            lines.append(self.title)
        lines.append("  ".join(c.ljust(w) for c, w in zip(self.columns, widths)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        for row in cells:
            lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        if not self.rows:
            lines.append("(none)")
        lines.extend(self.notes)
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th style='text-align:left'>{esc(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{esc(self._cell(v))}</td>" for v in row) + "</tr>"
            for row in self.rows
        ) or f"<tr><td colspan='{len(self.columns)}'><i>none</i></td></tr>"
        title = f"<b>{esc(self.title)}</b>" if self.title else ""
        notes = "".join(f"<div>{esc(n)}</div>" for n in self.notes)
        return f"<div class='azml-table'>{title}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}</div>"


def effective_table(plan) -> Table:
    """The dry-run table: every parameter that will be sent, and where its value came from."""
    eff = plan.effective
    rows = [[r.name, r.value, r.source, r.overrides or ""] for r in eff.rows]
    notes = [f"display name: {plan.display_name}", f"model: {plan.model.id}"]
    if plan.compute is not None:
        gpus = f", {plan.compute.gpus_per_node} GPU per node" if plan.compute.size.startswith("Standard_") else ""
        notes.append(f"compute: {plan.compute.name} ({plan.compute.size}{gpus})")
    if eff.dropped_model_defaults:
        notes.append(
            "dropped model defaults (not inputs of this component): "
            + ", ".join(f"{k}={v}" for k, v in sorted(eff.dropped_model_defaults.items()))
        )
    if eff.ignored:
        notes.append("no meaning on this backend (ignored): " + ", ".join(sorted(eff.ignored)))
    report = plan.data_report
    if report is not None:
        kept = ", ".join(f"{split}: {r.kept} rows" for split, r in report.files.items())
        dropped = f"; {report.dropped} dropped" if getattr(report, "dropped", 0) else ""
        notes.append(f"data checked: {kept}{dropped}")
    notes.extend(plan.notes)
    return Table(["parameter", "value", "source", "replaces"], rows, title="Effective parameters", notes=notes)
