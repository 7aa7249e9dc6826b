"""``kubectl describe`` output per kind, compared whole where layout matters.

Objects are shaped as a real API server returns them; the expected text follows
kubectl's describe.go, trailing spaces included (kubectl writes ``"%v \\t"`` cells).
"""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from emulator.cli.describe import describe

NOW = datetime(2026, 11, 21, 17, 0, 0, tzinfo=UTC)
CREATED = "2026-11-21T16:40:06Z"


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(reason: str, message: str, *, type_: str = "Normal", component: str = "kubelet", count: int = 1,
          first: str, last: str | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"e-{reason}", "namespace": "default"},
            "type": type_, "reason": reason, "message": message, "count": count, "source": {"component": component},
            "firstTimestamp": first, "lastTimestamp": last or first,
            "involvedObject": {"kind": "Pod", "name": "web-7d4b9c8f6d-x2x9k", "namespace": "default"}}


def web_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "web-7d4b9c8f6d-x2x9k", "namespace": "default", "uid": "0c6a5a4e", "creationTimestamp": CREATED,
            "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6d"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6d",
                                 "uid": "rs-uid", "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "containers": [{
                "name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "command": ["nginx"], "args": ["-g", "daemon off;"],
                "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "250m", "memory": "64Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 80, "scheme": "HTTP"},
                                   "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1,
                                   "failureThreshold": 3},
                "env": [{"name": "MODE", "value": "prod"},
                        {"name": "POD_IP",
                         "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
                "volumeMounts": [{"name": "config", "mountPath": "/etc/nginx/conf.d", "readOnly": True}],
            }],
            "nodeName": "node-1", "serviceAccountName": "default", "priority": 0,
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 300}],
            "volumes": [{"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}}],
        },
        "status": {
            "phase": "Running", "hostIP": "192.168.49.2", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
            "startTime": CREATED, "qosClass": "Burstable",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "False"},
                           {"type": "ContainersReady", "status": "False"}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{
                "name": "web", "image": "nginx:1.27", "imageID": "docker.io/library/nginx@sha256:4c0f",
                "containerID": "kubemu://3f2a", "ready": False, "restartCount": 4, "started": False,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2026-11-21T16:58:50Z",
                                             "finishedAt": "2026-11-21T16:59:00Z"}},
            }],
        },
    }


POD_EVENTS = [
    event("BackOff", "Back-off restarting failed container web in pod web-7d4b9c8f6d-x2x9k_default(0c6a5a4e)",
          type_="Warning", count=9, first=ago(minutes=18), last=ago(seconds=5)),
    event("Scheduled", "Successfully assigned default/web-7d4b9c8f6d-x2x9k to node-1",
          component="default-scheduler", first=ago(minutes=19, seconds=54)),
]


def test_pod_describe_whole() -> None:
    assert describe(web_pod(), POD_EVENTS, now=NOW) == """\
Name:             web-7d4b9c8f6d-x2x9k
Namespace:        default
Priority:         0
Service Account:  default
Node:             node-1/192.168.49.2
Start Time:       Sat, 21 Nov 2026 16:40:06 +0000
Labels:           app=web
                  pod-template-hash=7d4b9c8f6d
Annotations:      <none>
Status:           Running
IP:               10.244.0.5
IPs:
  IP:           10.244.0.5
Controlled By:  ReplicaSet/web-7d4b9c8f6d
Containers:
  web:
    Container ID:  kubemu://3f2a
    Image:         nginx:1.27
    Image ID:      docker.io/library/nginx@sha256:4c0f
    Port:          80/TCP
    Host Port:     0/TCP
    Command:
      nginx
    Args:
      -g
      daemon off;
    State:          Waiting
      Reason:       CrashLoopBackOff
    Last State:     Terminated
      Reason:       Error
      Exit Code:    1
      Started:      Sat, 21 Nov 2026 16:58:50 +0000
      Finished:     Sat, 21 Nov 2026 16:59:00 +0000
    Ready:          False
    Restart Count:  4
    Limits:
      memory:  128Mi
    Requests:
      cpu:      250m
      memory:   64Mi
    Readiness:  http-get http://:80/healthz delay=0s timeout=1s period=5s #success=1 #failure=3
    Environment:
      MODE:         prod
      POD_IP:       10.244.0.5 (v1:status.podIP)
      DB_PASSWORD:  <set to the key 'password' in secret 'db'>  Optional: false
    Mounts:
      /etc/nginx/conf.d from config (ro)
Conditions:
  Type              Status
  Initialized       True 
  Ready             False 
  ContainersReady   False 
  PodScheduled      True 
Volumes:
  config:
    Type:        ConfigMap (a volume populated by a ConfigMap)
    Name:        web-config
    Optional:    false
QoS Class:       Burstable
Node-Selectors:  <none>
Tolerations:     node.kubernetes.io/not-ready:NoExecute op=Exists for 300s
Events:
  Type     Reason     Age               From               Message
  ----     ------     ----              ----               -------
  Normal   Scheduled  19m               default-scheduler  Successfully assigned default/web-7d4b9c8f6d-x2x9k to node-1
  Warning  BackOff    5s (x9 over 18m)  kubelet            Back-off restarting failed container web in pod \
web-7d4b9c8f6d-x2x9k_default(0c6a5a4e)
"""


