"""``kubectl describe pod``, and the container/volume/template sections workloads reuse."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulator.cli.columns import Obj, meta, spec, status
from emulator.cli.describe_base import (
    Context,
    Writer,
    annotations_multiline,
    controlled_by,
    events_section,
    go_bool,
    labels_multiline,
    name_namespace,
    title_bool,
)

_PROBE_DEFAULTS = {"initialDelaySeconds": 0, "timeoutSeconds": 1, "periodSeconds": 10,
                   "successThreshold": 1, "failureThreshold": 3}


def describe_pod(pod: Obj, events: list[dict[str, Any]], ctx: Context) -> str:
    w = Writer()
    pod_spec, pod_status, pod_meta = spec(pod), status(pod), meta(pod)
    name_namespace(w, pod)
    if pod_spec.get("priority") is not None:
        w.write(0, f"Priority:\t{pod_spec['priority']}\n")
    if pod_spec.get("priorityClassName"):
        w.write(0, f"Priority Class Name:\t{pod_spec['priorityClassName']}\n")
    if pod_spec.get("runtimeClassName"):
        w.write(0, f"Runtime Class Name:\t{pod_spec['runtimeClassName']}\n")
    if pod_spec.get("serviceAccountName"):
        w.write(0, f"Service Account:\t{pod_spec['serviceAccountName']}\n")
    node = pod_spec.get("nodeName")
    w.write(0, f"Node:\t{node}/{pod_status.get('hostIP', '')}\n" if node else "Node:\t<none>\n")
    if pod_status.get("startTime"):
        w.write(0, f"Start Time:\t{ctx.date(pod_status['startTime'])}\n")
    labels_multiline(w, "Labels", pod_meta.get("labels"))
    annotations_multiline(w, "Annotations", pod_meta.get("annotations"))
    phase = pod_status.get("phase", "")
    if pod_meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        grace = pod_meta.get("deletionGracePeriodSeconds", pod_spec.get("terminationGracePeriodSeconds", 30))
        w.write(0, f"Status:\tTerminating (lasts {ctx.age(pod_meta['deletionTimestamp'])})\n")
        w.write(0, f"Termination Grace Period:\t{grace}s\n")
    else:
        w.write(0, f"Status:\t{phase}\n")
    if pod_status.get("reason"):
        w.write(0, f"Reason:\t{pod_status['reason']}\n")
    if pod_status.get("message"):
        w.write(0, f"Message:\t{pod_status['message']}\n")
    w.write(0, f"IP:\t{pod_status.get('podIP', '')}\n")
    ips = pod_status.get("podIPs") or []
    if ips:
        w.write(0, "IPs:\n")
        for ip in ips:
            w.write(1, f"IP:\t{ip.get('ip', '')}\n")
    else:
        w.write(0, "IPs:\t<none>\n")
    if owner := controlled_by(pod):
        w.write(0, f"Controlled By:\t{owner}\n")
    if pod_status.get("nominatedNodeName"):
        w.write(0, f"NominatedNodeName:\t{pod_status['nominatedNodeName']}\n")
    if pod_spec.get("initContainers"):
        containers(w, "Init Containers", pod_spec["initContainers"], pod_status.get("initContainerStatuses"),
                   pod, "", ctx)
    containers(w, "Containers", pod_spec.get("containers") or [], pod_status.get("containerStatuses"), pod, "", ctx)
    conditions = pod_status.get("conditions") or []
    if pod_spec.get("readinessGates"):
        w.write(0, "Readiness Gates:\n  Type\tStatus\n")
        by_type = {c.get("type"): c.get("status") for c in conditions}
        for gate in pod_spec["readinessGates"]:
            w.write(1, f"{gate.get('conditionType', '')} \t{by_type.get(gate.get('conditionType'), '<none>')} \n")
    if conditions:
        w.write(0, "Conditions:\n  Type\tStatus\n")
        for condition in conditions:
            w.write(1, f"{condition.get('type', '')} \t{condition.get('status', '')} \n")
    volumes(w, pod_spec.get("volumes") or [], "")
    w.write(0, f"QoS Class:\t{pod_status.get('qosClass') or qos_class(pod)}\n")
    labels_multiline(w, "Node-Selectors", pod_spec.get("nodeSelector"))
    tolerations(w, "Tolerations", pod_spec.get("tolerations") or [])
    events_section(w, events, ctx)
    return w.text()


def qos_class(pod: Obj) -> str:
    """The pod's QoS class when status.qosClass is absent (Guaranteed/Burstable/BestEffort)."""
    all_containers = (spec(pod).get("containers") or []) + (spec(pod).get("initContainers") or [])
    resources = [c.get("resources") or {} for c in all_containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                return "Burstable"
    return "Guaranteed"


def tolerations(w: Writer, title: str, items: list[Mapping[str, Any]], initial_indent: str = "") -> None:
    w.write(0, f"{initial_indent}{title}:\t")
    if not items:
        w.write(0, "<none>\n")
        return
    for index, toleration in enumerate(sorted(items, key=lambda t: str(t.get("key", "")))):
        if index:
            w.write(0, initial_indent + "\t")
        key, value, effect = toleration.get("key", ""), toleration.get("value", ""), toleration.get("effect", "")
        text = key + (f"={value}" if value else "") + (f":{effect}" if effect else "")
        if toleration.get("operator") == "Exists" and not value:
            text += " op=Exists" if key or effect else "op=Exists"
        if toleration.get("tolerationSeconds") is not None:
            text += f" for {toleration['tolerationSeconds']}s"
        w.write(0, text + "\n")


def containers(w: Writer, label: str, items: list[Mapping[str, Any]], statuses: list[Mapping[str, Any]] | None,
               pod: Obj | None, space: str, ctx: Context) -> None:
    """describeContainers; ``space`` is ``"  "`` inside a pod template, where there are no statuses."""
    by_name = {s.get("name"): s for s in statuses or []}
    w.write(0, f"{space}{label}:{'' if items else ' <none>'}\n")
    for container in items:
        cs = by_name.get(container.get("name"))
        w.write(1, f"{' ' if space else ''}{container.get('name', '')}:\n")
        if cs is not None:
            w.write(2, f"Container ID:\t{cs.get('containerID', '')}\n")
        w.write(2, f"Image:\t{container.get('image', '')}\n")
        if cs is not None:
            w.write(2, f"Image ID:\t{cs.get('imageID', '')}\n")
        ports = container.get("ports") or []
        port_text = ", ".join(_port(p, p.get("containerPort")) for p in ports)
        host_text = ", ".join(_port(p, p.get("hostPort", 0)) for p in ports)
        w.write(2, f"Ports:\t{port_text}\n" if "," in port_text else f"Port:\t{port_text or '<none>'}\n")
        w.write(2, f"Host Ports:\t{host_text}\n" if "," in host_text else f"Host Port:\t{host_text or '<none>'}\n")
        for title, lines in (("Command", container.get("command")), ("Args", container.get("args"))):
            if lines:
                w.write(2, f"{title}:\n")
                for item in lines:
                    for line in str(item).split("\n"):
                        w.write(3, f"{line}\n")
        if cs is not None:
            _state(w, "State", cs.get("state") or {}, ctx)
            last = cs.get("lastState") or {}
            if last.get("terminated"):
                _state(w, "Last State", last, ctx)
            w.write(2, f"Ready:\t{title_bool(cs.get('ready'))}\n")
            w.write(2, f"Restart Count:\t{cs.get('restartCount', 0)}\n")
        resources(w, container.get("resources") or {}, 2)
        for title, key in (("Liveness", "livenessProbe"), ("Readiness", "readinessProbe"), ("Startup", "startupProbe")):
            if container.get(key):
                w.write(2, f"{title}:\t{describe_probe(container[key])}\n")
        if container.get("envFrom"):
            _env_from(w, container["envFrom"])
        _env(w, container, pod)
        mounts = sorted(container.get("volumeMounts") or [], key=lambda m: str(m.get("mountPath", "")))
        w.write(2, "Mounts:\n" if mounts else "Mounts:\t<none>\n")
        for mount in mounts:
            flags = ["ro" if mount.get("readOnly") else "rw"]
            if mount.get("subPath"):
                flags.append(f'path="{mount["subPath"]}"')
            w.write(3, f"{mount.get('mountPath', '')} from {mount.get('name', '')} ({','.join(flags)})\n")


def _port(port: Mapping[str, Any], number: Any) -> str:
    text = f"{number}/{port.get('protocol', 'TCP')}"
    return f"{text} ({port['name']})" if port.get("name") else text


def _state(w: Writer, title: str, state: Mapping[str, Any], ctx: Context) -> None:
    if "running" in state:
        w.write(2, f"{title}:\tRunning\n")
        w.write(3, f"Started:\t{ctx.date((state['running'] or {}).get('startedAt'))}\n")
    elif "terminated" in state:
        terminated = state["terminated"] or {}
        w.write(2, f"{title}:\tTerminated\n")
        if terminated.get("reason"):
            w.write(3, f"Reason:\t{terminated['reason']}\n")
        if terminated.get("message"):
            w.write(3, f"Message:\t{terminated['message']}\n")
        w.write(3, f"Exit Code:\t{terminated.get('exitCode', 0)}\n")
        if terminated.get("signal"):
            w.write(3, f"Signal:\t{terminated['signal']}\n")
        w.write(3, f"Started:\t{ctx.date(terminated.get('startedAt'))}\n")
        w.write(3, f"Finished:\t{ctx.date(terminated.get('finishedAt'))}\n")
    else:
        w.write(2, f"{title}:\tWaiting\n")
        reason = (state.get("waiting") or {}).get("reason")
        if reason:
            w.write(3, f"Reason:\t{reason}\n")


def resources(w: Writer, requirements: Mapping[str, Any], level: int) -> None:
    for title in ("Limits", "Requests"):
        values = requirements.get(title.lower()) or {}
        if values:
            w.write(level, f"{title}:\n")
        for name in sorted(values):
            w.write(level + 1, f"{name}:\t{values[name]}\n")


def describe_probe(probe: Mapping[str, Any]) -> str:
    """DescribeProbe: ``http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3``."""
    p = {**_PROBE_DEFAULTS, **probe}
    attrs = (f"delay={p['initialDelaySeconds']}s timeout={p['timeoutSeconds']}s period={p['periodSeconds']}s "
             f"#success={p['successThreshold']} #failure={p['failureThreshold']}")
    if probe.get("exec") is not None:
        return f"exec [{' '.join(str(c) for c in probe['exec'].get('command') or [])}] {attrs}"
    if probe.get("httpGet") is not None:
        get = probe["httpGet"]
        host, port = get.get("host", ""), str(get.get("port", ""))
        hostport = (f"[{host}]:{port}" if ":" in host else f"{host}:{port}") if port else host
        return f"http-get {str(get.get('scheme', 'HTTP')).lower()}://{hostport}{get.get('path', '')} {attrs}"
    if probe.get("tcpSocket") is not None:
        sock = probe["tcpSocket"]
        return f"tcp-socket {sock.get('host', '')}:{sock.get('port', '')} {attrs}"
    if probe.get("grpc") is not None:
        return f"grpc <pod>:{probe['grpc'].get('port', '')} {probe['grpc'].get('service', '')} {attrs}"
    return f"unknown {attrs}"


def _field_value(pod: Obj | None, path: str) -> str:
    """The few downward-API field paths kubectl resolves for an env var's value."""
    if pod is None:
        return ""
    if path.startswith(("metadata.labels['", "metadata.annotations['")):
        section, _, key = path.partition("['")
        return str((meta(pod).get(section.split(".")[1]) or {}).get(key.rstrip("']"), ""))
    node: Any = pod
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return "" if node is None or isinstance(node, (Mapping, list)) else str(node)


def _env(w: Writer, container: Mapping[str, Any], pod: Obj | None) -> None:
    env = container.get("env") or []
    w.write(2, "Environment:\n" if env else "Environment:\t<none>\n")
    for var in env:
        name, source = var.get("name", ""), var.get("valueFrom")
        if source is None:
            for index, line in enumerate(str(var.get("value", "")).split("\n")):
                w.write(3, f"{name}:\t{line}\n" if index == 0 else f"\t{line}\n")
        elif source.get("fieldRef"):
            ref = source["fieldRef"]
            value = _field_value(pod, ref.get("fieldPath", ""))
            w.write(3, f"{name}:\t{value} ({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath', '')})\n")
        elif source.get("resourceFieldRef"):
            resource = source["resourceFieldRef"].get("resource", "")
            kind, _, res = resource.partition(".")
            quantity = ((container.get("resources") or {}).get(kind) or {}).get(res)
            shown = str(quantity) if quantity is not None else ("node allocatable" if kind == "limits" else "0")
            w.write(3, f"{name}:\t{shown} ({resource})\n")
        elif source.get("secretKeyRef"):
            ref = source["secretKeyRef"]
            w.write(3, f"{name}:\t<set to the key '{ref.get('key', '')}' in secret '{ref.get('name', '')}'>"
                       f"\tOptional: {go_bool(ref.get('optional'))}\n")
        elif source.get("configMapKeyRef"):
            ref = source["configMapKeyRef"]
            w.write(3, f"{name}:\t<set to the key '{ref.get('key', '')}' of config map '{ref.get('name', '')}'>"
                       f"\tOptional: {go_bool(ref.get('optional'))}\n")


def _env_from(w: Writer, sources: list[Mapping[str, Any]]) -> None:
    w.write(2, "Environment Variables from:\n")
    for source in sources:
        kind, ref = ("ConfigMap", source["configMapRef"]) if source.get("configMapRef") else (
            "Secret", source.get("secretRef") or {})
        prefix = f" with prefix '{source['prefix']}'" if source.get("prefix") else ""
        w.write(3, f"{ref.get('name', '')}\t{kind}{prefix}\tOptional: {go_bool(ref.get('optional'))}\n")


def volumes(w: Writer, items: list[Mapping[str, Any]], space: str) -> None:
    if not items:
        w.write(0, f"{space}Volumes:\t<none>\n")
        return
    w.write(0, f"{space}Volumes:\n")
    for volume in items:
        w.write(1, f"{' ' if space else ''}{volume.get('name', '')}:\n")
        for line in _volume_source(volume):
            w.write(2, line + "\n")


def _volume_source(volume: Mapping[str, Any]) -> list[str]:
    if (src := volume.get("hostPath")) is not None:
        return ["Type:\tHostPath (bare host directory volume)", f"Path:\t{src.get('path', '')}",
                f"HostPathType:\t{src.get('type', '<none>')}"]
    if (src := volume.get("emptyDir")) is not None:
        return ["Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)",
                f"Medium:\t{src.get('medium', '')}", f"SizeLimit:\t{src.get('sizeLimit') or '<unset>'}"]
    if (src := volume.get("secret")) is not None:
        return ["Type:\tSecret (a volume populated by a Secret)", f"SecretName:\t{src.get('secretName', '')}",
                f"Optional:\t{go_bool(src.get('optional'))}"]
    if (src := volume.get("configMap")) is not None:
        return ["Type:\tConfigMap (a volume populated by a ConfigMap)", f"Name:\t{src.get('name', '')}",
                f"Optional:\t{go_bool(src.get('optional'))}"]
    if (src := volume.get("persistentVolumeClaim")) is not None:
        return ["Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)",
                f"ClaimName:\t{src.get('claimName', '')}", f"ReadOnly:\t{go_bool(src.get('readOnly'))}"]
    if (src := volume.get("nfs")) is not None:
        return ["Type:\tNFS (an NFS mount that lasts the lifetime of a pod)", f"Server:\t{src.get('server', '')}",
                f"Path:\t{src.get('path', '')}", f"ReadOnly:\t{go_bool(src.get('readOnly'))}"]
    if (src := volume.get("downwardAPI")) is not None:
        lines = ["Type:\tDownwardAPI (a volume populated by information about the pod)", "Items:"]
        for item in src.get("items") or []:
            ref = item.get("fieldRef") or {}
            what = ref.get("fieldPath") or (item.get("resourceFieldRef") or {}).get("resource", "")
            lines.append(f"  {what} -> {item.get('path', '')}")
        return lines
    if (src := volume.get("projected")) is not None:
        lines = ["Type:\tProjected (a volume that contains injected data from multiple sources)"]
        for source in src.get("sources") or []:
            if source.get("secret") is not None:
                lines += [f"SecretName:\t{source['secret'].get('name', '')}",
                          f"Optional:\t{go_bool(source['secret'].get('optional'))}"]
            elif source.get("downwardAPI") is not None:
                lines.append("DownwardAPI:\ttrue")
            elif source.get("configMap") is not None:
                lines += [f"ConfigMapName:\t{source['configMap'].get('name', '')}",
                          f"Optional:\t{go_bool(source['configMap'].get('optional'))}"]
            elif source.get("serviceAccountToken") is not None:
                lines.append(f"TokenExpirationSeconds:\t{source['serviceAccountToken'].get('expirationSeconds', 3607)}")
        return lines
    return ["<unknown>"]


def pod_template(w: Writer, template: Mapping[str, Any] | None, ctx: Context) -> None:
    """DescribePodTemplate, as Deployment/ReplicaSet/StatefulSet describers print it."""
    w.write(0, "Pod Template:\n")
    if template is None:
        w.write(1, "<unset>")
        return
    template_meta, template_spec = template.get("metadata") or {}, template.get("spec") or {}
    labels_multiline(w, "  Labels", template_meta.get("labels"))
    if template_meta.get("annotations"):
        annotations_multiline(w, "  Annotations", template_meta["annotations"])
    if template_spec.get("serviceAccountName"):
        w.write(1, f"Service Account:\t{template_spec['serviceAccountName']}\n")
    if template_spec.get("initContainers"):
        containers(w, "Init Containers", template_spec["initContainers"], None, None, "  ", ctx)
    containers(w, "Containers", template_spec.get("containers") or [], None, None, "  ", ctx)
    volumes(w, template_spec.get("volumes") or [], "  ")
    if template_spec.get("priorityClassName"):
        w.write(1, f"Priority Class Name:\t{template_spec['priorityClassName']}\n")
    labels_multiline(w, "  Node-Selectors", template_spec.get("nodeSelector"))
    tolerations(w, "  Tolerations", template_spec.get("tolerations") or [])
