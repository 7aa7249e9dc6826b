"""A web app that counts its visits in a database it reaches through a Service.

    GET /    visit N, answered by POD; the count is kept by DB

The database is kvstore.py, found the Kubernetes way: from the variables a pod
gets for each Service, DB_SERVICE_HOST and DB_SERVICE_PORT (the Service must be
named db and exist before the pod starts). Listens on $POD_IP at $PORT
(default 8080). Standard library only.
"""

import http.client
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POD = os.environ.get("HOSTNAME") or socket.gethostname()
DB = (os.environ.get("DB_SERVICE_HOST", "127.0.0.1"), int(os.environ.get("DB_SERVICE_PORT", "6379")))
COUNT = threading.Lock()  # one read-increment-write at a time from this pod


def ask(method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, str]:
    connection = http.client.HTTPConnection(*DB, timeout=5)
    try:
        connection.request(method, path, body=body)
        reply = connection.getresponse()
        return reply.status, reply.read(), reply.getheader("X-Pod", "?")
    finally:
        connection.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path != "/":
            return self.answer(404, f"{POD}: no page {self.path}\n")
        try:
            with COUNT:
                status, value, _ = ask("GET", "/keys/visits")
                visits = int(value) + 1 if status == 200 else 1
                _, _, db = ask("PUT", "/keys/visits", str(visits).encode())
        except (OSError, ValueError, http.client.HTTPException) as exc:
            return self.answer(503, f"{POD}: the database at {DB[0]}:{DB[1]} did not answer ({exc})\n")
        self.answer(200, f"visit {visits}, answered by {POD}; the count is kept by {db}\n")

    def answer(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    address = (os.environ.get("POD_IP", ""), int(os.environ.get("PORT", "8080")))
    server = ThreadingHTTPServer(address, Handler)
    server.daemon_threads = True
    print(f"{POD} on {address[0] or '*'}:{address[1]}, counting in {DB[0]}:{DB[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C, when run by hand
        pass