def test_pod_terminating_and_init_containers() -> None:
    pod = web_pod()
    pod["metadata"].update(deletionTimestamp=ago(seconds=-25), deletionGracePeriodSeconds=30)
    pod["spec"]["initContainers"] = [{"name": "migrate", "image": "busybox:1.36", "command": ["sh", "-c", "exit 0"]}]
    pod["status"]["initContainerStatuses"] = [{
        "name": "migrate", "image": "busybox:1.36", "imageID": "", "containerID": "kubemu://1", "ready": True,
        "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": CREATED,
                                                    "finishedAt": CREATED}}}]
    text = describe(pod, [], now=NOW)
    # deletionTimestamp is "now + grace period", so kubectl's "lasts" reads <invalid> until it passes.
    assert "Status:                    Terminating (lasts <invalid>)\n" in text
    assert "Termination Grace Period:  30s\n" in text
    assert "Init Containers:\n  migrate:\n" in text
    assert "    State:          Terminated\n      Reason:       Completed\n      Exit Code:    0\n" in text
    assert text.index("Init Containers:") < text.index("\nContainers:")
    assert text.endswith("Tolerations:     node.kubernetes.io/not-ready:NoExecute op=Exists for 300s\n"
                         "Events:          <none>\n")


def test_pod_without_node_or_statuses() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "pending", "namespace": "default", "creationTimestamp": CREATED},
           "spec": {"containers": [{"name": "web", "image": "nginx"}]}, "status": {"phase": "Pending"}}
    text = describe(pod, [], now=NOW)
    assert "Node:         <none>\n" in text
    assert "IPs:          <none>\n" in text
    assert "  web:\n    Image:        nginx\n    Port:         <none>\n    Host Port:    <none>\n" in text
    assert "Ready:" not in text and "Container ID:" not in text  # no status yet
    assert "Volumes:          <none>\nQoS Class:        BestEffort\n" in text


def test_dates_follow_the_zone_of_now() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=1)))
    assert "Start Time:       Sat, 21 Nov 2026 17:40:06 +0100\n" in describe(web_pod(), [], now=local)


def test_labels_and_annotations_multiline() -> None:
    pod = web_pod()
    pod["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": '{"apiVersion":"v1"}\n',
        "note": "short",
        "script": "line one\nline two",
    }
    text = describe(pod, [], now=NOW)
    assert ("Annotations:      note: short\n"
            "                  script:\n"
            "                    line one\n"
            "                    line two\n") in text
    assert "last-applied" not in text


def test_events_sorted_oldest_first_and_none() -> None:
    newer = event("Pulled", "Container image pulled", first=ago(seconds=10))
    older = event("Pulling", "Pulling image", first=ago(minutes=2))
    series_like = {**event("Created", "Created container web", first=ago(minutes=1)), "source": {},
                   "reportingController": "kubemu-nodeagent"}
    text = describe(web_pod(), [newer, series_like, older], now=NOW)
    tail = text[text.index("Events:"):]
    assert tail == (
        "Events:\n"
        "  Type    Reason   Age   From              Message\n"
        "  ----    ------   ----  ----              -------\n"
        "  Normal  Pulling  2m    kubelet           Pulling image\n"
        "  Normal  Created  60s   kubemu-nodeagent  Created container web\n"
        "  Normal  Pulled   10s   kubelet           Container image pulled\n"
    )


