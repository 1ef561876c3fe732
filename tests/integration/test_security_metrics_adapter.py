"""Security checks of metrics-adapter: the Jolokia credentials of a --jmx.config never show in
its logs (at debug level) or /metrics, right or wrong; and it listens only where told.

The demo JVM's Jolokia has no authentication, so a small basic-auth reverse proxy stands in
front of it (as a real deployment's Jolokia agent would with ``user``/``password``).

Already covered elsewhere (not repeated): the in-process JMX source sends basic auth and does not
log the password on a 401 (test_jmx_jolokia.py::
test_basic_auth_is_sent_and_the_password_is_not_logged).
"""

from __future__ import annotations

import base64
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fixtures.jvm import DemoJvm
from tests.fixtures.statsd_adapter import Adapter
from tests.integration.proc_probe import listening

USER = "jmxmon"
SECRET = "j0lokia-Secret-pw"
WRONG_SECRET = "wr0ng-Jolokia-pw"

RULES = r"""
rules:
- pattern: 'demo.app<type=Requests, name=(\w+), zone=(\w+)><>Count'
  name: demo_requests
  type: COUNTER
  labels: {endpoint: $1, zone: $2}
"""


@dataclass
class AuthProxy:
    port: int
    requests: list[str] = field(default_factory=list)  # "200"/"401" per request

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jolokia"


def _proxy_handler(target: str, proxy: list[str]) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="jolokia"')
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            if self.headers.get("Authorization") != expected:
                proxy.append("401")
                self._reply(401, b"")
                return
            proxy.append("200")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            upstream = target + self.path.removeprefix("/jolokia")
            request = urllib.request.Request(upstream, data=body, method=self.command)
            if self.headers.get("Content-Type"):
                request.add_header("Content-Type", self.headers["Content-Type"])
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    self._reply(
                        response.status,
                        response.read(),
                        response.headers.get("Content-Type", "application/json"),
                    )
            except urllib.error.HTTPError as err:
                self._reply(err.code, err.read())

        do_GET = _serve
        do_POST = _serve

    return Handler


@pytest.fixture
def jolokia_with_auth(demo_jvm: DemoJvm) -> Iterator[AuthProxy]:
    proxy = AuthProxy(port=0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(demo_jvm.url, proxy.requests))
    proxy.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def start_adapter(tmp_path: Path) -> Iterator[Callable[..., Adapter]]:
    started: list[Adapter] = []

    def start(*args: str) -> Adapter:
        adapter = Adapter(tmp_path / f"adapter{len(started)}", list(args)).start()
        started.append(adapter)
        return adapter

    yield start
    for adapter in started:
        adapter.stop()


@pytest.mark.parametrize("right", [True, False], ids=["right-password", "wrong-password"])
@pytest.mark.parametrize("how", ["password", "passwordFile", "url"])
def test_jolokia_password_is_not_observable(
    how: str,
    right: bool,
    jolokia_with_auth: AuthProxy,
    start_adapter: Callable[..., Adapter],
    tmp_path: Path,
) -> None:
    secret = SECRET if right else WRONG_SECRET
    url = jolokia_with_auth.url
    if how == "url":  # credentials in jolokiaUrl itself
        url = url.replace("http://", f"http://{USER}:{secret}@", 1)
        credentials = ""
    elif how == "password":
        credentials = f"password: {secret}\n"
    else:
        secret_file = tmp_path / "jolokia-password"
        secret_file.write_text(secret + "\n")
        credentials = f"passwordFile: {secret_file}\n"
    config = tmp_path / "jmx.yml"
    config.write_text(
        f"jolokiaUrl: {url}\ntimeout: 15\n"
        + (f"username: {USER}\n{credentials}" if credentials else "")
        + RULES
    )
    adapter = start_adapter(f"--jmx.config={config}", "--log.level=debug")
    scrapes = [adapter.metrics_text() for _ in range(3)]
    adapter.stop()
    log = adapter.log
    assert log
    if right:
        assert "200" in jolokia_with_auth.requests
        assert "demo_requests" in scrapes[-1]
        assert "jmx_scrape_error 0" in scrapes[-1]
    else:
        assert jolokia_with_auth.requests and "200" not in jolokia_with_auth.requests
        assert "jmx_scrape_error 1" in scrapes[-1]
        assert "401" in log or "jmx" in log.lower()  # the failure was logged ...
    assert all(secret not in text for text in scrapes)
    assert secret not in log  # ... without the password
    assert base64.b64encode(f"{USER}:{secret}".encode()).decode() not in log


def test_listens_only_where_told(start_adapter: Callable[..., Adapter]) -> None:
    adapter = start_adapter()
    assert adapter.process is not None
    pid = adapter.process.pid
    assert listening(pid, "tcp") == {
        ("127.0.0.1", adapter.web_port),
        ("127.0.0.1", adapter.statsd_port),
    }
    assert listening(pid, "udp") == {("127.0.0.1", adapter.statsd_port)}
