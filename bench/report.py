"""Numbers into a table: percentiles, each figure beside its aim, and the ratio.

Pure: no I/O but the returned text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_ms(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(seconds),
        "p50_ms": percentile(seconds, 50) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "max_ms": (max(seconds) * 1000) if seconds else math.nan,
    }


@dataclass(frozen=True)
class Aim:
    figure: str  # the results key
    label: str  # formatted with the run's counts: {clients}, {watchers}, {pods}
    unit: str
    target: float
    higher_is_better: bool

    def ratio(self, measured: float) -> float:
        return measured / self.target

    def met(self, measured: float) -> bool:
        return measured >= self.target if self.higher_is_better else measured < self.target

    def text(self) -> str:
        return f"{'>=' if self.higher_is_better else '<'} {_with_unit(self.target, self.unit)}"


AIMS = (
    Aim("creates_per_s_concurrent", "creates/s with {clients} clients", "/s", 2000, True),
    Aim("watch_delay_p99_ms", "watch delay p99 ({watchers} watchers)", "ms", 10, False),
    Aim("rss_at_pods_mib", "API RSS at {pods} pods", "MiB", 150, False),
)


def _counts(results: dict[str, Any]) -> dict[str, str]:
    return {
        "clients": str(results["concurrent"]["clients"]),
        "watchers": str(results["watch"]["watchers"]),
        "pods": f"{results['pods']['count']:,}",
    }


def _with_unit(x: float, unit: str) -> str:
    text = f"{x:,.0f}" if x == int(x) else _num(x)
    return f"{text}{unit}" if unit.startswith("/") else f"{text} {unit}"


def aims_json(results: dict[str, Any]) -> dict[str, Any]:
    out = {}
    counts = _counts(results)
    for aim in AIMS:
        measured = results.get(aim.figure)
        if isinstance(measured, int | float) and not math.isnan(measured):
            out[aim.figure] = {
                "label": aim.label.format(**counts), "aim": aim.target, "higher_is_better": aim.higher_is_better,
                "measured": measured, "ratio": aim.ratio(measured), "met": aim.met(measured),
            }
    return out


def _num(x: float) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def table(results: dict[str, Any], *, quick: bool = False) -> str:
    r = results
    seq, conc, watch = r["sequential"], r["concurrent"], r["watch"]
    pods, gets, lists = r["pods"], r["gets"], r["list_all"]
    aims = {a.figure: a for a in AIMS}
    n_pods = f"{pods['count']:,}"

    rows: list[tuple[str, str, str]] = [
        (f"creates/s, 1 client, sequential ({seq['count']:,} ConfigMaps)", f"{_num(seq['per_s'])}/s", ""),
        ("  create latency p50 / p99 / max", _lat(seq["latency"]), ""),
        (f"creates/s, {conc['clients']} clients ({conc['count']:,} ConfigMaps)", f"{_num(conc['per_s'])}/s",
         aims["creates_per_s_concurrent"].text()),
        ("  create latency p50 / p99 / max", _lat(conc["latency"]), ""),
        ("  CPU: API process / benchmark process", f"{conc['api_cpu_pct']:.0f}% / {conc['bench_cpu_pct']:.0f}% of a core", ""),
        ("  writes per commit (group commit)", _num(conc["writes_per_commit"]), ""),
        (f"watch delay p99, ack -> event ({watch['watchers']} watchers)", f"{_num(watch['from_ack']['p99_ms'])} ms",
         aims["watch_delay_p99_ms"].text()),
        ("  ack -> event p50 / max", f"{_num(watch['from_ack']['p50_ms'])} / {_num(watch['from_ack']['max_ms'])} ms", ""),
        ("  send -> event p50 / p99 / max", _lat(watch["from_send"]), ""),
        ("  the writer's create latency p50 / p99 / max", _lat(watch["write_latency"]), ""),
        ("  events received / expected; watches failed", f"{watch['events']:,} / {watch['expected']:,}; "
         f"{watch['watches_failed']}", ""),
        ("API RSS idle at start", f"{_num(r['rss_idle_mib'])} MiB", ""),
        (f"API RSS at {n_pods} pods", f"{_num(r['rss_at_pods_mib'])} MiB", aims["rss_at_pods_mib"].text()),
        ("  RSS after the list-all calls / peak (VmHWM)", f"{_num(r['rss_after_list_mib'])} / {_num(r['rss_peak_mib'])} MiB", ""),
        (f"  pod creates/s while filling, {pods['clients']} clients", f"{_num(pods['per_s'])}/s", ""),
        ("  one stored pod, msgpack", f"{pods['stored_bytes']:,} bytes", ""),
        (f"get latency at {n_pods} pods, p50 / p99 / max", _lat(gets["latency"]), ""),
        (f"list all {n_pods} pods, median / min", f"{_num(lists['median_ms'])} / {_num(lists['min_ms'])} ms", ""),
    ]
    width = max(len(label) for label, _, _ in rows) + 2
    value_width = max(len(value) for _, value, _ in rows) + 2
    lines = [f"{'figure':<{width}}{'measured':<{value_width}}aim", "-" * (width + value_width + 14)]
    lines += [f"{label:<{width}}{value:<{value_width}}{aim}".rstrip() for label, value, aim in rows]
    lines += ["", "against the aims (ratio = measured / aim):"]
    if quick:
        lines.append("  (a --quick run: fewer objects than the aims assume, so these ratios are only a smoke signal)")
    counts = _counts(r)
    for aim in AIMS:
        label = aim.label.format(**counts)
        measured = r.get(aim.figure, math.nan)
        if isinstance(measured, float) and math.isnan(measured):
            lines.append(f"  {label}: not measured")
            continue
        verdict = "meets the aim" if aim.met(measured) else "MISSES the aim"
        lines.append(f"  {label}: {_with_unit(measured, aim.unit)} / {_with_unit(aim.target, aim.unit)}"
                     f" = {aim.ratio(measured):.2f}x  {verdict}")
    return "\n".join(lines)


def _lat(summary: dict[str, float]) -> str:
    return f"{_num(summary['p50_ms'])} / {_num(summary['p99_ms'])} / {_num(summary['max_ms'])} ms"