# --- workloads --------------------------------------------------------------------------------

TEMPLATE: dict[str, Any] = {"metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                                     "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "creationTimestamp": CREATED,
                     "labels": {"app": "web"}, "annotations": {"deployment.kubernetes.io/revision": "2"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": copy.deepcopy(TEMPLATE),
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
                 "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
        "status": {"replicas": 4, "updatedReplicas": 2, "readyReplicas": 3, "availableReplicas": 3,
                   "unavailableReplicas": 1,
                   "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                                  {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]},
    }


def replicaset(name: str, image: str, replicas: int, created: str) -> dict[str, Any]:
    template = copy.deepcopy(TEMPLATE)
    template["metadata"]["labels"]["pod-template-hash"] = name.rsplit("-", 1)[1]
    template["spec"]["containers"][0]["image"] = image
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default", "uid": f"{name}-uid", "creationTimestamp": created,
                         "labels": template["metadata"]["labels"],
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                              "uid": "d-uid", "controller": True}]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": template["metadata"]["labels"]},
                     "template": template},
            "status": {"replicas": replicas, "readyReplicas": replicas}}


def test_deployment_describe_whole() -> None:
    old = replicaset("web-55f6c7b9d4", "nginx:1.26", 2, ago(hours=2))
    new = replicaset("web-7d4b9c8f6d", "nginx:1.27", 2, ago(minutes=1))
    assert describe(deployment(), [], now=NOW, related={"replicasets": [new, old]}) == """\
Name:                   web
Namespace:              default
CreationTimestamp:      Sat, 21 Nov 2026 16:40:06 +0000
Labels:                 app=web
Annotations:            deployment.kubernetes.io/revision: 2
Selector:               app=web
Replicas:               3 desired | 2 updated | 4 total | 3 available | 1 unavailable
StrategyType:           RollingUpdate
MinReadySeconds:        0
RollingUpdateStrategy:  25% max unavailable, 1 max surge
Pod Template:
  Labels:  app=web
  Containers:
   web:
    Image:         nginx:1.27
    Port:          80/TCP
    Host Port:     0/TCP
    Environment:   <none>
    Mounts:        <none>
  Volumes:         <none>
  Node-Selectors:  <none>
  Tolerations:     <none>
Conditions:
  Type           Status  Reason
  ----           ------  ------
  Available      True    MinimumReplicasAvailable
  Progressing    True    ReplicaSetUpdated
OldReplicaSets:  web-55f6c7b9d4 (2/2 replicas created)
NewReplicaSet:   web-7d4b9c8f6d (2/2 replicas created)
Events:          <none>
"""


def test_deployment_without_replicasets_omits_them() -> None:
    text = describe(deployment(), [], now=NOW)
    assert "OldReplicaSets" not in text and "NewReplicaSet" not in text


def test_replicaset_counts_the_pods_it_controls() -> None:
    rs = replicaset("web-7d4b9c8f6d", "nginx:1.27", 3, ago(minutes=20))
    rs["metadata"]["uid"] = "rs-uid"
    pending = copy.deepcopy(web_pod())
    pending["status"]["phase"] = "Pending"
    stranger = copy.deepcopy(web_pod())
    stranger["metadata"]["ownerReferences"][0]["uid"] = "other"
    text = describe(rs, [], now=NOW, related={"pods": [web_pod(), pending, stranger]})
    assert "Controlled By:  Deployment/web\n" in text
    assert "Replicas:       3 current / 3 desired\n" in text
    assert "Pods Status:    1 Running / 1 Waiting / 0 Succeeded / 0 Failed\n" in text
    assert "Selector:       app=web,pod-template-hash=7d4b9c8f6d\n" in text


