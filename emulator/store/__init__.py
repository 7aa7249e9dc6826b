"""Durable, versioned object storage with watch history.

The store knows objects only as dicts keyed by ``(kind, namespace, name)`` and
carrying ``metadata.resourceVersion``. It promises:

- every acknowledged write is on disk (fsync'd) before the writer is answered, and
  nobody can read it, or see its watch event, before then;
- one cluster-wide resource version counter, one version per write;
- watches replay every change after a given version, in order, with no gaps, or
  answer :class:`~emulator.errors.Expired` when that history is gone.

It imports ``emulator.errors`` and ``emulator.pidlock`` only; admission,
defaults and Kubernetes metadata rules live in ``emulator.server``.
"""

from emulator.store.store import Store, StoreSettings
from emulator.store.watchlog import WatchEntry, WatchLog

__all__ = ["Store", "StoreSettings", "WatchEntry", "WatchLog"]
