"""The metrics-adapter process with real StatsD traffic: the ``statsd`` client package and raw
DogStatsD lines over UDP, TCP and unixgram, checked in the scraped ``/metrics``."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import statsd

from tests.fixtures.requirements import require_program
from tests.fixtures.statsd_adapter import Adapter, adapter_program

MAPPING = """
mappings:
- match: shop.*.orders
  name: shop_orders_total
  labels:
    region: "$1"
- match: shop.checkout.latency
  name: shop_checkout_latency_seconds
  observer_type: histogram
  histogram_options:
    buckets: [0.05, 0.1, 0.5]
- match: shop.debug.*
  action: drop
  name: dropped
"""


@pytest.fixture
def start_adapter(tmp_path: Path) -> Iterator[Callable[..., Adapter]]:
    started: list[Adapter] = []

    def start(*args: str, mapping: str | None = MAPPING) -> Adapter:
        extra = list(args)
        if mapping is not None:
            path = tmp_path / f"mapping{len(started)}.yml"
            path.write_text(textwrap.dedent(mapping))
            extra.append(f"--statsd.mapping-config={path}")
        adapter = Adapter(tmp_path / f"adapter{len(started)}", extra).start()
        started.append(adapter)
        return adapter

    yield start
    for adapter in started:
        adapter.stop()


def test_statsd_package_over_udp(start_adapter: Callable[..., Adapter]) -> None:
    adapter = start_adapter()
    client = statsd.StatsClient("127.0.0.1", adapter.statsd_port, prefix="shop")
    for _ in range(3):
        client.incr("eu.orders")
    client.incr("us.orders", 5)
    client.gauge("inventory", 42)
    client.gauge("inventory", -2, delta=True)
    client.timing("checkout.latency", 70)
    client.timing("checkout.latency", 300)
    client.incr("debug.noise")
    with client.pipeline() as pipe:  # several lines in one datagram
        pipe.incr("eu.orders")
        pipe.timing("render", 12)

    adapter.wait_for('shop_orders_total{region="eu"}', 4)
    samples = adapter.samples()
    assert samples['shop_orders_total{region="us"}'] == 5
    assert samples["shop_inventory"] == 40
    assert samples['shop_checkout_latency_seconds_bucket{le="0.05"}'] == 0
    assert samples['shop_checkout_latency_seconds_bucket{le="0.1"}'] == 1
    assert samples['shop_checkout_latency_seconds_bucket{le="0.5"}'] == 2
    assert samples["shop_checkout_latency_seconds_sum"] == pytest.approx(0.37)
    assert samples["shop_render_count"] == 1
    assert not any(name.startswith(("dropped", "shop_debug")) for name in samples)
    assert samples['statsd_exporter_events_actions_total{action="drop"}'] == 1
    assert samples["statsd_exporter_udp_packets_total"] >= 10


def test_dogstatsd_lines_over_udp(start_adapter: Callable[..., Adapter]) -> None:
    adapter = start_adapter()
    adapter.send_udp(
        b"api.requests:1|c|#env:prod,service:web\n"
        b"api.requests:2|c|#env:prod,service:web|@0.5\n"
        b"api.latency:10:20:30|ms|#env:prod\n"
        b"api.cpu:0.5|g|#host:a|c:abcdef|T1700000000\n"
        b"api.size:512|d|#env:prod"
    )
    adapter.wait_for('api_requests{env="prod",service="web"}', 5)
    samples = adapter.samples()
    assert samples['api_latency_count{env="prod"}'] == 3
    assert samples['api_latency_sum{env="prod"}'] == pytest.approx(0.06)
    assert samples['api_cpu{container_id="abcdef",host="a"}'] == 0.5
    assert samples['api_size_count{env="prod"}'] == 1
    assert samples["statsd_exporter_tags_total"] == 7  # per sample: the aggregate counts 3


def test_statsd_package_over_tcp(start_adapter: Callable[..., Adapter]) -> None:
    adapter = start_adapter()
    client = statsd.TCPStatsClient("127.0.0.1", adapter.statsd_port, prefix="shop")
    client.incr("eu.orders", 7)
    client.gauge("queue", 3)
    client.close()
    with socket.create_connection(("127.0.0.1", adapter.statsd_port)) as raw:
        raw.sendall(b"tcp.lines:1|c\r\ntcp.lines:1|c\ntcp.last:9|g")  # no final newline
    adapter.wait_for("tcp_last", 9)
    samples = adapter.samples()
    assert samples['shop_orders_total{region="eu"}'] == 7
    assert samples["shop_queue"] == 3
    assert samples["tcp_lines"] == 2
    assert samples["statsd_exporter_tcp_connections_total"] == 2


def test_unixgram(start_adapter: Callable[..., Adapter], tmp_path: Path) -> None:
    path = tmp_path / "statsd.sock"
    adapter = start_adapter(f"--statsd.listen-unixgram={path}", "--statsd.unixsocket-mode=660")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"unix.hits:2|c|#via:unixgram\nunix.hits:3|c|#via:unixgram", str(path))
    adapter.wait_for('unix_hits{via="unixgram"}', 5)
    assert adapter.samples()["statsd_exporter_unixgram_packets_total"] == 1
    assert adapter.stop() == 0
    assert not path.exists()  # removed on a clean shutdown


def test_bad_input_never_stops_the_listeners(start_adapter: Callable[..., Adapter]) -> None:
    adapter = start_adapter()
    adapter.send_udp(b"\xff\xfe garbage \x00\n::::\n|||\nok.one:1|c\nbad:1|zz\nmix,a=b:1|c|#c:d")
    adapter.send_udp(os.urandom(4000))
    adapter.send_udp(b"x" * 65000)
    adapter.send_udp(b"ok.one:1|c")
    with socket.create_connection(("127.0.0.1", adapter.statsd_port)) as raw:
        raw.sendall(b"ok.tcp:1|c\n" + b"y" * 10000 + b"\nnever.seen:1|c\n")
        raw.settimeout(5)
        assert raw.recv(1) == b""  # the adapter hangs up on a too-long line, as upstream
    with socket.create_connection(("127.0.0.1", adapter.statsd_port)) as raw:
        raw.sendall(b"ok.tcp:1|c\n")
    adapter.wait_for("ok_tcp", 2)
    samples = adapter.samples()
    assert samples["ok_one"] == 2
    assert "never_seen" not in samples
    assert samples["statsd_exporter_tcp_too_long_lines_total"] == 1
    assert samples['statsd_exporter_sample_errors_total{reason="malformed_line"}'] >= 3
    assert samples['statsd_exporter_sample_errors_total{reason="illegal_event"}'] == 1
    assert samples['statsd_exporter_sample_errors_total{reason="mixed_tagging_styles"}'] == 1


def test_conflicting_types_never_break_the_scrape(start_adapter: Callable[..., Adapter]) -> None:
    adapter = start_adapter()
    adapter.send_udp(b"clash:1|c\nclash:2|g\nclash:3|ms\nclash:1|c|#new:label\nclash:1|c")
    adapter.wait_for("clash", 2)
    samples = adapter.samples()
    assert samples['statsd_exporter_events_conflict_total{type="gauge"}'] == 1
    assert samples['statsd_exporter_events_conflict_total{type="observer"}'] == 1
    assert samples['statsd_exporter_events_conflict_total{type="counter"}'] == 1


def test_promtool_finds_no_problems(start_adapter: Callable[..., Adapter], tmp_path: Path) -> None:
    promtool = require_program("promtool")
    adapter = start_adapter()
    client = statsd.StatsClient("127.0.0.1", adapter.statsd_port, prefix="shop")
    client.incr("eu.orders")
    client.timing("checkout.latency", 70)
    adapter.send_udp(b'latency_seconds:5|ms|#path:/a"b\nqueue_depth:3|g|#q:x\\y')
    adapter.wait_for('shop_orders_total{region="eu"}', 1)
    adapter.wait_for('queue_depth{q="x\\\\y"}', 3)
    text = adapter.metrics_text()
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, check=False
    )
    problems = (checked.stdout + checked.stderr).decode()
    assert checked.returncode == 0, problems
    assert problems.strip() == ""


def test_sighup_reload_keeps_old_config_when_new_one_is_bad(
    start_adapter: Callable[..., Adapter], tmp_path: Path
) -> None:
    adapter = start_adapter()
    mapping = tmp_path / "mapping0.yml"
    mapping.write_text("mappings:\n- match: shop.*.orders\n  name: orders_v2_total\n")
    adapter.signal(signal.SIGHUP)
    adapter.wait_for('statsd_exporter_config_reloads_total{outcome="success"}', 1)
    adapter.send_udp(b"shop.eu.orders:1|c")
    adapter.wait_for("orders_v2_total", 1)

    mapping.write_text("mappings:\n- match: shop.*.orders\n  nmae: typo\n")
    adapter.signal(signal.SIGHUP)
    adapter.wait_for('statsd_exporter_config_reloads_total{outcome="failure"}', 1)
    adapter.send_udp(b"shop.eu.orders:1|c")
    adapter.wait_for("orders_v2_total", 2)  # still the last good config
    assert adapter.samples()["statsd_exporter_loaded_mappings"] == 1
    assert "unknown key 'nmae'" in adapter.log


def test_lifecycle_endpoints(start_adapter: Callable[..., Adapter]) -> None:
    plain = start_adapter()
    assert requests.get(f"{plain.url}/-/healthy", timeout=5).status_code == 200
    assert requests.post(f"{plain.url}/-/reload", timeout=5).status_code == 403
    assert requests.get(f"{plain.url}/nope", timeout=5).status_code == 404

    adapter = start_adapter("--web.enable-lifecycle", "--web.telemetry-path=/stats")
    assert requests.get(f"{adapter.url}/stats", timeout=5).status_code == 200
    assert requests.put(f"{adapter.url}/-/reload", timeout=5).status_code == 200
    assert (
        'statsd_exporter_config_reloads_total{outcome="success"} 1'
        in requests.get(f"{adapter.url}/stats", timeout=5).text
    )
    assert requests.post(f"{adapter.url}/-/quit", timeout=5).status_code == 200
    assert adapter.process is not None
    assert adapter.process.wait(timeout=10) == 0


def test_sigterm_is_graceful(start_adapter: Callable[..., Adapter]) -> None:
    adapter = start_adapter()
    adapter.send_udp(b"x:1|c")
    adapter.wait_for("x", 1)
    began = time.monotonic()
    assert adapter.stop() == 0
    assert time.monotonic() - began < 5
    assert '"msg": "shutting down"' in adapter.log


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [adapter_program(), *args], capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--statsd.no-such-flag=1"], 2, "unknown long flag '--statsd.no-such-flag'"),
        (["--no-web.listen-address"], 2, "unknown long flag"),
        (["--statsd.cache-type=fifo"], 1, "--statsd.cache-type"),
        (["--statsd.read-buffer=lots"], 1, "--statsd.read-buffer"),
        (["--log.format=xml"], 1, "--log.format"),
        (["--statsd.mapping-config=/nonexistent/mapping.yml"], 1, "--statsd.mapping-config"),
        (
            ["--statsd.listen-udp=", "--statsd.listen-tcp="],
            1,
            "at least one listener must be specified",
        ),
        (["--statsd.listen-udp=nonsense"], 1, "--statsd.listen-udp"),
        (["--jmx.config=/nonexistent/jmx.yml"], 1, "--jmx.config"),
    ],
)
def test_bad_flags_exit_with_one_line(args: list[str], code: int, message: str) -> None:
    done = _run(*args, "--web.listen-address=127.0.0.1:1")
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_check_config(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(textwrap.dedent(MAPPING))
    bad = tmp_path / "bad.yml"
    bad.write_text("mappings:\n- match: a.b\n  name: x\n  ttl: forever\n")
    assert _run("--check-config", f"--statsd.mapping-config={good}").returncode == 0
    failed = _run("--check-config", f"--statsd.mapping-config={bad}")
    assert failed.returncode == 1
    assert "ttl: invalid duration 'forever'" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    assert _run("--help").returncode == 0
    assert "--[no-]statsd.parse-dogstatsd-tags" in _run("--help").stdout


def test_relay_forwards_lines(start_adapter: Callable[..., Adapter]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
        upstream.bind(("127.0.0.1", 0))
        upstream.settimeout(5)
        port = upstream.getsockname()[1]
        adapter = start_adapter(f"--statsd.relay.address=127.0.0.1:{port}")
        adapter.send_udp(b"relayed.one:1|c\nrelayed.two:2|g|#a:b")
        received = upstream.recv(65535)
    assert received == b"relayed.one:1|c\nrelayed.two:2|g|#a:b\n"
    adapter.wait_for("statsd_exporter_relay_lines_relayed_total", 2)


def test_max_series_flag(start_adapter: Callable[..., Adapter]) -> None:
    adapter = start_adapter("--statsd.max-series=5")
    adapter.send_udp(b"\n".join(f"ids:1|c|#id:{i}".encode() for i in range(50)))
    adapter.wait_for('statsd_exporter_series_dropped_total{reason="max_series"}', 45)
    assert adapter.samples()["statsd_exporter_series"] == 5
    assert adapter.log.count("series limit reached") == 1  # once, not 45 times


def test_ttl_expires_series(start_adapter: Callable[..., Adapter]) -> None:
    adapter = start_adapter(
        mapping="defaults:\n  ttl: 1s\nmappings:\n- match: keep.*\n  name: kept\n  ttl: 1h\n"
    )
    adapter.send_udp(b"short.lived:1|c\nkeep.me:1|c")
    adapter.wait_for("short_lived", 1)
    deadline = time.monotonic() + 10
    while "short_lived" in adapter.samples() and time.monotonic() < deadline:
        time.sleep(0.2)
    samples = adapter.samples()
    assert "short_lived" not in samples
    assert samples["kept"] == 1
    adapter.send_udp(b"short.lived:5|c")  # comes back as a fresh series
    adapter.wait_for("short_lived", 5)


def test_logfmt_logs(start_adapter: Callable[..., Adapter]) -> None:
    adapter = start_adapter("--log.format=logfmt", "--log.level=debug")
    adapter.stop()
    lines = [line for line in adapter.log.splitlines() if line]
    assert lines
    assert all(line.startswith("ts=") and " level=" in line for line in lines)
    assert any('msg="shutting down"' in line for line in lines)


def test_existing_unixgram_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "taken.sock"
    path.write_text("someone else's")
    done = _run(
        f"--statsd.listen-unixgram={path}",
        "--statsd.listen-udp=",
        "--statsd.listen-tcp=",
        "--web.listen-address=127.0.0.1:0",
    )
    assert done.returncode == 1
    assert "already exists" in done.stderr
    assert path.read_text() == "someone else's"  # not removed on the way out


def test_sets_behind_a_flag(start_adapter: Callable[..., Adapter]) -> None:
    plain = start_adapter()
    plain.send_udp(b"visitors:alice|s\nvisitors:42|s")  # rejected like upstream
    plain.wait_for('statsd_exporter_sample_errors_total{reason="illegal_event"}', 1)
    assert plain.samples()['statsd_exporter_sample_errors_total{reason="malformed_value"}'] == 1
    with_sets = start_adapter("--statsd.enable-sets")
    client = statsd.StatsClient("127.0.0.1", with_sets.statsd_port)
    for member in ("alice", "bob", "alice", "carol"):
        client.set("visitors", member)
    with_sets.wait_for('statsd_exporter_events_total{type="set"}', 4)
    assert with_sets.samples()["visitors"] == 0  # the previous scrape closed the interval
    client.set("visitors", "dave")
    with_sets.wait_for('statsd_exporter_events_total{type="set"}', 5)
    assert "# TYPE visitors gauge" in with_sets.metrics_text()


def test_http_reload_reports_a_bad_config(
    start_adapter: Callable[..., Adapter], tmp_path: Path
) -> None:
    adapter = start_adapter("--web.enable-lifecycle")
    (tmp_path / "mapping0.yml").write_text("mappings:\n- match: a.b\n  name: x\n  ttl: soon\n")
    response = requests.post(f"{adapter.url}/-/reload", timeout=10)
    assert response.status_code == 500
    assert "ttl: invalid duration 'soon'" in response.text
    samples = adapter.samples()
    assert samples['statsd_exporter_config_reloads_total{outcome="failure"}'] == 1
    assert samples["statsd_exporter_loaded_mappings"] == 3  # the previous config still runs


def test_read_buffer_reaches_the_socket(start_adapter: Callable[..., Adapter]) -> None:
    ss = require_program("ss")
    adapter = start_adapter("--statsd.read-buffer=1048576")
    shown = subprocess.run(
        [ss, "-u", "-a", "-n", "-m", f"sport = :{adapter.statsd_port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # Linux doubles SO_RCVBUF for its bookkeeping and reports the doubled size.
    assert "rb2097152" in shown, shown
