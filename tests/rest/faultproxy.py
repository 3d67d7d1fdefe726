#!/usr/bin/env python3
"""faultproxy.py - a small HTTP/1.1 proxy of the tests, put in front of
Directus to inject the faults a cloud application shows in real life.

    faultproxy.py UPSTREAM_URL PORT_FILE

listens on 127.0.0.1 (a free port, written to PORT_FILE once listening)
and forwards every request to UPSTREAM_URL, keeping client connections
alive.  Control endpoints (never forwarded):

    POST /__fault/plan   a JSON list of faults, consumed in order by the
                         requests that match them:
        {"match": "GET /items",   method and path prefix ("" = any)
         "action": "status",      answer "status" (with "retry_after") /
                                  "cut" (close without answering) /
                                  "cut_after_send" (forward, then close
                                  without answering) / "slow" (sleep
                                  "delay" seconds, then forward) /
                                  "truncate" (half a body, then close)
         "status": 429, "retry_after": "1", "delay": 2.5, "count": 1}
    GET  /__fault/stats  {"connections": N, "requests": N, "by_method": {...}, "faults": N,
                          "log": ["GET /items/x", ...]}
    POST /__fault/reset  forget plan and counters
"""
import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UP = urllib.parse.urlsplit(sys.argv[1])
PORT_FILE = sys.argv[2]
LOCK = threading.Lock()
STATE = {"plan": [], "connections": 0, "requests": 0, "by_method": {}, "faults": 0, "log": []}

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
       "trailer", "upgrade", "content-length"}


def take_fault(method, path):
    with LOCK:
        STATE["requests"] += 1
        STATE["by_method"][method] = STATE["by_method"].get(method, 0) + 1
        STATE["log"].append(method + " " + path.split("?")[0])
        del STATE["log"][:-500]
        for f in STATE["plan"]:
            if (method + " " + path).startswith(f.get("match", "")) and f.get("count", 1) > 0:
                f["count"] = f.get("count", 1) - 1
                STATE["faults"] += 1
                if f["count"] == 0:
                    STATE["plan"].remove(f)
                return dict(f)
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        with LOCK:
            STATE["connections"] += 1

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def cut(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def control(self, body):
        if self.path == "/__fault/plan":
            with LOCK:
                STATE["plan"].extend(json.loads(body or b"[]"))
            self.reply(204)
        elif self.path == "/__fault/stats":
            with LOCK:
                out = {k: STATE[k] for k in ("connections", "requests", "by_method", "faults", "log")}
                out["pending"] = len(STATE["plan"])
            self.reply(200, json.dumps(out).encode())
        elif self.path == "/__fault/reset":
            with LOCK:
                STATE.update(plan=[], connections=0, requests=0, by_method={}, faults=0, log=[])
            self.reply(204)
        else:
            self.reply(404)

    def forward(self, body):
        conn = http.client.HTTPConnection(UP.hostname, UP.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Host"] = UP.netloc
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP], data

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        if self.path.startswith("/__fault/"):
            return self.control(body)
        f = take_fault(self.command, self.path)
        act = f and f.get("action")
        if act == "status":
            hdrs = [("Retry-After", str(f["retry_after"]))] if "retry_after" in f else []
            msg = {"errors": [{"message": "injected fault", "extensions": {"code": "INJECTED"}}]}
            return self.reply(int(f.get("status", 500)), json.dumps(msg).encode(), hdrs)
        if act == "cut":
            return self.cut()
        if act == "slow":
            time.sleep(float(f.get("delay", 2)))
        status, hdrs, data = self.forward(body)
        if act == "cut_after_send":
            return self.cut()
        if act == "truncate":
            self.send_response(status)
            for k, v in hdrs:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data) + 100))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            return self.cut()
        self.send_response(status)
        for k, v in hdrs:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_safe(self):
        # a client that gave up (timeout) closes first: not an error here
        try:
            self.handle_any()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = handle_safe


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    tmp = PORT_FILE + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(str(srv.server_address[1]))
    import os
    os.rename(tmp, PORT_FILE)
    srv.serve_forever()


if __name__ == "__main__":
    main()