def test_statefulset_describe() -> None:
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "db", "namespace": "default", "uid": "s-uid", "creationTimestamp": CREATED},
           "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                              "spec": {"accessModes": ["ReadWriteOnce"],
                                                       "resources": {"requests": {"storage": "1Gi"}}}}]},
           "status": {"replicas": 3, "readyReplicas": 3}}
    text = describe(sts, [], now=NOW)
    assert "Replicas:           3 desired | 3 total\n" in text
    assert "Update Strategy:    RollingUpdate\n  Partition:        0\n" in text
    assert text.endswith(
        "Volume Claims:\n"
        "  Name:          data\n"
        "  StorageClass:  \n"
        "  Labels:        <none>\n"
        "  Annotations:   <none>\n"
        "  Capacity:      1Gi\n"
        "  Access Modes:  [ReadWriteOnce]\n"
        "Events:          <none>\n")


# --- network ----------------------------------------------------------------------------------


def web_service() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": CREATED, "labels": {"app": "web"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "selector": {"app": "web"},
                     "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
                     "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"},
            "status": {"loadBalancer": {}}}


def web_endpoints(count: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": CREATED, "labels": {"app": "web"}},
            "subsets": [{"addresses": [{"ip": f"10.244.0.{i}"} for i in range(5, 5 + count)],
                         "notReadyAddresses": [{"ip": "10.244.0.99"}],
                         "ports": [{"port": 8080, "protocol": "TCP"}]}]}


def test_service_describe_whole() -> None:
    assert describe(web_service(), [], now=NOW, related={"endpoints": web_endpoints(5)}) == """\
Name:                     web
Namespace:                default
Labels:                   app=web
Annotations:              <none>
Selector:                 app=web
Type:                     ClusterIP
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.96.12.34
IPs:                      10.96.12.34
Port:                     <unset>  80/TCP
TargetPort:               8080/TCP
Endpoints:                10.244.0.5:8080,10.244.0.6:8080,10.244.0.7:8080 + 2 more...
Session Affinity:         None
Internal Traffic Policy:  Cluster
Events:                   <none>
"""
    assert "Endpoints:                <none>\n" in describe(web_service(), [], now=NOW)


def test_endpoints_describe() -> None:
    assert describe(web_endpoints(2), [], now=NOW) == """\
Name:         web
Namespace:    default
Labels:       app=web
Annotations:  <none>
Subsets:
  Addresses:          10.244.0.5,10.244.0.6
  NotReadyAddresses:  10.244.0.99
  Ports:
    Name     Port  Protocol
    ----     ----  --------
    <unset>  8080  TCP

Events:  <none>
"""


def counted_endpoints(count: int) -> dict[str, Any]:
    """``web_endpoints`` as two service proxies annotate it, plus an annotation that is not valid counts."""
    endpoints = web_endpoints(count)
    endpoints["metadata"]["annotations"] = {
        "proxy.kubemu.dev/proxy": '{"10.244.0.5:8080":[1,4],"10.244.0.99:8080":[1,1]}',
        "proxy.kubemu.dev/proxy-b": '{"10.244.0.5:8080":[2,3],"10.244.0.6:8080":[0,2]}',
        "proxy.kubemu.dev/proxy-c": '{"10.244.0.5:8080":"lots"}',
    }
    return endpoints


def test_endpoints_describe_with_proxy_connections() -> None:
    assert describe(counted_endpoints(2), [], now=NOW) == """\
Name:         web
Namespace:    default
Labels:       app=web
Annotations:  proxy.kubemu.dev/proxy: {"10.244.0.5:8080":[1,4],"10.244.0.99:8080":[1,1]}
              proxy.kubemu.dev/proxy-b: {"10.244.0.5:8080":[2,3],"10.244.0.6:8080":[0,2]}
              proxy.kubemu.dev/proxy-c: {"10.244.0.5:8080":"lots"}
Subsets:
  Addresses:          10.244.0.5,10.244.0.6
  NotReadyAddresses:  10.244.0.99
  Ports:
    Name     Port  Protocol
    ----     ----  --------
    <unset>  8080  TCP

Connections:
  Address           Active  Total
  -------           ------  -----
  10.244.0.5:8080   3       7
  10.244.0.6:8080   0       2
  10.244.0.99:8080  1       1
Events:             <none>
"""


