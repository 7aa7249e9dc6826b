"""The workloads benchmark's figures as a table, each beside its aim or the
Kubernetes model's lower bound, and the aims as data. Pure: no I/O but the
returned text.

The aims are the issue's (idle CPU < 5 % of a core for the whole cluster;
1,000 pods Running in < 30 s, set for bare pods in ``pods_bench``). The model's
figures (``workloads_model``) are lower bounds computed for a real cluster at
its defaults, never measured: a ratio against one says how close kubemu comes
to a Kubernetes that would spend no time at all on anything but probe periods.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from bench.pods_report import _num

Obj = dict[str, Any]
Row = tuple[str, str, str]


@dataclass(frozen=True)
class Aim:
    label: str
    measured: float
    limit: float
    unit: str
    source: str
    model: bool = False  # a computed lower bound for Kubernetes, not an aim to stay under

    def met(self) -> bool:
        return self.measured < self.limit

    def verdict(self) -> str:
        if self.model:
            return "faster than the model allows Kubernetes" if self.met() else "above the bound, as a real cluster is"
        return "meets the aim" if self.met() else "MISSES the aim"


def _aim_list(r: Obj) -> list[Aim]:
    found: list[Aim] = []
    bulk, rest, model = r.get("bulk"), r.get("rest"), r.get("model", {})
    if bulk:
        found.append(Aim(f"{bulk['pods']:,} Deployment pods ({bulk['deployments']} x {bulk['replicas']}), all "
                         "available", bulk["all_available_s"], 30, " s", "issue's aim for 1,000 bare pods"))
    if rest:
        found.append(Aim("idle CPU, whole cluster", rest["cluster_cpu_pct"], 5, "% of a core", "issue"))
        found.append(Aim("idle CPU, API process (all controllers)", rest["api_cpu_pct"], 5, "% of a core", "issue"))
    for key, kind, done in (("deployment", "Deployment", "all available"),
                            ("statefulset", "StatefulSet", "all Ready")):
        w = (r.get(key) or {}).get("ready") or {}
        if "create_s" in w:
            found.append(Aim(f"(b) {kind} apply -> {done}", w["create_s"], model[f"{key}_create"]["seconds"], " s",
                             "Kubernetes model", model=True))
        if w.get("rollout", {}).get("count"):
            found.append(Aim(f"(b) {kind} rollout, p50", w["rollout"]["p50_s"], model[f"{key}_rollout"]["seconds"],
                             " s", "Kubernetes model", model=True))
    return found


def aims(results: Obj) -> list[Obj]:
    return [{"label": a.label, "measured": a.measured, "unit": a.unit.strip(), "aim": a.limit, "source": a.source,
             "model_lower_bound": a.model, "ratio": a.measured / a.limit, "met": a.met()}
            for a in _aim_list(results)]


def _s(x: float) -> str:
    return f"{_num(x)} s"


def _model(bound: Obj) -> str:
    return f"model, Kubernetes >= {_num(bound['seconds'])} s ({bound['waves']} probe period" \
           f"{'s' if bound['waves'] != 1 else ''})"


def _series(w: Obj, label: str, create_what: str, create_model: str, rollout_model: str) -> list[Row]:
    """The rows of one workload variant: create, rollouts, where the time went."""
    if "create_s" not in w:
        return [(label, "FAILED", w.get("failed", "")[:120])]
    rollout, n = w["rollout"], w["rollout"]["count"]
    rows: list[Row] = [(f"{label}: apply -> {create_what}", _s(w["create_s"]), create_model)]
    if "created_in_order" in w:
        rows.append(("  created in order, each after the one before was Ready",
                     "yes" if w["created_in_order"] else "NO", "OrderedReady"))
    rows.append((f"  roll to a new template -> complete, p50 / max ({n})",
                 f"{_num(rollout['p50_s'])} / {_num(rollout['max_s'])} s", rollout_model))
    if n:
        replicas = w["replicas"]
        rows += [
            ("  apply -> first new pod / -> last new pod Ready, p50",
             f"{_num(w['to_first_new_pod_p50_s'])} / {_num(w['to_last_new_pod_ready_p50_s'])} s", ""),
            ("  last new pod Ready -> reported complete, p50", _s(w["last_ready_to_complete_p50_s"]), ""),
            ("  pods at once, most / Ready, fewest (pods counted, all rollouts)",
             f"{w['max_pods']} / {w['min_ready']}", w.get("bounds_text", f"of {replicas}")),
            ("  API CPU per rollout (the controllers' work)", _s(w["api_cpu_per_rollout_s"]), ""),
            (f"  {w['kind']} versions seen per rollout (its spec and status writes)",
             f"{w['versions_per_rollout']:.0f}", ""),
        ]
    if "failed" in w:
        rows.append(("  FAILED", w["failed"][:120], ""))
    return rows


def table(r: Obj, *, quick: bool = False) -> str:
    env, plan, model = r["environment"], r["plan"], r["model"]
    surge, unavailable = model["fenceposts"]
    nodes = plan["nodes"]
    rows: list[Row] = [(f"1. Deployment, {plan['replicas']} replicas, RollingUpdate 25%/25% (maxSurge {surge}, "
                        f"maxUnavailable {unavailable}), {nodes} nodes", "", "")]
    bounds = f"<= {plan['replicas'] + surge} / >= {plan['replicas'] - unavailable} (the strategy's limits)"
    for variant, label in (("plain", "(a) no readiness probe"),
                           ("ready", f"(b) readinessProbe exec true, periodSeconds {plan['probe_period']}")):
        w = dict(r["deployment"][variant], bounds_text=bounds)
        is_b = variant == "ready"
        rows += _series(w, label, f"all {plan['replicas']} available",
                        _model(model["deployment_create"]) if is_b else "",
                        _model(model["deployment_rollout"]) if is_b else "")
    sts = r["statefulset"]
    rows.append((f"2. StatefulSet, {plan['sts_replicas']} replicas, OrderedReady, RollingUpdate", "", ""))
    if "skipped" in sts:
        rows.append(("  skipped", sts["skipped"], ""))
    else:
        for variant, label in (("plain", "(a) no readiness probe"),
                               ("ready", f"(b) readinessProbe exec true, periodSeconds {plan['probe_period']}")):
            is_b = variant == "ready"
            w = dict(sts[variant], bounds_text=f"of {plan['sts_replicas']}")
            rows += _series(w, label, f"all {plan['sts_replicas']} Ready",
                            _model(model["statefulset_create"]) if is_b else "",
                            _model(model["statefulset_rollout"]) if is_b else "")
    bulk, rest = r["bulk"], r["rest"]
    ac, ar = rest["agent_cpu_pct"], rest["agent_rss_mib"]
    rows += [
        (f"3. {bulk['deployments']} Deployments x {bulk['replicas']} replicas over {nodes} nodes: "
         f"all {bulk['pods']:,} available", _s(bulk["all_available_s"]),
         "< 30 s (issue's aim for 1,000 bare pods; see pods_bench)"),
        ("  each Deployment available, p50 / max",
         f"{_num(bulk['each_available_s']['p50_s'])} / {_num(bulk['each_available_s']['max_s'])} s", ""),
        ("  each pod Ready (from the first apply), p50 / max",
         f"{_num(bulk['pod_ready_p50_s'])} / {_num(bulk['pod_ready_max_s'])} s", ""),
        ("  pods per node, min / max", f"{bulk['pods_per_node']['min']} / {bulk['pods_per_node']['max']} on "
         f"{bulk['pods_per_node']['nodes']} nodes", ""),
        ("  CPU meanwhile: API / agents (sum) / benchmark",
         f"{bulk['api_cpu_pct']:.0f}% / {bulk['agents_cpu_pct']:.0f}% / {bulk['bench_cpu_pct']:.0f}% of a core", ""),
        (f"  API RSS at {bulk['pods']:,} pods / peak", f"{_num(rest['api_rss_mib'])} / "
         f"{_num(rest['api_peak_rss_mib'])} MiB", ""),
        (f"  node agent RSS, mean / max ({ar['count']})", f"{_num(ar['mean'])} / {_num(ar['max'])} MiB", ""),
        (f"  idle CPU ({_num(rest['window_s'])} s window, {_num(rest['settle_s'])} s after): API (all controllers)",
         f"{rest['api_cpu_pct']:.1f}% of a core", "< 5% (issue)"),
        ("  node agent, mean / max", f"{ac['mean']:.1f}% / {ac['max']:.1f}%", ""),
        ("  spawners, sum", f"{rest['spawner_cpu_pct']['sum']:.1f}%", ""),
        ("  whole cluster (API + agents + spawners)", f"{rest['cluster_cpu_pct']:.1f}% of a core", "< 5% (issue)"),
        ("  the benchmark itself (its informers)", f"{rest['bench_cpu_pct']:.1f}% of a core", ""),
        ("  container processes", f"{rest['container_processes']:,}", ""),
        ("warnings and errors the API and agents logged", str(r["logged"]["lines"]),
         (r["logged"]["first"] or [""])[0][:100]),
        ("processes left behind", ", ".join(map(str, r["leftover_processes"])) or "none", ""),
    ]
    width = max(len(label) for label, _, _ in rows) + 2
    value_width = max(len(value) for _, value, _ in rows) + 2
    mode = "quick" if quick else "default"
    lines = [f"kubemu workloads benchmark ({mode} run, {r['run_seconds']:.0f} s; {env['cpus']} cpus; "
             f"Python {env['python']})", "",
             f"{'figure':<{width}}{'measured':<{value_width}}aim / reference",
             "-" * (width + value_width + 30)]
    lines += [f"{label:<{width}}{value:<{value_width}}{aim}".rstrip() for label, value, aim in rows]
    lines += ["", "against the aims and the model (ratio = measured / aim or bound):"]
    if quick:
        lines.append("  (a --quick run: fewer pods, nodes and rollouts than the aims assume; only a smoke signal)")
    for aim in _aim_list(r):
        lines.append(f"  {aim.label}: {_num(aim.measured)}{aim.unit} / {_num(aim.limit)}{aim.unit}"
                     f" = {aim.measured / aim.limit:.2f}x  {aim.verdict()} ({aim.source})")
    note = ("The model is computed, not measured (no Kubernetes runs here): Kubernetes' own rollout arithmetic at "
            "its defaults, with every API call, sync and container start taking no time, and each probed pod Ready "
            "one probe period after its kubelet took it on. Deployment rollout: "
            f"{model['deployment_rollout']['basis']}: ceil({plan['replicas']} / ({surge} + {unavailable})) waves, "
            f"not ceil({plan['replicas']} / {unavailable}). kubemu runs a readiness probe as soon as the container "
            "starts, not a period later, which is most of its lead over the bound.")
    lines += ["", *textwrap.wrap(note, 110)]
    return "\n".join(lines)
