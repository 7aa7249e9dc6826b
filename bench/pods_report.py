"""The nodes-and-pods benchmark's figures as a table, each beside its aim, and the
aims as data. Pure: no I/O but the returned text.

The aims are the issue's (one pod Running in < 100 ms, 1,000 pods in < 30 s, idle
CPU < 5 % of a core) and Kubernetes' own pod startup SLO (p99 <= 5 s); kind and
k3d's 15-20 s to start a cluster is a reference point, not an aim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Aim:
    label: str
    measured: float
    unit: str
    limit: float
    inclusive: bool  # <= rather than <
    source: str

    def met(self) -> bool:
        return self.measured <= self.limit if self.inclusive else self.measured < self.limit

    def text(self) -> str:
        return f"{'<=' if self.inclusive else '<'} {_num(self.limit)}{self.unit} ({self.source})"


def _aim_list(r: Obj) -> list[Aim]:
    single, set_, bulk, rest = r["single"], r["set"], r["bulk"], r["rest"]
    nodes = r["cluster_start"]["nodes"]
    return [
        Aim("1 pod, apply -> Running, p50", single["to_running"]["p50_ms"], " ms", 100, False, "issue"),
        Aim("1 pod, apply -> Running, p99", single["to_running"]["p99_ms"], " ms", 100, False, "issue"),
        Aim(f"{bulk['count']:,} pods over {nodes} nodes, all Running", bulk["all_running_s"], " s", 30, False, "issue"),
        Aim("idle CPU, API process", rest["api_cpu_pct"], "% of a core", 5, False, "issue"),
        Aim("idle CPU, busiest node agent", rest["agent_cpu_pct"]["max"], "% of a core", 5, False, "issue"),
        Aim("idle CPU, whole cluster", rest["cluster_cpu_pct"], "% of a core", 5, False, "issue"),
        Aim(f"{set_['count']}-pod set, pod startup p99", set_["to_running"]["p99_ms"] / 1000, " s", 5, True,
            "Kubernetes SLO"),
        Aim(f"{bulk['count']:,} pods, pod startup p99", bulk["to_running"]["p99_ms"] / 1000, " s", 5, True,
            "Kubernetes SLO"),
    ]


def aims(results: Obj) -> list[Obj]:
    return [{"label": a.label, "measured": a.measured, "unit": a.unit.strip(), "aim": a.limit,
             "inclusive": a.inclusive, "source": a.source,
             "ratio": a.measured / a.limit, "met": a.met()} for a in _aim_list(results)]


def _num(x: float) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if x == int(x) and abs(x) < 1e6:
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _ms(summary: Obj, *keys: str) -> str:
    return " / ".join(_num(summary[f"{k}_ms"]) for k in keys) + " ms"


def table(r: Obj, *, quick: bool = False) -> str:
    up, start, single, set_, bulk, rest = r["up"], r["cluster_start"], r["single"], r["set"], r["bulk"], r["rest"]
    found = {a.label: a for a in _aim_list(r)}
    aim_list = list(found.values())
    n_bulk, n_nodes = f"{bulk['count']:,}", start["nodes"]
    env = r["environment"]

    rows: list[tuple[str, str, str]] = [
        (f"kubemu up --nodes {up['nodes']}: launch -> 'kubemu is up'", f"{_num(up['start_s'])} s",
         "kind / k3d: 15-20 s just to start"),
        ("  SIGTERM -> up exits / -> no process left", f"{_num(up['stop_s'])} / {_num(up['all_gone_s'])} s", ""),
        (f"API process ready; {n_nodes} node agents (at once) ready", f"{_num(start['api_ready_s'])} s; "
         f"+{_num(start['nodes_ready_s'])} s", ""),
        (f"1 pod, apply -> Running, p50 / p99 ({single['count']} pods)", _ms(single["to_running"], "p50", "p99"),
         aim_list[0].text()),
        ("  mean / max", _ms(single["to_running"], "mean", "max"), ""),
        ("  first pod, cold", f"{_num(single['cold_first_ms'])} ms", ""),
        ("  its process in /proc when the watch said Running", f"{single['process_seen_at_running']} of "
         f"{single['count']}", ""),
        ("  create answered, p50 / p99", _ms(single["create_ack"], "p50", "p99"), ""),
        ("  apply -> bound to a node, p50 / p99", _ms(single["to_bound"], "p50", "p99"), ""),
        ("  bound -> Running, p50 / p99", _ms(single["bound_to_running"], "p50", "p99"), ""),
        ("  delete (grace 0) -> DELETED event, p50 / p99", _ms(single["delete_to_deleted_event"], "p50", "p99"), ""),
        ("  delete (grace 0) -> process gone, p50 / p99", _ms(single["delete_to_process_gone"], "p50", "p99"), ""),
    ]
    for label, s in ((f"{set_['count']}-pod set, all created at once", set_),
                     (f"{n_bulk} pods over {n_nodes} nodes, {bulk['clients']} clients", bulk)):
        rows += [
            (f"{label}: all Running", f"{_num(s['all_running_s'])} s",
             found[f"{n_bulk} pods over {n_nodes} nodes, all Running"].text() if s is bulk else ""),
            ("  each apply -> Running, p50 / p99", _ms(s["to_running"], "p50", "p99"),
             "p99 <= 5 s (Kubernetes SLO)"),
            ("  max", _ms(s["to_running"], "max"), ""),
            ("  all creates answered after", f"{_num(s['creates_done_s'])} s", ""),
            ("  create answered, p50 / p99", _ms(s["create_ack"], "p50", "p99"), ""),
            ("  apply -> bound, p50 / p99", _ms(s["to_bound"], "p50", "p99"), ""),
            ("  bound -> Running, p50 / p99", _ms(s["bound_to_running"], "p50", "p99"), ""),
            ("  pods per node, min / max", f"{s['pods_per_node']['min']} / {s['pods_per_node']['max']} "
             f"on {s['pods_per_node']['nodes']} nodes", ""),
            ("  CPU meanwhile: API / agents (sum) / benchmark",
             f"{s['api_cpu_pct']:.0f}% / {s['agents_cpu_pct']:.0f}% / {s['bench_cpu_pct']:.0f}% of a core", ""),
        ]
        if s is set_:
            rows.append(("  delete all (grace 0) -> every process gone", f"{_num(s['delete']['all_gone_s'])} s", ""))
    ar, sr = rest["agent_rss_mib"], rest["spawner_rss_mib"]
    ac, sc = rest["agent_cpu_pct"], rest["spawner_cpu_pct"]
    rows += [
        (f"API RSS at {n_bulk} pods / peak", f"{_num(rest['api_rss_mib'])} / {_num(rest['api_peak_rss_mib'])} MiB", ""),
        (f"node agent RSS, mean / max ({ar['count']})", f"{_num(ar['mean'])} / {_num(ar['max'])} MiB", ""),
        (f"  its spawner RSS, mean / max ({sr['count']})", f"{_num(sr['mean'])} / {_num(sr['max'])} MiB", ""),
        ("cluster RSS: API + agents + spawners", f"{_num(rest['cluster_rss_mib'])} MiB", ""),
        ("  the containers themselves: processes / RSS (shared pages in each)", f"{rest['container_processes']:,} / "
         f"{_num(rest['container_rss_mib'])} MiB", ""),
        (f"idle CPU ({_num(rest['window_s'])} s window, {_num(rest['settle_s'])} s after): API",
         f"{rest['api_cpu_pct']:.1f}% of a core", aim_list[3].text()),
        ("  node agent, mean / max", f"{ac['mean']:.1f}% / {ac['max']:.1f}%", aim_list[4].text()),
        ("  spawner, mean / max", f"{sc['mean']:.1f}% / {sc['max']:.1f}%", ""),
        ("  whole cluster (API + agents + spawners)", f"{rest['cluster_cpu_pct']:.1f}% of a core", aim_list[5].text()),
        ("  the benchmark itself (its watch)", f"{rest['bench_cpu_pct']:.1f}% of a core", ""),
        (f"node agents stop with {n_bulk} pods (SIGTERM -> exit), max", f"{_num(r['nodes_stop']['max_s'])} s", ""),
        ("pod watch: events / restarts", f"{r['watch']['events']:,} / {r['watch']['restarts']}", ""),
        ("processes left behind", ", ".join(map(str, r["leftover_processes"])) or "none", ""),
    ]
    width = max(len(label) for label, _, _ in rows) + 2
    value_width = max(len(value) for _, value, _ in rows) + 2
    mode = "quick" if quick else "default"
    lines = [f"kubemu nodes-and-pods benchmark ({mode} run, {r['run_seconds']:.0f} s; {env['cpus']} cpus; "
             f"Python {env['python']})", "",
             f"{'figure':<{width}}{'measured':<{value_width}}aim / reference",
             "-" * (width + value_width + 30)]
    lines += [f"{label:<{width}}{value:<{value_width}}{aim}".rstrip() for label, value, aim in rows]
    lines += ["", "against the aims (ratio = measured / aim):"]
    if quick:
        lines.append("  (a --quick run: fewer pods and nodes than the aims assume; the ratios are only a smoke signal)")
    for aim in aim_list:
        verdict = "meets the aim" if aim.met() else "MISSES the aim"
        lines.append(f"  {aim.label}: {_num(aim.measured)}{aim.unit} / {_num(aim.limit)}{aim.unit}"
                     f" = {aim.measured / aim.limit:.2f}x  {verdict} ({aim.source})")
    lines.append(f"  kubemu up --nodes {up['nodes']}: {_num(up['start_s'])} s, against kind / k3d's 15-20 s: "
                 f"{15 / up['start_s']:.0f}-{20 / up['start_s']:.0f}x faster to start")
    return "\n".join(lines)
