"""kubectl-shaped output of ``get``: ages, the aligned table per kind, names, JSON and YAML.

Objects are written as a real API server returns them; expected strings are what
kubectl prints for the same objects (whitespace included).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml

from emulator.cli import printers, tabwriter
from emulator.cli.columns import endpoint_connections, pod_summary
from emulator.cli.timefmt import format_age, format_rfc1123z, human_duration, now_rfc3339, parse_time
from emulator.model.proxycounts import (
    PROXY_COUNTS_PREFIX,
    address_key,
    counts_annotation,
    decode_counts,
    encode_counts,
    sum_counts,
)

NOW = datetime(2026, 11, 21, 17, 0, 0, tzinfo=UTC)
CREATED = "2026-11-21T16:40:06Z"  # 19m53s before NOW -> "19m"


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- time ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"), (-1, "0s"), (-1.5, "0s"), (-2, "<invalid>"), (45, "45s"), (119, "119s"), (120, "2m"),
        (150, "2m30s"), (599, "9m59s"), (600, "10m"), (95 * 60, "95m"), (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"), (3 * 3600 + 20 * 60, "3h20m"), (7 * 3600 + 59 * 60, "7h59m"), (8 * 3600, "8h"),
        (27 * 3600, "27h"), (47 * 3600 + 3599, "47h"), (48 * 3600, "2d"), (3 * 86400 + 5 * 3600, "3d5h"),
        (3 * 86400, "3d"), (7 * 86400 + 23 * 3600, "7d23h"), (8 * 86400, "8d"), (45 * 86400, "45d"),
        (729 * 86400, "729d"), (730 * 86400, "2y"), (730 * 86400 + 100 * 86400, "2y100d"),
        (8 * 365 * 86400, "8y"), (10 * 365 * 86400 + 50 * 86400, "10y"),
    ],
)
def test_human_duration_matches_apimachinery(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


def test_format_age_from_timestamps() -> None:
    assert format_age(CREATED, NOW) == "19m"
    assert format_age(None, NOW) == "<unknown>"
    assert format_age("", NOW) == "<unknown>"
    assert format_age(ago(seconds=-1), NOW) == "0s"  # clock skew of a second reads as now
    assert format_age(ago(seconds=-5), NOW) == "<invalid>"
    assert format_age(ago(days=3, hours=5, minutes=7), NOW) == "3d5h"
    assert format_age(CREATED, NOW.replace(tzinfo=None)) == "19m"  # a naive now is taken as UTC


def test_parse_time_accepts_rfc3339_variants() -> None:
    assert parse_time("2026-11-21T16:40:06Z") == datetime(2026, 11, 21, 16, 40, 6, tzinfo=UTC)
    assert parse_time("2026-11-21T16:40:06.123456Z").microsecond == 123456
    assert parse_time("2026-11-21T16:40:06.123456789Z").microsecond == 123456
    assert parse_time("2026-11-21T17:40:06+01:00") == datetime(2026, 11, 21, 16, 40, 6, tzinfo=UTC)


def test_now_rfc3339_is_utc_seconds() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", now_rfc3339())


def test_rfc1123z_as_describe_prints_dates() -> None:
    assert format_rfc1123z(CREATED) == "Sat, 21 Nov 2026 16:40:06 +0000"
    assert format_rfc1123z(CREATED, timezone(timedelta(hours=1))) == "Sat, 21 Nov 2026 17:40:06 +0100"
    assert format_rfc1123z(None) == "Mon, 01 Jan 0001 00:00:00 +0000"


# --- tabwriter --------------------------------------------------------------------------------


def test_table_pads_three_spaces_with_minimum_width_six() -> None:
    assert tabwriter.table([["NAME", "OK", "AGE"], ["a", "b", "5s"]]) == "NAME   OK    AGE\na      b     5s\n"


def test_describe_alignment_restarts_after_a_line_without_tabs() -> None:
    text = "Name:\tweb\nNamespace:\tdefault\nContainers:\n  web:\n    Image:\tnginx\n"
    assert tabwriter.describe(text) == (
        "Name:       web\nNamespace:  default\nContainers:\n  web:\n    Image:  nginx\n")


# --- Pod --------------------------------------------------------------------------------------


def pod(name: str = "web-1", *, phase: str = "Running", statuses: list[dict[str, Any]] | None = None,
        init: list[dict[str, Any]] | None = None, init_statuses: list[dict[str, Any]] | None = None,
        conditions: list[dict[str, Any]] | None = None, **meta: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": s["name"], "image": "nginx"} for s in statuses or []]
                            or [{"name": "web", "image": "nginx"}]}
    if init is not None:
        spec["initContainers"] = init
    status: dict[str, Any] = {"phase": phase}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if conditions is not None:
        status["conditions"] = conditions
    metadata = {"name": name, "namespace": "default", "creationTimestamp": CREATED, **meta}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


def running(name: str = "web", *, ready: bool = True, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts, "started": True,
            "state": {"running": {"startedAt": CREATED}}, **extra}


def waiting(reason: str, name: str = "web", restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}}, **extra}


def terminated(reason: str | None, exit_code: int, name: str = "web", signal: int = 0, **extra: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": exit_code, "startedAt": CREATED, "finishedAt": ago(minutes=1)}
    if reason:
        state["reason"] = reason
    if signal:
        state["signal"] = signal
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": state}, **extra}


READY_CONDITIONS = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]


def cells(obj: dict[str, Any], wide: bool = False) -> list[str]:
    return printers.row(obj, wide=wide, now=NOW)


def test_running_pod_row() -> None:
    assert cells(pod(statuses=[running()], conditions=READY_CONDITIONS)) == ["web-1", "1/1", "Running", "0", "19m"]


def test_crashloop_pod_shows_restarts_and_when_the_last_one_was() -> None:
    last = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(minutes=5, seconds=3)}}
    p = pod(statuses=[waiting("CrashLoopBackOff", restarts=5, lastState=last)])
    assert cells(p) == ["web-1", "0/1", "CrashLoopBackOff", "5 (5m3s ago)", "19m"]


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        (waiting("ContainerCreating"), "ContainerCreating"),
        (waiting("CreateContainerConfigError"), "CreateContainerConfigError"),
        (waiting("ImagePullBackOff"), "ImagePullBackOff"),
        (terminated("Error", 1), "Error"),
        (terminated("OOMKilled", 137), "OOMKilled"),
        (terminated(None, 137), "ExitCode:137"),
        (terminated(None, 0, signal=9), "Signal:9"),
    ],
)
def test_container_state_becomes_pod_status(container: dict[str, Any], expected: str) -> None:
    assert cells(pod(statuses=[container]))[2] == expected


def test_completed_pod() -> None:
    p = pod(phase="Succeeded", statuses=[terminated("Completed", 0)])
    assert cells(p)[:3] == ["web-1", "0/1", "Completed"]


def test_completed_container_beside_a_running_one_reads_running_or_notready() -> None:
    statuses = [terminated("Completed", 0, name="job"), running("web")]
    assert cells(pod(statuses=statuses, conditions=READY_CONDITIONS))[1:3] == ["1/2", "Running"]
    statuses = [running("web"), terminated("Completed", 0, name="job")]
    assert cells(pod(statuses=statuses, conditions=[{"type": "Ready", "status": "False"}]))[2] == "NotReady"


def test_init_container_progress() -> None:
    init = [{"name": "migrate", "image": "busybox"}]
    p = pod(phase="Pending", init=init, init_statuses=[running("migrate", ready=False)],
            statuses=[waiting("PodInitializing")])
    assert cells(p)[1:4] == ["0/1", "Init:0/1", "0"]
    init2 = init + [{"name": "seed", "image": "busybox"}]
    p = pod(phase="Pending", init=init2, init_statuses=[terminated("Completed", 0, name="migrate"),
                                                        waiting("PodInitializing", name="seed")],
            statuses=[waiting("PodInitializing")])
    assert cells(p)[2] == "Init:1/2"


def test_init_container_failures() -> None:
    init = [{"name": "migrate", "image": "busybox"}]
    crashing = waiting("CrashLoopBackOff", name="migrate", restarts=3)
    p = pod(phase="Pending", init=init, init_statuses=[crashing], statuses=[waiting("PodInitializing")])
    assert cells(p)[2:4] == ["Init:CrashLoopBackOff", "3"]
    p = pod(phase="Pending", init=init, init_statuses=[terminated("Error", 2, name="migrate")],
            statuses=[waiting("PodInitializing")])
    assert cells(p)[2] == "Init:Error"
    p = pod(phase="Pending", init=init, init_statuses=[terminated(None, 2, name="migrate")],
            statuses=[waiting("PodInitializing")])
    assert cells(p)[2] == "Init:ExitCode:2"


def test_sidecar_init_container_counts_as_a_container() -> None:
    init = [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]
    p = pod(init=init, init_statuses=[running("proxy", restarts=1)], statuses=[running()],
            conditions=READY_CONDITIONS)
    summary = pod_summary(p)
    assert (summary.ready, summary.total, summary.status, summary.restarts) == (2, 2, "Running", 1)


def test_terminating_pod() -> None:
    p = pod(statuses=[running()], conditions=READY_CONDITIONS, deletionTimestamp=ago(seconds=3),
            deletionGracePeriodSeconds=30)
    assert cells(p)[2] == "Terminating"
    done = pod(phase="Succeeded", statuses=[terminated("Completed", 0)], deletionTimestamp=ago(seconds=3))
    assert cells(done)[2] == "Completed"  # a finished pod keeps its status while it is deleted


def test_pod_status_reason_overrides_phase() -> None:
    evicted = pod(phase="Failed", statuses=[terminated(None, 0)])
    evicted["status"].update(reason="Evicted", message="The node was low on resource: memory.")
    evicted["status"]["containerStatuses"] = []
    assert cells(evicted)[2] == "Evicted"
    lost = pod(statuses=[running()], deletionTimestamp=ago(seconds=3))
    lost["status"]["reason"] = "NodeLost"
    assert cells(lost)[2] == "Unknown"


def test_pending_and_gated_pods() -> None:
    assert cells(pod(phase="Pending"))[1:4] == ["0/1", "Pending", "0"]
    gated = pod(phase="Pending",
                conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}])
    assert cells(gated)[2] == "SchedulingGated"


def test_pod_wide_columns() -> None:
    p = pod(statuses=[running()], conditions=READY_CONDITIONS)
    assert cells(p, wide=True)[5:] == ["<none>", "<none>", "<none>", "<none>"]
    p["spec"].update(nodeName="node-1", readinessGates=[{"conditionType": "example.com/lb"}])
    p["status"].update(podIP="10.244.0.5", podIPs=[{"ip": "10.244.0.5"}])
    assert cells(p, wide=True)[5:] == ["10.244.0.5", "node-1", "<none>", "0/1"]


def test_pod_table_exact() -> None:
    last = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(minutes=5)}}
    pods = [pod("web-1", statuses=[running()], conditions=READY_CONDITIONS),
            pod("web-2", statuses=[waiting("CrashLoopBackOff", restarts=12, lastState=last)])]
    assert printers.table(pods, now=NOW) == (
        "NAME    READY   STATUS             RESTARTS      AGE\n"
        "web-1   1/1     Running            0             19m\n"
        "web-2   0/1     CrashLoopBackOff   12 (5m ago)   19m\n"
    )
    assert printers.table(pods, now=NOW, no_headers=True).splitlines()[0].startswith("web-1   1/1")
    assert printers.table([], now=NOW) == ""


def test_all_namespaces_and_get_all_names() -> None:
    p = pod(statuses=[running()], conditions=READY_CONDITIONS)
    assert printers.table([p], now=NOW, all_namespaces=True, with_kind=True) == (
        "NAMESPACE   NAME        READY   STATUS    RESTARTS   AGE\n"
        "default     pod/web-1   1/1     Running   0          19m\n"
    )


# --- Service ----------------------------------------------------------------------------------


def service(name: str, type_: str, ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    base = {"type": type_, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": ports, **spec}
    return {"apiVersion": "v1", "kind": "Service", "status": {"loadBalancer": {}}, "spec": base,
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": CREATED}}


def test_service_rows() -> None:
    web = service("web", "ClusterIP", [{"port": 80, "protocol": "TCP", "targetPort": 8080},
                                        {"name": "metrics", "port": 9090, "protocol": "TCP"}], selector={"app": "web"})
    assert cells(web, wide=True) == ["web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP,9090/TCP", "19m", "app=web"]
    node_port = service("np", "NodePort", [{"port": 80, "nodePort": 30080, "protocol": "TCP"}])
    assert cells(node_port, wide=True)[3:] == ["<none>", "80:30080/TCP", "19m", "<none>"]
    lb = service("lb", "LoadBalancer", [{"port": 443, "nodePort": 31443, "protocol": "TCP"}])
    assert cells(lb)[3] == "<pending>"
    lb["status"]["loadBalancer"]["ingress"] = [{"ip": "192.168.49.100"}, {"ip": "192.168.49.101"}]
    assert cells(lb)[3] == "192.168.49.10..."  # clipped to 16 characters, as kubectl does
    assert cells(lb, wide=True)[3] == "192.168.49.100,192.168.49.101"
    ext = service("db", "ExternalName", [], externalName="db.example.com")
    ext["spec"].pop("clusterIP")
    ext["spec"].pop("clusterIPs")
    assert cells(ext) == ["db", "ExternalName", "<none>", "db.example.com", "<none>", "19m"]
    headless = service("db-hl", "ClusterIP", [{"port": 5432, "protocol": "TCP"}])
    headless["spec"].update(clusterIP="None", clusterIPs=["None"])
    assert cells(headless)[2] == "None"


def test_service_table_exact() -> None:
    svcs = [service("kubernetes", "ClusterIP", [{"name": "https", "port": 443, "protocol": "TCP"}]),
            service("web", "NodePort", [{"port": 80, "nodePort": 30080, "protocol": "TCP"}])]
    svcs[1]["spec"].update(clusterIP="10.96.12.34", clusterIPs=["10.96.12.34"])
    assert printers.table(svcs, now=NOW) == (
        "NAME         TYPE        CLUSTER-IP    EXTERNAL-IP   PORT(S)        AGE\n"
        "kubernetes   ClusterIP   10.96.0.10    <none>        443/TCP        19m\n"
        "web          NodePort    10.96.12.34   <none>        80:30080/TCP   19m\n"
    )


# --- workloads --------------------------------------------------------------------------------

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "fluent-bit:3"}]}}


def workload(kind: str, name: str, spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "spec": spec, "status": status,
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": CREATED}}


def test_deployment_row() -> None:
    d = workload("Deployment", "web",
                 {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
                 {"replicas": 3, "updatedReplicas": 2, "readyReplicas": 1, "availableReplicas": 1})
    assert printers.columns("Deployment", True) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS",
                                                     "IMAGES", "SELECTOR"]
    assert cells(d, wide=True) == ["web", "1/3", "2", "1", "19m", "web,log", "nginx:1.27,fluent-bit:3", "app=web"]
    fresh = workload("Deployment", "new", {"replicas": 2, "template": TEMPLATE}, {})
    assert cells(fresh) == ["new", "0/2", "0", "0", "19m"]


def test_replicaset_and_statefulset_rows() -> None:
    selector = {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c8f6d"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "api"]}]}
    rs = workload("ReplicaSet", "web-7d4b9c8f6d", {"replicas": 3, "selector": selector, "template": TEMPLATE},
                  {"replicas": 3, "readyReplicas": 2})
    assert cells(rs, wide=True) == ["web-7d4b9c8f6d", "3", "3", "2", "19m", "web,log", "nginx:1.27,fluent-bit:3",
                                    "app=web,pod-template-hash=7d4b9c8f6d,tier in (api,front)"]
    sts = workload("StatefulSet", "db", {"replicas": 3, "template": TEMPLATE}, {"replicas": 3, "readyReplicas": 2})
    assert cells(sts) == ["db", "2/3", "19m"]
    assert cells(sts, wide=True)[3:] == ["web,log", "nginx:1.27,fluent-bit:3"]


# --- Node -------------------------------------------------------------------------------------


def node(ready: str | None, **spec: Any) -> dict[str, Any]:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {"apiVersion": "v1", "kind": "Node", "spec": spec,
            "metadata": {"name": "node-1", "creationTimestamp": ago(days=3, hours=7),
                         "labels": {"kubernetes.io/hostname": "node-1", "node-role.kubernetes.io/control-plane": "",
                                    "node-role.kubernetes.io/worker": ""}},
            "status": {"conditions": conditions, "addresses": [{"type": "InternalIP", "address": "192.168.49.2"}],
                       "nodeInfo": {"kubeletVersion": "v1.31.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "kubemu://0.1.0"}}}


def test_node_rows() -> None:
    assert cells(node("True")) == ["node-1", "Ready", "control-plane,worker", "3d7h", "v1.31.0"]
    assert cells(node("False", unschedulable=True))[1] == "NotReady,SchedulingDisabled"
    assert cells(node(None))[1] == "Unknown"
    assert cells(node("True"), wide=True)[5:] == ["192.168.49.2", "<none>", "Debian GNU/Linux 12 (bookworm)",
                                                  "6.1.0", "kubemu://0.1.0"]
    bare = node("True")
    bare["metadata"]["labels"] = {}
    assert cells(bare)[2] == "<none>"
    assert printers.table([node("True")], now=NOW, all_namespaces=True).startswith("NAME     STATUS")


# --- config, namespaces -----------------------------------------------------------------------


def core(kind: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind,
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": CREATED}, **fields}


def test_namespace_configmap_secret_rows() -> None:
    ns = core("Namespace", "team-a", status={"phase": "Terminating"})
    assert printers.table([ns], now=NOW) == "NAME     STATUS        AGE\nteam-a   Terminating   19m\n"
    cm = core("ConfigMap", "cfg", data={"a": "1", "b": "2"}, binaryData={"logo.png": "iVBORw0KGgo="})
    assert cells(cm) == ["cfg", "3", "19m"]
    assert cells(core("ConfigMap", "empty")) == ["empty", "0", "19m"]
    secret = core("Secret", "tls", type="kubernetes.io/tls", data={"tls.crt": "Y2VydA==", "tls.key": "a2V5"})
    assert cells(secret) == ["tls", "kubernetes.io/tls", "2", "19m"]


def endpoints(*subsets: dict[str, Any]) -> dict[str, Any]:
    return core("Endpoints", "web", subsets=list(subsets))


def addresses(count: int) -> list[dict[str, str]]:
    return [{"ip": f"10.244.0.{i}"} for i in range(1, count + 1)]


def test_endpoints_cell() -> None:
    assert cells(core("Endpoints", "web"))[1] == "<none>"
    port = [{"port": 8080, "protocol": "TCP"}]
    assert cells(endpoints({"addresses": addresses(3), "ports": port}))[1] == (
        "10.244.0.1:8080,10.244.0.2:8080,10.244.0.3:8080")
    assert cells(endpoints({"addresses": addresses(6), "ports": port}))[1] == (
        "10.244.0.1:8080,10.244.0.2:8080,10.244.0.3:8080 + 3 more...")
    two_ports = [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "https", "port": 443, "protocol": "TCP"}]
    assert cells(endpoints({"addresses": addresses(2), "ports": two_ports}))[1] == (
        "10.244.0.1:80,10.244.0.2:80,10.244.0.1:443 + 1 more...")
    assert cells(endpoints({"addresses": addresses(2)}))[1] == "10.244.0.1,10.244.0.2"  # headless, no ports
    not_ready = endpoints({"notReadyAddresses": addresses(2), "ports": port})
    assert cells(not_ready)[1] == ""


def counted(obj: dict[str, Any], **proxies: str) -> dict[str, Any]:
    """``obj`` annotated as the proxies named by the keywords publish their connection counts."""
    obj["metadata"]["annotations"] = {counts_annotation(name): text for name, text in proxies.items()}
    return obj


def test_proxy_counts_encode_compact_and_decode_back() -> None:
    counts = {"10.244.0.2:8080": (0, 3), "10.244.0.1:8080": (2, 5)}
    text = encode_counts(counts)
    assert text == '{"10.244.0.1:8080":[2,5],"10.244.0.2:8080":[0,3]}'
    assert decode_counts(text) == counts
    assert counts_annotation("proxy") == PROXY_COUNTS_PREFIX + "proxy" == "proxy.kubemu.dev/proxy"
    assert address_key("10.244.0.1", 8080) == "10.244.0.1:8080"
    assert address_key("fd00::1", 8080) == "[fd00::1]:8080"


@pytest.mark.parametrize("text", ["", "not json", "[[1, 2]]", '"10.244.0.1:8080"', "null", "{", "[" * 100_000,
                                  '{"10.244.0.1:8080": 3}', '{"10.244.0.1:8080": [1]}', '{"a": [1, 2, 3]}',
                                  '{"a": [1, "2"]}', '{"a": [true, 1]}', '{"a": [-1, 2]}', '{"a": [1.0, 2]}',
                                  '{"a": [1e999, 2]}', '{"a": {"active": 1, "total": 2}}', '{"": [1, 2]}'])
def test_proxy_counts_decode_drops_garbage(text: str) -> None:
    assert decode_counts(text) == {}


def test_proxy_counts_keep_the_good_entries_beside_bad_ones_and_sum_proxies() -> None:
    assert decode_counts('{"a:1": [1, 2], "b:1": "x", "c:1": [0, 0]}') == {"a:1": (1, 2), "c:1": (0, 0)}
    annotations: dict[str, Any] = {
        "proxy.kubemu.dev/proxy": '{"10.244.0.1:8080":[1,4],"10.244.0.2:8080":[0,1]}',
        "proxy.kubemu.dev/proxy-2": '{"10.244.0.1:8080":[2,3]}',
        "proxy.kubemu.dev/broken": "{not json",
        "proxy.kubemu.dev/": '{"10.244.0.1:8080":[100,100]}',  # no proxy name: not a proxy's
        "proxy.kubemu.dev/odd": ["not", "text"],
        "example.com/other": '{"10.244.0.1:8080":[100,100]}',
    }
    assert sum_counts(annotations) == {"10.244.0.1:8080": (3, 7), "10.244.0.2:8080": (0, 1)}
    assert sum_counts(None) == {} == sum_counts({})
    assert sum_counts(["proxy.kubemu.dev/proxy"]) == {}  # type: ignore[arg-type]


def test_endpoints_wide_connections_cell() -> None:
    assert printers.columns("Endpoints", True) == ["NAME", "ENDPOINTS", "AGE", "CONNECTIONS"]
    port = [{"port": 8080, "protocol": "TCP"}]
    assert cells(endpoints({"addresses": addresses(2), "ports": port}), wide=True)[3] == "<none>"
    only_garbage = counted(endpoints({"addresses": addresses(2), "ports": port}), proxy="{oops")
    assert cells(only_garbage, wide=True)[3] == "<none>"
    two = counted(endpoints({"addresses": addresses(2), "ports": port}),
                  proxy='{"10.244.0.1:8080":[1,4]}', proxy_2='{"10.244.0.1:8080":[2,3],"10.244.0.2:8080":[0,2]}',
                  broken="[1,2]")
    assert cells(two, wide=True) == ["web", "10.244.0.1:8080,10.244.0.2:8080", "19m",
                                     "10.244.0.1:8080=3/7,10.244.0.2:8080=0/2"]
    assert cells(two) == ["web", "10.244.0.1:8080,10.244.0.2:8080", "19m"]
    # Ready addresses in ENDPOINTS order with 0/0 where no connection was made yet, then addresses
    # the proxies still report on that are no longer ready, in natural order; truncated as ENDPOINTS is.
    many = counted(endpoints({"addresses": addresses(4), "ports": port}),
                   proxy='{"10.244.0.10:8080":[1,9],"10.244.0.9:8080":[0,1],"10.244.0.3:8080":[5,5]}')
    assert cells(many, wide=True)[3] == (
        "10.244.0.1:8080=0/0,10.244.0.2:8080=0/0,10.244.0.3:8080=5/5 + 3 more...")
    assert endpoint_connections(many) == [
        ("10.244.0.1:8080", 0, 0), ("10.244.0.2:8080", 0, 0), ("10.244.0.3:8080", 5, 5), ("10.244.0.4:8080", 0, 0),
        ("10.244.0.9:8080", 0, 1), ("10.244.0.10:8080", 1, 9)]
    gone = counted(core("Endpoints", "web"), proxy='{"10.244.0.7:8080":[1,1]}')
    assert cells(gone, wide=True)[1:] == ["<none>", "19m", "10.244.0.7:8080=1/1"]
    assert printers.table([two], now=NOW, wide=True) == (
        "NAME   ENDPOINTS                         AGE   CONNECTIONS\n"
        "web    10.244.0.1:8080,10.244.0.2:8080   19m   10.244.0.1:8080=3/7,10.244.0.2:8080=0/2\n")


def test_ingress_rows() -> None:
    def ingress(**spec: Any) -> dict[str, Any]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "spec": spec, "status": {"loadBalancer": {}},
                "metadata": {"name": "x", "namespace": "default", "creationTimestamp": CREATED}}

    backend = {"service": {"name": "web", "port": {"number": 80}}}
    plain = ingress(rules=[{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}])
    assert cells(plain) == ["x", "<none>", "*", "", "80", "19m"]
    hosts = ingress(ingressClassName="nginx", tls=[{"hosts": ["a.example.com"], "secretName": "a-tls"}],
                    rules=[{"host": h} for h in ("a.example.com", "b.example.com")])
    hosts["status"]["loadBalancer"]["ingress"] = [{"ip": "192.168.49.2"}]
    assert cells(hosts) == ["x", "nginx", "a.example.com,b.example.com", "192.168.49.2", "80, 443", "19m"]
    many = ingress(rules=[{"host": f"{c}.example.com"} for c in "abcde"])
    assert cells(many)[2] == "a.example.com,b.example.com,c.example.com + 2 more..."
    assert printers.table([hosts], now=NOW, with_kind=True).splitlines()[1].startswith("ingress.networking.k8s.io/x")


def test_pvc_rows() -> None:
    bound = core("PersistentVolumeClaim", "data-db-0",
                 spec={"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                       "storageClassName": "standard", "volumeMode": "Filesystem", "volumeName": "pvc-0b1c"},
                 status={"phase": "Bound", "accessModes": ["ReadWriteOnce", "ReadWriteOncePod"],
                         "capacity": {"storage": "1Gi"}})
    assert printers.columns("PersistentVolumeClaim", False) == [
        "NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"]
    assert cells(bound) == ["data-db-0", "Bound", "pvc-0b1c", "1Gi", "RWO,RWOP", "standard", "<unset>", "19m"]
    assert cells(bound, wide=True)[-1] == "Filesystem"
    pending = core("PersistentVolumeClaim", "scratch", spec={"accessModes": ["ReadWriteMany"],
                                                             "resources": {"requests": {"storage": "5Gi"}}},
                   status={"phase": "Pending"})
    assert cells(pending, wide=True) == ["scratch", "Pending", "", "", "", "", "<unset>", "19m", "<unset>"]


def test_event_rows() -> None:
    event = {"apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": "BackOff",
             "message": "Back-off restarting failed container web\n", "count": 7,
             "firstTimestamp": ago(minutes=12), "lastTimestamp": ago(seconds=30),
             "source": {"component": "kubelet", "host": "node-1"},
             "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default",
                                "fieldPath": "spec.containers{web}"},
             "metadata": {"name": "web-1.17f", "namespace": "default", "creationTimestamp": ago(minutes=12)}}
    assert printers.table([event], now=NOW) == (
        "LAST SEEN   TYPE      REASON    OBJECT      MESSAGE\n"
        "30s         Warning   BackOff   pod/web-1   Back-off restarting failed container web\n"
    )
    assert cells(event, wide=True) == ["30s", "Warning", "BackOff", "pod/web-1", "spec.containers{web}",
                                       "kubelet, node-1", "Back-off restarting failed container web", "12m", "7",
                                       "web-1.17f"]
    single = {**event, "count": None, "lastTimestamp": None}
    assert cells(single)[0] == "12m"


def test_unknown_kind_prints_name_and_age() -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget",
              "metadata": {"name": "w1", "namespace": "default", "creationTimestamp": CREATED}}
    assert printers.table([widget], now=NOW) == "NAME   AGE\nw1     19m\n"
    assert printers.table([widget], now=NOW, with_kind=True) == (
        "NAME                    AGE\nwidget.example.com/w1   19m\n")


@pytest.mark.parametrize("kind", ["Pod", "Service", "Deployment", "ReplicaSet", "StatefulSet", "Node", "Namespace",
                                  "ConfigMap", "Secret", "Endpoints", "Ingress", "PersistentVolumeClaim", "Event",
                                  "Widget"])
@pytest.mark.parametrize("wide", [False, True])
def test_every_row_fits_its_header(kind: str, wide: bool) -> None:
    bare = {"kind": kind, "metadata": {"name": "x", "namespace": "default", "creationTimestamp": CREATED}}
    assert len(printers.row(bare, wide=wide, now=NOW)) == len(printers.columns(kind, wide))
    assert len(printers.row(bare, wide=wide, now=NOW, all_namespaces=True)) == len(
        printers.columns(kind, wide, all_namespaces=True))


def test_watch_style_rendering_of_single_rows() -> None:
    p = pod(statuses=[running()], conditions=READY_CONDITIONS)
    assert printers.render(None, [printers.row(p, wide=False, now=NOW)]) == "web-1   1/1   Running   0     19m\n"


# --- names, JSON, YAML ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1"}}, "pod/web-1"),
        ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}, "service/web"),
        ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}, "deployment.apps/web"),
        ({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-abc"}}, "replicaset.apps/web-abc"),
        ({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"}}, "statefulset.apps/db"),
        ({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "x"}},
         "ingress.networking.k8s.io/x"),
        ({"kind": "Deployment", "metadata": {"name": "web"}}, "deployment.apps/web"),
    ],
)
def test_name_line(obj: dict[str, Any], expected: str) -> None:
    assert printers.name_line(obj) == expected


def test_to_json_is_kubectl_shaped() -> None:
    cm = core("ConfigMap", "cfg", data={"greeting": "héllo <b>"})
    text = printers.to_json(cm)
    assert text.startswith('{\n    "apiVersion": "v1",\n    "kind": "ConfigMap",\n    "metadata": {\n        "name"')
    assert text.endswith("}\n")
    assert "héllo <b>" in text
    assert json.loads(text) == cm


def test_to_yaml_block_style_in_object_order() -> None:
    cm = core("ConfigMap", "cfg", data={"app.properties": "color=blue\nsize=3\n", "port": "80", "empty": ""})
    text = printers.to_yaml(cm)
    assert text == (
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: cfg\n"
        "  namespace: default\n"
        '  creationTimestamp: "2026-11-21T16:40:06Z"\n'
        "data:\n"
        "  app.properties: |\n"
        "    color=blue\n"
        "    size=3\n"
        '  port: "80"\n'
        '  empty: ""\n'
    )
    assert yaml.safe_load(text) == cm


def test_to_yaml_lists_like_kubectl() -> None:
    text = printers.to_yaml({"spec": {"containers": [{"name": "web", "args": ["-c", "x"]}]}})
    assert text == "spec:\n  containers:\n  - name: web\n    args:\n    - -c\n    - x\n"


def test_as_list() -> None:
    pods = [pod("a"), pod("b")]
    wrapped = printers.as_list(pods)
    assert wrapped == {"apiVersion": "v1", "items": pods, "kind": "List", "metadata": {"resourceVersion": ""}}
    assert list(wrapped) == ["apiVersion", "items", "kind", "metadata"]
