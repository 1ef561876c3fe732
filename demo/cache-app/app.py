"""Demo app of the cache pod: it only knows one Redis at localhost:6379 (the ambassador).

It writes and reads in a loop and serves its own counters as JSON on :8090/status, so a human
(or a test) can see the app working while the ambassador spreads its reads over the replicas.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
STATUS_PORT = int(os.environ.get("STATUS_PORT", "8090"))
counters = {"writes": 0, "reads": 0, "read_hits": 0, "errors": 0}
last_error = {"message": ""}
lock = threading.Lock()


def count(name: str) -> None:
    with lock:
        counters[name] += 1


def wait_for_redis(client: redis.Redis) -> None:
    """Like any app with a dependency, start working once Redis (the ambassador) answers."""
    while True:
        try:
            client.ping()
            return
        except redis.RedisError:
            time.sleep(0.2)


def work() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    wait_for_redis(client)
    while True:
        key = f"demo:item:{random.randrange(100)}"
        try:
            client.set(key, str(time.time()))
            count("writes")
            client.incr("demo:writes")
            for _ in range(4):  # a read-heavy app: four reads per write
                value = client.get(f"demo:item:{random.randrange(100)}")
                count("reads")
                if value is not None:
                    count("read_hits")
        except redis.RedisError as error:
            count("errors")
            last_error["message"] = str(error)
            time.sleep(1)
        time.sleep(0.05)


class Status(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        with lock:
            body = json.dumps({**counters, "last_error": last_error["message"]}).encode()
        self.send_response(200 if self.path in ("/", "/status") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


if __name__ == "__main__":
    threading.Thread(target=work, daemon=True).start()
    ThreadingHTTPServer(("0.0.0.0", STATUS_PORT), Status).serve_forever()
