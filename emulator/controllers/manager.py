"""Runs the controllers that live beside the API: the scheduler, the node
lifecycle controller, the volume binder and the workload controllers. They talk to the API through the
ordinary client library (here over an in-process connection)."""

from __future__ import annotations

import structlog
import trio

from emulator.client import ApiClient
from emulator.client.events import EventRecorder
from emulator.controllers.deployment import run_deployments
from emulator.controllers.endpoints import run_endpoints
from emulator.controllers.nodelifecycle import run_node_lifecycle
from emulator.controllers.replicaset import run_replica_sets
from emulator.controllers.scheduler import run_scheduler
from emulator.controllers.statefulset import run_stateful_sets
from emulator.controllers.volumebinder import run_volume_binder
from emulator.home import Home
from emulator.settings import ControllerSettings

log = structlog.get_logger("controllers")


async def run_controllers(client: ApiClient, home: Home, settings: ControllerSettings) -> None:
    async with trio.open_nursery() as nursery:
        scheduler_events = EventRecorder(client, "default-scheduler")
        lifecycle_events = EventRecorder(client, "node-controller")
        binder_events = EventRecorder(client, "persistentvolume-controller")
        for recorder in (scheduler_events, lifecycle_events, binder_events):
            nursery.start_soon(recorder.run)
        nursery.start_soon(run_scheduler, client, scheduler_events, settings)
        nursery.start_soon(run_node_lifecycle, client, lifecycle_events, settings)
        nursery.start_soon(run_volume_binder, client, binder_events, home)
        replica_set_events = EventRecorder(client, "replicaset-controller")
        deployment_events = EventRecorder(client, "deployment-controller")
        for recorder in (replica_set_events, deployment_events):
            nursery.start_soon(recorder.run)
        nursery.start_soon(run_replica_sets, client, replica_set_events, settings)
        nursery.start_soon(run_deployments, client, deployment_events, settings)
        stateful_set_events = EventRecorder(client, "statefulset-controller")
        nursery.start_soon(stateful_set_events.run)
        nursery.start_soon(run_stateful_sets, client, stateful_set_events, settings)
        endpoints_events = EventRecorder(client, "endpoint-controller")
        nursery.start_soon(endpoints_events.run)
        nursery.start_soon(run_endpoints, client, endpoints_events, settings)
        log.info("controllers_started")
