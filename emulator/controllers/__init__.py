"""Controllers that run beside the API: the scheduler, node lifecycle, and (later) workloads. They use the client library like any other component."""
