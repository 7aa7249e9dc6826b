"""The trio client library every kubemu process uses to talk to the API.

Imports ``emulator.wire``, ``emulator.errors`` and ``emulator.model.kinds``; never
the store or the server.
"""

from emulator.client.api import ApiClient, Watch, WatchEvent, open_client
from emulator.client.config import ClientConfig, load_config

__all__ = ["ApiClient", "ClientConfig", "Watch", "WatchEvent", "load_config", "open_client"]
