"""Rendering an :class:`~gradbench.battery.AuditReport`: a rich table, Markdown, or JSON."""

from __future__ import annotations

import json
from typing import Any

from gradbench.battery import FAIL, PASS, AuditReport

STYLE = {PASS: "green", FAIL: "bold red", "SKIP": "yellow"}


def _title(report: AuditReport) -> str:
    s = report.settings
    head = f"audit of {report.kind} {report.name!r}: {'PASS' if report.passed else 'FAIL'}"
    if report.kind == "estimator":
        tasks = ", ".join(s.get("tasks", [])) or "none"
        budget = f"{s['samples']:,} f evaluations per bias cell"
        return f"{head} (tasks: {tasks}; {budget}, α = {s['alpha']:g}, seed {s['seed']})"
    return f"{head} ({s['samples']:,} REINFORCE estimates for the reference, α = {s['alpha']:g}, seed {s['seed']})"


def render_rich(report: AuditReport, console: Any) -> None:
    from rich.table import Table

    table = Table(title=_title(report), title_justify="left", show_lines=False)
    table.add_column("property", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("evidence")
    for v in report.verdicts:
        table.add_row(v.property, f"[{STYLE.get(v.status, '')}]{v.status}[/]", v.evidence)
    console.print(table)
    skipped = report.settings.get("skipped") or []
    for task, reason in skipped:
        console.print(f"[dim]not tested on {task}: {reason}[/dim]", highlight=False)


def render_markdown(report: AuditReport) -> str:
    lines = [f"**{_title(report)}**", "", "| property | verdict | evidence |", "|---|---|---|"]
    for v in report.verdicts:
        evidence = v.evidence.replace("|", "\\|")
        lines.append(f"| {v.property} | {'**FAIL**' if v.status == FAIL else v.status} | {evidence} |")
    for task, reason in report.settings.get("skipped") or []:
        lines.append(f"\nnot tested on {task}: {reason}")
    return "\n".join(lines)


def render_json(report: AuditReport) -> str:
    def plain(x: Any) -> Any:
        if isinstance(x, float) and x != x or x in (float("inf"), float("-inf")):
            return None
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [plain(v) for v in x]
        return x

    return json.dumps(plain(report.to_dict()), indent=2, ensure_ascii=False)
