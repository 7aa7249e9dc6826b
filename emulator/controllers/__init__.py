"""Controllers that run beside the API: the scheduler, node lifecycle, the volume
binder, endpoints and the workloads (ReplicaSets, Deployments, StatefulSets).
They use the client library like any other component; pure logic lives in its
own modules (``podcontrol``, ``rollout``, ``statefulset_plan``, ``endpointsets``)."""
