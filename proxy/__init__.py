"""The proxies: the service proxy (``kubemu proxy``) and the ingress proxy (``kubemu ingress``).

Pure, no I/O: ``balancer`` (least-busy picks, shared by both), ``servicemap``,
``ingressroutes`` and ``http1`` (the HTTP codec over httptools). ``engine`` owns
the sockets of the service proxy's hot path; ``rawstream``, ``upstreams`` and
``ingressconn`` and ``ingressexchange`` those of the ingress; ``ingresstls`` its certificates.
``serviceproxy`` and ``ingressproxy`` tie them to the API. The package imports
``emulator.client``, ``emulator.settings``, ``emulator.errors`` and
``emulator.model.proxycounts``; never the store, the server or the controllers:
a proxy knows the cluster only through the API, so it can run on another host.
"""
