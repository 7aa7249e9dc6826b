"""A small HTTP/1.1 server that runs as a pod in the ingress tests (stdlib only).

GET/POST /anything  -> 200, JSON: pod, method, path, headers, body (length or chunked, read in full)
/stream?n=N         -> chunked answer of N pieces, sent 50 ms apart
/until-close        -> an answer with no length, ended by closing the connection
/sleep?s=S          -> answers after S seconds
/cut                -> promises 100 bytes, sends 10, closes
/ws                 -> with "Upgrade: echo": 101, then echoes bytes until the client closes
/status?code=C      -> an empty answer with that status
/early              -> 413 before reading the request body, then a gentle close
/switch             -> 101 though nobody asked for it
(The last path element picks the action, so /app/sleep is /sleep.)
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

POD = os.environ.get("HOSTNAME", "backend")


def read_head(conn: socket.socket, buffer: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    return head


def read_exactly(conn: socket.socket, buffer: bytearray, size: int) -> bytes:
    while len(buffer) < size:
        data = conn.recv(65536)
        if not data:
            raise ConnectionError("closed mid-body")
        buffer += data
    out = bytes(buffer[:size])
    del buffer[:size]
    return out


def read_line(conn: socket.socket, buffer: bytearray) -> bytes:
    while b"\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            raise ConnectionError("closed mid-chunk")
        buffer += data
    line, _, rest = bytes(buffer).partition(b"\r\n")
    buffer[:] = rest
    return line


def read_body(conn: socket.socket, buffer: bytearray, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(read_line(conn, buffer).split(b";")[0], 16)
            if size == 0:
                read_line(conn, buffer)
                return body
            body += read_exactly(conn, buffer, size)
            read_line(conn, buffer)
    return read_exactly(conn, buffer, int(headers.get("content-length", "0")))


def answer(conn: socket.socket, status: int, body: bytes, extra: str = "") -> None:
    conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nX-Pod: {POD}\r\n{extra}\r\n".encode() + body)


def serve(conn: socket.socket) -> None:
    buffer = bytearray()
    with conn:
        while True:
            head = read_head(conn, buffer)
            if head is None:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            pairs = [[part.strip() for part in line.split(":", 1)] for line in lines[1:] if ":" in line]
            headers = {k.lower(): v for k, v in pairs}
            url = urlsplit(target)
            action = "/" + url.path.rsplit("/", 1)[-1]  # /app/sleep is /sleep: Ingress paths are not stripped
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if action == "/early":
                conn.sendall(b"HTTP/1.1 413 Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large")
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(2)
                try:
                    while conn.recv(65536):
                        pass
                except OSError:
                    pass
                return
            body = read_body(conn, buffer, headers)
            if action == "/stream":
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for i in range(int(query.get("n", "3"))):
                    piece = f"piece {i}\n".encode()
                    conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                    time.sleep(0.05)
                conn.sendall(b"0\r\n\r\n")
            elif action == "/until-close":
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it, then close\n")
                return
            elif action == "/sleep":
                time.sleep(float(query.get("s", "1")))
                answer(conn, 200, b"slept\n")
            elif action == "/cut":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                return
            elif action == "/ws" and headers.get("upgrade") == "echo":
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
                if buffer:
                    conn.sendall(bytes(buffer))
                while data := conn.recv(65536):
                    conn.sendall(data)
                return
            elif action == "/switch":
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
            elif action == "/big":  # a large answer, to fill the buffers of a client that does not read
                size = int(query.get("size", "1000000"))
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
                conn.sendall(bytes(i % 251 for i in range(size)))
            elif action == "/close-after":  # says keep-alive, then closes the idle connection, as servers do
                answer(conn, 200, b"bye\n", "Connection: keep-alive\r\n")
                time.sleep(float(query.get("s", "0.1")))
                return
            elif action == "/status":
                answer(conn, int(query.get("code", "200")), b"")
            else:
                report = {"pod": POD, "method": method, "path": target, "headers": pairs, "body": body.decode("latin-1")}
                answer(conn, 200, json.dumps(report).encode(), "Content-Type: application/json\r\n"
                       "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n")


def main() -> None:
    server = socket.create_server((os.environ.get("POD_IP", "127.0.0.1"), int(sys.argv[1]) if len(sys.argv) > 1 else 8080))
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
