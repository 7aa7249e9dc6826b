"""An HTTP server that says which pod answered.

    GET /              hello from POD (IP) on NODE, version VERSION
    GET /slow?seconds=N  the same, but the body comes N seconds after the head
                       (a busy connection; its X-Pod header says where it went)
    GET /file/NAME     the file NAME under --dir (default: the working directory)
    GET /env/NAME      the environment variable NAME
    GET /healthz       ok

It listens on $POD_IP (every address if unset) at $PORT (default 8080), so it
runs unchanged in a pod, in host-port mode, or on your machine. Standard
library only; SIGTERM stops it at once.
"""

import argparse
import os
import signal
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

POD = os.environ.get("HOSTNAME") or socket.gethostname()
IP = os.environ.get("POD_IP", "")
PORT = int(os.environ.get("PORT", "8080"))


def hello() -> str:
    node = os.environ.get("NODE_NAME", "?")
    version = os.environ.get("VERSION", "v1")
    return f"hello from {POD} ({IP or 'this machine'}) on {node}, version {version}\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = Path(".")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        if path == "/":
            self.answer(200, hello())
        elif path == "/healthz":
            self.answer(200, "ok\n")
        elif path == "/slow":
            try:
                seconds = min(float(parse_qs(url.query).get("seconds", ["5"])[0]), 300.0)
            except ValueError:
                return self.answer(400, "seconds must be a number\n")
            self.answer(200, hello(), delay=seconds)
        elif path.startswith("/env/"):
            value = os.environ.get(path[len("/env/"):])
            if value is None:
                self.answer(404, "no such variable\n")
            else:
                self.answer(200, value + "\n")
        elif path.startswith("/file/"):
            self.send_file(path[len("/file/"):])
        else:
            self.answer(404, f"{POD}: no page {path}\n")

    def send_file(self, name: str) -> None:
        # A lexical check: volumes may be symlinks that lead elsewhere, as they should.
        if os.path.isabs(name) or ".." in Path(name).parts:
            return self.answer(403, "outside the served directory\n")
        try:
            self.answer(200, (self.root / name).read_text())
        except OSError as exc:
            self.answer(404, f"{name}: {exc.strerror}\n")

    def answer(self, status: int, text: str, delay: float = 0) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Pod", POD)
        self.end_headers()
        if delay:
            self.wfile.flush()
            time.sleep(delay)
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="say which pod answered")
    parser.add_argument("--dir", default=".", help="where /file/NAME reads from")
    Handler.root = Path(parser.parse_args().dir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer((IP, PORT), Handler)
    server.daemon_threads = True
    print(f"{POD} listening on {IP or '*'}:{PORT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C, when run by hand
        pass
