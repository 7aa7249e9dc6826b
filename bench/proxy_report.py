"""The proxy benchmark's numbers into a table: medians side by side, the ratios
kubemu/HAProxy and kubemu/direct, and the aims.

Pure: no I/O but the returned text.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
TARGETS = ("direct", "kubemu", "haproxy")
TITLES = {"direct": "direct", "kubemu": "kubemu", "haproxy": "HAProxy"}


@dataclass(frozen=True)
class Aim:
    metric: str  # keepalive, newconn, bulk
    figure: str  # the field of a run
    label: str
    target: float  # kubemu / HAProxy at least this

    def met(self, ratio: float) -> bool:
        return not math.isnan(ratio) and ratio >= self.target


AIMS = (
    Aim("keepalive", "rps", "kept-alive requests/s", 0.5),
    Aim("newconn", "rps", "new connections/s", 0.5),
    Aim("bulk", "mbytes_per_s", "bulk MB/s", 1.0),
)


def median(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def medians(runs: list[Obj]) -> dict[str, dict[str, Obj]]:
    """metric -> target -> figure -> the median over the repeats (failed runs left out)."""
    out: dict[str, dict[str, Obj]] = {}
    for run in runs:
        out.setdefault(run["metric"], {}).setdefault(run["target"], {})
    for metric, by_target in out.items():
        for target in by_target:
            mine = [r for r in runs if r["metric"] == metric and r["target"] == target]
            figures = {k for r in mine for k, v in r.items() if isinstance(v, int | float) and k != "repeat"}
            by_target[target] = {k: median([float(r.get(k, math.nan)) for r in mine]) for k in sorted(figures)}
            by_target[target]["failed"] = sum(1 for r in mine if r.get("error"))
    return out


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def aims(med: dict[str, dict[str, Obj]]) -> Obj:
    out = {}
    for aim in AIMS:
        if aim.metric not in med:
            continue
        row = med[aim.metric]
        kubemu = row.get("kubemu", {}).get(aim.figure, math.nan)
        haproxy = row.get("haproxy", {}).get(aim.figure, math.nan)
        r = ratio(kubemu, haproxy)
        out[aim.metric] = {"label": aim.label, "figure": aim.figure, "kubemu": kubemu, "haproxy": haproxy,
                           "aim_ratio": aim.target, "ratio": r, "met": aim.met(r)}
    return out


def _num(x: float, unit: str = "") -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if abs(x) >= 100:
        text = f"{x:,.0f}"
    elif abs(x) >= 10:
        text = f"{x:.1f}"
    else:
        text = f"{x:.2f}"
    return text + unit


def _ratio(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}x"


def table(results: Obj) -> str:
    med = results["medians"]
    plan = results["plan"]
    aim_by_metric = {a.metric: a for a in AIMS}
    rows: list[list[str]] = []

    def row(label: str, metric: str, figure: str, unit: str = "", *, with_aim: bool = False) -> None:
        if metric not in med:
            return
        values = [med.get(metric, {}).get(t, {}).get(figure, math.nan) for t in TARGETS]
        direct, kubemu, haproxy = values
        k_h, k_d = ratio(kubemu, haproxy), ratio(kubemu, direct)
        aim, met = "", ""
        if with_aim:
            a = aim_by_metric[metric]
            aim, met = f">= {a.target:g}x", ("yes" if a.met(k_h) else "NO")
        rows.append([label, *[_num(v, unit) for v in values], _ratio(k_h), _ratio(k_d), aim, met])

    def cpu_row(label: str, metric: str) -> None:
        if metric not in med:
            return
        values = [med.get(metric, {}).get(t, {}).get("middle_cpu_pct", math.nan) for t in TARGETS]
        rows.append([label, "-", _num(values[1], "%"), _num(values[2], "%"), "", "", "", ""])

    n_keep, n_new, clients = plan["keepalive_requests"], plan["newconn_requests"], plan["clients"]
    row(f"kept-alive requests/s (-c {clients}, -n {n_keep:,})", "keepalive", "rps", with_aim=True)
    row("  p50 latency, ms", "keepalive", "p50_ms")
    row("  p99 latency, ms", "keepalive", "p99_ms")
    cpu_row("  middleman CPU, % of a core", "keepalive")
    row(f"new connections/s (-k 0, -c {clients}, -n {n_new:,})", "newconn", "rps", with_aim=True)
    row("  p99 latency, ms", "newconn", "p99_ms")
    cpu_row("  middleman CPU, % of a core", "newconn")
    row(f"bulk MB/s (iperf3 -t {plan['bulk_seconds']}, 1 stream)", "bulk", "mbytes_per_s", with_aim=True)
    cpu_row("  middleman CPU, % of a core", "bulk")

    header = ["median of the runs", *[TITLES[t] for t in TARGETS], "kubemu/HAProxy", "kubemu/direct", "aim", "met"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))).rstrip()
             for r in [header, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("")
    haproxy = results.get("haproxy") or {}
    lines.append(f"{plan['repeats']} repeat(s), interleaved direct, kubemu, HAProxy; MB = 10^6 bytes; "
                 f"the aims are kubemu/HAProxy ratios")
    lines.append(f"kubemu proxy: one process, {'os.splice' if results.get('kubemu_splice', True) else 'no splice'}; "
                 f"HAProxy: {haproxy.get('threads', '?')} thread(s), "
                 f"{'splice-auto' if results.get('haproxy_splice') else 'no splice'}; "
                 f"{(results.get('environment') or {}).get('cpus', '?')} CPUs")
    failed = [f"{m} {t}: {v['failed']}" for m, by in med.items() for t, v in by.items() if v.get("failed")]
    if failed:
        lines.append("runs that failed (left out of the medians): " + ", ".join(failed))
    lines += _spread(results.get("spread") or {})
    lines += _health(results)
    return "\n".join(lines)


def _spread(spread: Obj) -> list[str]:
    if not spread:
        return []
    lines = ["", f"spread over {spread['pods']} redis pods (balance leastconn): connections each pod accepted"]
    for run in spread["runs"]:
        counts = [c for c in run["per_pod"] if c is not None]
        low, high = (min(counts), max(counts)) if counts else (0, 0)
        if len(counts) < len(run["per_pod"]) or not counts:
            verdict = "n/a (a pod did not answer)"
        else:
            verdict = f"max/min {high / low:.2f}" if low else "a pod got none"
        error = f"  ({run['error']})" if run.get("error") else ""
        lines.append(f"  {run['label']:<28} {TITLES[run['target']]:<8} {' / '.join('?' if c is None else str(c) for c in run['per_pod']):<22}"
                     f" {verdict}{error}")
    return lines


def _health(results: Obj) -> list[str]:
    proxy = results.get("proxy") or {}
    lines = ["", "kubemu proxy: "
             f"{proxy.get('log_lines', 'n/a')} log line(s) at warning or above"
             + (f"; published counts {proxy['published_counts']}" if proxy.get("published_counts") else "")]
    lines += [f"  | {line}" for line in proxy.get("log_sample", [])]
    errors = [r for r in results.get("runs", []) if r.get("error")]
    for run in errors[:5]:
        lines.append(f"  run failed: {run['metric']} {run['target']} #{run['repeat']}: {run['error']}")
    lines.append(f"processes left behind: {results.get('leftover_processes') or 'none'}")
    return lines