def test_service_describe_with_proxy_connections() -> None:
    text = describe(web_service(), [], now=NOW, related={"endpoints": counted_endpoints(3)})
    assert text.endswith("""\
Endpoints:                10.244.0.5:8080,10.244.0.6:8080,10.244.0.7:8080
Session Affinity:         None
Internal Traffic Policy:  Cluster
Connections:
  Address           Active  Total
  -------           ------  -----
  10.244.0.5:8080   3       7
  10.244.0.6:8080   0       2
  10.244.0.7:8080   0       0
  10.244.0.99:8080  1       1
Events:             <none>
""")


def test_connections_left_out_until_a_proxy_reports_valid_counts() -> None:
    garbage = web_endpoints(2)
    garbage["metadata"]["annotations"] = {"proxy.kubemu.dev/proxy": "{oops", "proxy.kubemu.dev/other": "[]"}
    for text in (describe(garbage, [], now=NOW),
                 describe(web_service(), [], now=NOW, related={"endpoints": garbage}),
                 describe(web_service(), [], now=NOW)):
        assert "Connections" not in text
        assert text.endswith("Events:  <none>\n") or text.endswith("Events:                   <none>\n")


def test_ingress_describe_rules() -> None:
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "web", "namespace": "default", "creationTimestamp": CREATED},
           "spec": {"ingressClassName": "kubemu",
                    "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
                    "rules": [{"host": "web.example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix",
                         "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                        {"path": "/api", "pathType": "Prefix",
                         "backend": {"service": {"name": "api", "port": {"name": "http"}}}}]}}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}}
    text = describe(ing, [], now=NOW, related={"endpoints": [web_endpoints(2)], "services": [web_service()]})
    assert text == """\
Name:             web
Labels:           <none>
Namespace:        default
Address:          127.0.0.1
Ingress Class:    kubemu
Default backend:  <default>
TLS:
  web-tls terminates web.example.com
Rules:
  Host             Path  Backends
  ----             ----  --------
  web.example.com  
                   /      web:80 (10.244.0.5:8080,10.244.0.6:8080)
                   /api   api:http (<error: services "api" not found>)
Annotations:       <none>
Events:            <none>
"""


# --- config and storage -----------------------------------------------------------------------


def test_secret_describe_shows_sizes_never_values() -> None:
    values = {"username": "admin", "password": "s3cr3t-Pa55!", "token": "eyJhbGciOiJSUzI1NiJ9.payload.sig"}
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": "db", "namespace": "default", "creationTimestamp": CREATED,
                           "annotations": {"kubernetes.io/service-account.name": "default"}},
              "data": data}
    text = describe(secret, [], now=NOW)
    assert text == """\
Name:         db
Namespace:    default
Labels:       <none>
Annotations:  kubernetes.io/service-account.name: default

Type:  kubernetes.io/service-account-token

Data
====
password:  12 bytes
token:     32 bytes
username:  5 bytes
"""
    for key, value in values.items():
        assert value not in text
        assert data[key] not in text


def test_configmap_describe_shows_values() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "web-config", "namespace": "default", "creationTimestamp": CREATED},
          "data": {"mode": "prod", "nginx.conf": "server {\n  listen 80;\n}"},
          "binaryData": {"favicon.ico": base64.b64encode(b"\x00\x01\x02").decode()}}
    assert describe(cm, [], now=NOW) == """\
Name:         web-config
Namespace:    default
Labels:       <none>
Annotations:  <none>

Data
====
mode:
----
prod

nginx.conf:
----
server {
  listen 80;
}


BinaryData
====
favicon.ico: 3 bytes

Events:  <none>
"""


