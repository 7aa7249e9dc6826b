"""The Kubernetes object model: kinds, schemas, strict decoding, defaults and validation.

Promises:

- Pure data, no I/O: no files, sockets, clocks or randomness; every function is a
  deterministic transformation of plain dicts (the JSON shape Kubernetes uses).
- Inputs are never mutated: admission returns new dicts.
- Imports only ``emulator.errors`` and the standard library (and its own modules).

Modules, lowest first:

- ``kinds``: the kinds kubemu serves and how users name them.
- ``schema``: a small schema language and the engine that decodes and checks with it.
- ``validation``: Kubernetes' format rules (DNS names, labels, ports, quantities, IPs)
  and the checks shared by every kind (object metadata, label selectors).
- ``schemas_*``: the shape and rules of each kind, one file per area (meta, container,
  pod, workloads, service, config, storage, cluster).
- ``defaults``: Kubernetes' defaulting.
- ``admission``: what the API server calls on create, update and status update.
- ``selectors``, ``patch``, ``quantity``, ``expand``: label selectors, patches,
  resource quantities, variable expansion.
"""
