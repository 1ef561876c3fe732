"""Demo app of the metrics pod: emits StatsD with the `statsd` package to localhost:9125, where
the metrics-adapter sidecar listens, plus a few DogStatsD-tagged lines over the same socket."""

from __future__ import annotations

import os
import random
import socket
import time

import statsd

HOST = os.environ.get("STATSD_HOST", "127.0.0.1")
PORT = int(os.environ.get("STATSD_PORT", "9125"))


def main() -> None:
    client = statsd.StatsClient(HOST, PORT, prefix="demo")
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    while True:
        client.incr("checkout.requests")
        client.timing("checkout.latency", random.uniform(5, 120))
        client.gauge("checkout.queue_depth", random.randrange(0, 30))
        status = random.choice(["200", "200", "200", "500"])
        line = f"demo.http.requests:1|c|#status:{status},route:/checkout"
        raw.sendto(line.encode(), (HOST, PORT))
        time.sleep(0.2)


if __name__ == "__main__":
    main()