def test_pvc_describe() -> None:
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": "data-db-0", "namespace": "default", "creationTimestamp": CREATED,
                        "labels": {"app": "db"}, "finalizers": ["kubernetes.io/pvc-protection"]},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                    "storageClassName": "standard", "volumeMode": "Filesystem", "volumeName": "pvc-0b1c"},
           "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}}
    user = {"kind": "Pod", "metadata": {"name": "db-0", "namespace": "default"},
            "spec": {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]}}
    other = {"kind": "Pod", "metadata": {"name": "web-1", "namespace": "default"}, "spec": {}}
    assert describe(pvc, [], now=NOW, related={"pods": [user, other]}) == """\
Name:          data-db-0
Namespace:     default
StorageClass:  standard
Status:        Bound
Volume:        pvc-0b1c
Labels:        app=db
Annotations:   <none>
Finalizers:    [kubernetes.io/pvc-protection]
Capacity:      1Gi
Access Modes:  RWO
VolumeMode:    Filesystem
Used By:       db-0
Events:        <none>
"""


# --- cluster-scoped ---------------------------------------------------------------------------


def test_node_describe_with_its_pods() -> None:
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-1", "creationTimestamp": ago(days=3),
                         "labels": {"kubernetes.io/hostname": "node-1", "node-role.kubernetes.io/worker": ""}},
            "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"],
                     "taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                       "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": ago(seconds=20),
                                       "lastTransitionTime": ago(days=3), "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status"}],
                       "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                     {"type": "Hostname", "address": "node-1"}],
                       "nodeInfo": {"kubeletVersion": "v1.31.0", "operatingSystem": "linux",
                                    "architecture": "amd64"}}}
    pods = [web_pod(), {**web_pod(), "metadata": {"name": "done", "namespace": "default"},
                        "status": {"phase": "Succeeded"}}]
    text = describe(node, [], now=NOW, related={"pods": pods})
    assert text.startswith("Name:               node-1\nRoles:              worker\n")
    assert "Taints:             dedicated=db:NoSchedule\nUnschedulable:      false\n" in text
    assert ("  Type    Status  LastHeartbeatTime                 LastTransitionTime                Reason"
            "         Message\n"
            "  ----    ------  -----------------                 ------------------                ------"
            "         -------\n"
            "  Ready   True    Sat, 21 Nov 2026 16:59:40 +0000   Wed, 18 Nov 2026 17:00:00 +0000   KubeletReady"
            "   kubelet is posting ready status\n") in text
    assert "Capacity:\n  cpu:     2\n  memory:  4Gi\n  pods:    110\n" in text
    assert "Non-terminated Pods:          (1 in total)\n" in text
    assert "  default                     web-7d4b9c8f6d-x2x9k    250m (12%)    0 (0%)      64Mi (1%)" in text
    assert ("  Resource           Requests    Limits\n"
            "  --------           --------    ------\n"
            "  cpu                250m (12%)  0 (0%)\n"
            "  memory             64Mi (1%)   128Mi (3%)\n"
            "  ephemeral-storage  0 (0%)      0 (0%)\n") in text
    assert "Non-terminated Pods" not in describe(node, [], now=NOW)  # pods not fetched: section left out


def test_namespace_describe_like_kubectl() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace",
          "metadata": {"name": "default", "creationTimestamp": CREATED,
                       "labels": {"kubernetes.io/metadata.name": "default"}},
          "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
    assert describe(ns, [], now=NOW) == """\
Name:         default
Labels:       kubernetes.io/metadata.name=default
Annotations:  <none>
Status:       Active

No resource quota.

No LimitRange resource.
"""


def test_generic_fallback_for_other_kinds() -> None:
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "node-1", "namespace": "kube-node-lease", "uid": "l-uid",
                          "creationTimestamp": CREATED, "resourceVersion": "812"},
             "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                      "renewTime": "2026-11-21T16:59:50.000000Z"}}
    assert describe(lease, [], now=NOW) == """\
Name:         node-1
Namespace:    kube-node-lease
Labels:       <none>
Annotations:  <none>
API Version:  coordination.k8s.io/v1
Kind:         Lease
Metadata:
  Creation Timestamp:  2026-11-21T16:40:06Z
  Resource Version:    812
  UID:                 l-uid
Spec:
  Holder Identity:         node-1
  Lease Duration Seconds:  40
  Renew Time:              2026-11-21T16:59:50.000000Z
Events:                    <none>
"""
