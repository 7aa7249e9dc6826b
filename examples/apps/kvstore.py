"""A small database: keys and values in SQLite, over HTTP.

    PUT /keys/NAME     store the request body under NAME
    GET /keys/NAME     the value (404 if there is none)
    GET /keys          every name, one per line
    GET /              who answers, and how many keys it holds

The data lives in DIR/kv.sqlite3 (--data, default ./data), so a volume
mounted there keeps it when the process or its pod goes away. It listens on
$POD_IP (every address if unset) at $PORT (default 6379); --bind and --port
override both, for running it outside the cluster. Standard library only.
"""

import argparse
import os
import signal
import socket
import sqlite3
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

WHO = os.environ.get("HOSTNAME") or socket.gethostname()
MAX_VALUE = 1 << 20


class Store:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "kv.sqlite3"
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
        self.lock = threading.Lock()

    def put(self, name: str, value: bytes) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (name, value))

    def get(self, name: str) -> bytes | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM kv WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def names(self) -> list[str]:
        with self.lock:
            return [row[0] for row in self.db.execute("SELECT name FROM kv ORDER BY name")]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store: Store

    def do_GET(self) -> None:
        path = unquote(self.path.split("?")[0])
        if path == "/":
            self.answer(200, f"{WHO}: {len(self.store.names())} keys in {self.store.path}\n".encode())
        elif path == "/keys":
            self.answer(200, "".join(f"{n}\n" for n in self.store.names()).encode())
        elif path.startswith("/keys/"):
            value = self.store.get(path[len("/keys/"):])
            if value is None:
                self.answer(404, f"{WHO}: no key {path[len('/keys/'):]}\n".encode())
            else:
                self.answer(200, value)
        else:
            self.answer(404, f"{WHO}: no page {path}\n".encode())

    def do_PUT(self) -> None:
        path = unquote(self.path.split("?")[0])
        length = int(self.headers.get("Content-Length") or 0)
        if not path.startswith("/keys/") or len(path) == len("/keys/"):
            return self.answer(404, b"PUT /keys/NAME\n")
        if length > MAX_VALUE:
            return self.answer(413, b"values are at most 1 MiB\n")
        self.store.put(path[len("/keys/"):], self.rfile.read(length))
        self.answer(200, f"{WHO}: stored {path[len('/keys/'):]}\n".encode())

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Pod", WHO)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="keys and values in SQLite, over HTTP")
    parser.add_argument("--data", default="data", help="directory of kv.sqlite3 (default ./data)")
    parser.add_argument("--bind", default=os.environ.get("POD_IP", ""), help="address (default $POD_IP, else all)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "6379")))
    args = parser.parse_args()
    Handler.store = Store(Path(args.data))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer((args.bind, args.port), Handler)
    server.daemon_threads = True
    print(f"{WHO} serving {Handler.store.path} on {args.bind or '*'}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C, when run by hand
        pass
