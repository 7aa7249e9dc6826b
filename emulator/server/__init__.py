"""The API process: Kubernetes request semantics over the store (``registry``),
watch sessions (``watch``), the per-connection protocol adapter
(``emulator.rpcserver``), and the process entry point (``apiserver``).

May import ``emulator.wire``, ``emulator.errors``, ``emulator.model`` and
``emulator.store``; nothing here is imported by those. The entry point also
starts the controllers, which reach the registry through an in-process client
(``local``), so ``apiserver`` and ``local`` import ``emulator.client`` and
``emulator.controllers``.
"""
