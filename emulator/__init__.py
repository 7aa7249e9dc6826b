"""kubemu's control plane: the API process, its store, the object model, the wire
protocol, the client library and the `kubemu` CLI.

Layers, lowest first; a module imports only from layers below it:

- ``emulator.wire``: the sans-io msgpack codec. Imports nothing of ours.
- ``emulator.errors``: API errors shaped like Kubernetes ``Status`` objects. Pure.
- ``emulator.model``: kinds, schemas, validation, defaults, selectors, patches. Pure data, no I/O.
- ``emulator.store``: durable objects, resource versions and watch history.
- ``emulator.server``: the API process (admission, request handling, TCP adapter).
- ``emulator.client``: the trio client library every other process uses.
- ``emulator.cli``: the ``kubemu`` command.
"""

__version__ = "0.1.0"
