"""Per-Ingress timeouts from ingress-nginx's annotations, over real sockets: they apply to
that Ingress's requests only, on the loop's path and the task's, and bad values are reported."""

from __future__ import annotations

import pytest
import trio

from tests.cluster import Cluster, wait_for_event
from tests.httpclient import Client
from tests.test_ingress import echoed, ingress, routed, rule, serve_app


@pytest.mark.deadline(60)
async def test_read_timeout_annotations_apply_to_their_ingress_on_both_paths(cluster: Cluster) -> None:
    ing = await cluster.start_ingress()  # its own response_timeout: 1.5 s
    await serve_app(cluster, "slow")
    patient = ingress("patient", [rule("patient.example", ("/", "Prefix", "slow"))])
    patient["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/proxy-read-timeout": "6"}
    hasty = ingress("hasty", [rule("hasty.example", ("/", "Prefix", "slow"))])
    hasty["metadata"]["annotations"] = {"kubemu.dev/proxy-read-timeout": "0.3",
                                        "nginx.ingress.kubernetes.io/proxy-connect-timeout": "soon"}
    await cluster.client.create(patient)
    hasty = await cluster.client.create(hasty)
    await routed(ing, "patient.example", "/warm")  # a pooled connection: the next GET takes the loop's path
    await routed(ing, "hasty.example", "/warm")
    assert ing.bound.http is not None
    client = await Client.connect(ing.bound.http)
    try:
        forwarded = ing.engine.statistics()["forwarded"]
        slow = await client.request("GET", "/sleep?s=2.5", "patient.example")  # past 1.5 s, within 6 s
        assert slow.status == 200 and ing.engine.statistics()["forwarded"] == forwarded + 1
        posted = await client.request("POST", "/sleep?s=2.5", "patient.example", body=b"x")  # the task's path
        assert posted.status == 200
        started = trio.current_time()
        cut = await client.request("GET", "/sleep?s=1", "hasty.example")
        assert cut.status == 504 and b"0.3 s" in cut.body and trio.current_time() - started < 1.0
    finally:
        await client.aclose()
    client = await Client.connect(ing.bound.http)  # a 504 closes the connection
    try:  # a request with a body: the wait for the answer, begun as the body went up, is bounded too
        started = trio.current_time()
        cut = await client.request("POST", "/sleep?s=1", "hasty.example", body=b"x")
        assert cut.status == 504 and b"0.3 s" in cut.body and trio.current_time() - started < 1.0
    finally:
        await client.aclose()
    event = await wait_for_event(cluster.client, hasty, lambda e: e["reason"] == "BadAnnotation")
    assert "proxy-connect-timeout" in event["message"] and "'soon'" in event["message"]
    assert echoed(await routed(ing, "hasty.example", "/after"))["path"] == "/after"  # the rest of it still served
