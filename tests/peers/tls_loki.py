#!/usr/bin/env python3
"""A Loki push endpoint over HTTPS (Python's ssl module), for the TLS test of the Loki output.

    python3 tests/peers/tls_loki.py --cert CERT --key KEY --out FILE

Listens on 127.0.0.1 on a free port and prints the port on stdout once it accepts connections.
Takes POST /loki/api/v1/push with Loki's JSON body (the test sets encoding = "json": this peer
checks TLS, not snappy): nanosecond timestamps must be strings, as Loki requires. Each entry is
appended to FILE as one JSON object {"stream": {...}, "ts": "...", "line": "..."}; the answer is
204, or 400 with the problem. Exits when stdin closes, so it never outlives its test.
"""
import argparse
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    lock = threading.Lock()

    class Push(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                if self.path != "/loki/api/v1/push":
                    raise ValueError(f"unknown path {self.path}")
                entries = []
                for s in json.loads(body)["streams"]:
                    for v in s["values"]:
                        if not (isinstance(v[0], str) and v[0].isdigit()):
                            raise ValueError("timestamp is not a string of nanoseconds")
                        entries.append({"stream": s["stream"], "ts": v[0], "line": v[1]})
            except (ValueError, KeyError, TypeError, IndexError) as e:
                self.send_response(400)
                self.end_headers()
                self.wfile.write(str(e).encode())
                return
            with lock, open(args.out, "a") as f:
                for e in entries:
                    f.write(json.dumps(e) + "\n")
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Push)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
