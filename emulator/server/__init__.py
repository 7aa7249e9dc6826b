"""The API process: Kubernetes request semantics over the store (``registry``),
watch sessions (``watch``), the per-connection protocol adapter (``session``),
and the process entry point (``apiserver``).

May import ``emulator.wire``, ``emulator.errors``, ``emulator.model`` and
``emulator.store``; nothing here is imported by those.
"""
