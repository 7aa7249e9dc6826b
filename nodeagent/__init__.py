"""The node agent (kubemu's kubelet): registers a Node, runs the pods bound to it
as real processes, and reports their status.

May import ``emulator.client``, ``emulator.model``, ``emulator.wire`` and
``emulator.errors``; never the store or the API server. Process creation goes
through one long-lived spawner process (``spawner``), so that no container
outlives a killed agent.
"""
