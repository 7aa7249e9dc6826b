"""The proxies: the service proxy (``kubemu proxy``) and, as its issue lands, the ingress proxy.

``balancer`` and ``servicemap`` are pure (no I/O); ``engine`` owns the sockets of
the forwarding hot path; ``serviceproxy`` ties them to the API. The package
imports ``emulator.client``, ``emulator.settings``, ``emulator.errors`` and
``emulator.model.proxycounts``; never the store, the server or the controllers:
a proxy knows the cluster only through the API, so it can run on another host.
"""
