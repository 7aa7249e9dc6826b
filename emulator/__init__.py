"""kubemu's control plane: the API process, its store, the object model, the wire
protocol, the client library and the `kubemu` CLI.

Layers, lowest first; a module imports only from layers below it:

- ``emulator.wire``: the sans-io msgpack codec. Imports nothing of ours.
- ``emulator.errors``: API errors shaped like Kubernetes ``Status`` objects. Pure.
- ``emulator.model``: kinds, schemas, validation, defaults, selectors, patches. Pure data, no I/O.
- ``emulator.store``: durable objects, resource versions and watch history.
- ``emulator.server``: the API process (admission, request handling, TCP adapter).
- ``emulator.client``: the trio client library every other process uses.
- ``emulator.controllers``: the controllers and the scheduler, clients of the API.
- ``emulator.cli``: the ``kubemu`` command.

The API process's entry point (``emulator.server.apiserver``) sits above them all:
it runs the controllers in-process through a client that needs no socket.
"""

__version__ = "0.1.0"
