#!/usr/bin/env python3
"""A file server for suite "pull" (tests/test_pull.c): Range support and
faults on demand, one log line per request.

    pull_server.py --root DIR --port PORT --log FILE

Paths (FILE is a file under DIR):
  /f/FILE            the file; "Range: bytes=N-" answers 206 (416 with
                     "Content-Range: bytes */SIZE" when N >= SIZE)
  /norange/FILE      the file, always 200 (a server that ignores Range)
  /drop/N/FILE       like /f/, but the first request for this path sends the
                     full Content-Length, only N bytes of the body, and closes
  /status/CODE       an empty answer with that HTTP status
Log lines: "<path> range=<Range header or -> status=<code>".
"""
import argparse
import http.server
import os
import socket

dropped = set()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet stderr; the log file is the record
        pass

    def record(self, code):
        with open(self.server.log_path, "a") as f:
            f.write("%s range=%s status=%d\n" % (self.path, self.headers.get("Range", "-"), code))

    def plain(self, code):
        self.record(code)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    def do_GET(self):
        parts = self.path.lstrip("/").split("/")
        ranged, drop_after = True, None
        if parts[0] == "status" and len(parts) == 2:
            return self.plain(int(parts[1]))
        if parts[0] == "norange" and len(parts) == 2:
            ranged = False
        elif parts[0] == "drop" and len(parts) == 3:
            if self.path not in dropped:
                drop_after = int(parts[1])
                dropped.add(self.path)
        elif not (parts[0] == "f" and len(parts) == 2):
            return self.plain(404)
        path = os.path.join(self.server.root, os.path.basename(parts[-1]))
        if not os.path.isfile(path):
            return self.plain(404)
        data = open(path, "rb").read()
        size, start = len(data), 0
        rng = self.headers.get("Range")
        if ranged and rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= size:
                self.record(416)
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                return
        code = 206 if start > 0 else 200
        self.record(code)
        self.send_response(code)
        if code == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
        self.send_header("Content-Length", str(size - start))
        self.send_header("Connection", "close")
        self.end_headers()
        body = data[start:]
        if drop_after is not None:
            self.wfile.write(body[:drop_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    srv = http.server.HTTPServer(("127.0.0.1", a.port), Handler)
    srv.root, srv.log_path = a.root, a.log
    with open(a.log, "a") as f:
        f.write("READY\n")
    srv.serve_forever()


if __name__ == "__main__":
    main()
