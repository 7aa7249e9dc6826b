"""The writer in a two-container pod: every second it writes the time to a
file in the pod's shared emptyDir volume, and asks the pod's other container
(the server, at the same IP) what it serves, to show the two share an address.

    python3 writer.py DIR    (default: ./shared)
"""

import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

POD = os.environ.get("HOSTNAME", "?")
IP = os.environ.get("POD_IP", "127.0.0.1")
SERVER_PORT = os.environ.get("SERVER_PORT", "8080")


def main() -> None:
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else "shared")
    shared.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        line = f"{time.strftime('%H:%M:%S')} written by the writer in {POD}\n"
        (shared / "now.txt.tmp").write_text(line)
        (shared / "now.txt.tmp").replace(shared / "now.txt")  # readers never see half a file
        try:
            with urllib.request.urlopen(f"http://{IP}:{SERVER_PORT}/file/now.txt", timeout=2) as reply:
                print(f"the server at {IP}:{SERVER_PORT} serves: {reply.read().decode().strip()}", flush=True)
        except OSError as exc:
            print(f"the server at {IP}:{SERVER_PORT} is not answering yet ({exc})", flush=True)
        time.sleep(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C, when run by hand
        pass
