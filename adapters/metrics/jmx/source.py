"""One JVM as a scrape-time source: read all included MBeans through Jolokia, run them through
the rules, return metric families plus jmx_exporter's own ``jmx_*`` metrics.

Per scrape there is one bulk POST: a read per ``includeObjectNames`` entry, preceded (on the
first scrape, and when beans of a domain not seen before appear) by ``list`` requests for the
attribute types and descriptions, which tell composite from tabular data and give the help
text. The config file is re-read when its mtime changes, as jmx_exporter does; a bad new file
keeps the old config and counts a reload failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx
from prometheus_client.metrics_core import Metric

from adapters.metrics.errors import ConfigError
from adapters.metrics.jmx.config import JmxConfig, MetricCustomizer, load_config
from adapters.metrics.jmx.families import to_families
from adapters.metrics.jmx.flatten import (
    DATE,
    OBJECT_NAME,
    TABULAR,
    AttributeMeta,
    flatten_attribute,
    java_string,
)
from adapters.metrics.jmx.jolokia import (
    JolokiaClient,
    JolokiaError,
    escape_path,
    list_request,
    read_request,
)
from adapters.metrics.jmx.objectname import ObjectNamePattern, key_properties, split_name
from adapters.metrics.jmx.rules import RuleEngine, Sample, bean_name

log = logging.getLogger(__name__)

_PLAIN_SCALARS = frozenset({int, float, bool})
_SPECIAL_TYPES = frozenset({TABULAR, DATE, OBJECT_NAME})

try:
    _VERSION = version("podpatterns")
except PackageNotFoundError:  # running from a source tree without installing
    _VERSION = "unknown"


@dataclass(frozen=True, slots=True)
class _Bean:
    """What is derived from an ObjectName once and reused every scrape."""

    domain: str
    properties: dict[str, str]
    name: str  # domain<props><>
    included: bool
    only_attributes: frozenset[str] | None
    skip_attributes: frozenset[str]
    customizer: MetricCustomizer | None


class JmxSource:
    """A :class:`~adapters.metrics.scrape.ScrapeTimeSource` for one ``--jmx.config`` file."""

    def __init__(
        self,
        path: str,
        config: JmxConfig | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._path = path
        self._transport = transport  # tests answer for Jolokia in-process
        self._config = config if config is not None else load_config(path)
        self._mtime = _mtime(path)
        self._created = time.monotonic()
        self._reload_success = 0
        self._reload_failure = 0
        self._lock = asyncio.Lock()
        self._apply(self._config)
        for key in self._config.ignored_keys:
            log.warning(
                "jmx config %s: key %r is ignored (JMX is read through jolokiaUrl)", path, key
            )

    def _apply(self, config: JmxConfig) -> None:
        self._config = config
        self._engine = RuleEngine(config)
        self._client = JolokiaClient(
            config.jolokia_url,
            username=config.username,
            password=config.password,
            timeout=config.timeout,
            verify=config.tls_ca_file or not config.tls_insecure_skip_verify,
            transport=self._transport,
        )
        self._beans: dict[str, _Bean] = {}
        self._meta: dict[str, dict[str, AttributeMeta]] = {}
        # Bean names a list answer covered (found or not), and names waiting for one.
        self._listed: set[str] = set()
        self._wanted: set[str] = set()
        self._last_error: str | None = None
        self._read_errors: set[str] = set()
        self._pending_domains: set[str] | None = None  # None: list everything on first scrape
        self._list_inline = True
        self._list_task: asyncio.Task[None] | None = None
        wildcard = any(p.is_pattern and "*" in p.text.split(":", 1)[0] for p in config.include)
        if not wildcard:
            self._pending_domains = {p.text.split(":", 1)[0] for p in config.include}
            if any("?" in d for d in self._pending_domains):
                self._pending_domains = None

    @property
    def name(self) -> str:
        return f"jmx:{self._path}"

    async def close(self) -> None:
        if self._list_task is not None:
            self._list_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._list_task
        await self._client.close()

    async def _maybe_reload(self) -> None:
        mtime = _mtime(self._path)
        if mtime is None or self._mtime is None or mtime <= self._mtime:
            return
        self._mtime = mtime
        try:
            config = load_config(self._path)
        except ConfigError as e:
            self._reload_failure += 1
            log.error("jmx config reload failed: %s", e)
            return
        old = self._client
        if self._list_task is not None:
            self._list_task.cancel()
        self._apply(config)
        await old.close()
        self._reload_success += 1
        log.info("jmx config %s reloaded", self._path)

    async def collect(self) -> list[Metric]:
        # Two overlapping /metrics requests take turns: the rule caches assume one scrape at a
        # time, and a second bulk read of the same JVM at the same moment would gain nothing.
        async with self._lock:
            return await self._collect()

    async def _collect(self) -> list[Metric]:
        await self._maybe_reload()
        config = self._config
        start = time.perf_counter()
        if time.monotonic() - self._created < config.start_delay_seconds:
            return []  # jmx_exporter serves nothing during startDelaySeconds
        samples: list[Sample] = []
        error = 0.0
        self._engine.begin()
        try:
            error = await self._scrape(samples)
        except JolokiaError as e:
            error = 1.0
            # A JVM that stays down would log every scrape: log when the failure changes.
            level = logging.DEBUG if str(e) == self._last_error else logging.WARNING
            log.log(level, "jmx scrape of %s failed: %s", self._client.url, e)
            self._last_error = str(e)
        except Exception:
            # Whatever a JVM sends must not fail the whole /metrics page: a bug shows as a
            # scrape error with a traceback in the log, not as a missing exposition.
            error = 1.0
            log.exception("jmx scrape of %s failed unexpectedly", self._client.url)
        else:
            if self._last_error is not None:
                log.info("jmx scrape of %s works again", self._client.url)
                self._last_error = None
        finally:
            self._engine.end()
        families = to_families(samples)
        families.extend(self._own_metrics(time.perf_counter() - start, error))
        return families

    async def _scrape(self, samples: list[Sample]) -> float:
        config = self._config
        requests: list[dict[str, Any]] = []
        listing: list[str | None] = (
            [None] if self._pending_domains is None else [*sorted(self._pending_domains)]
        )
        if listing and not self._list_inline:
            # Listing made a scrape fail before (a big JVM under load can take longer to list
            # than to read): list in the background with more time, read now.
            self._list_in_background(listing)
            listing = []
        for domain in listing:
            requests.append(list_request(None if domain is None else escape_path(domain)))
        requests.extend(read_request(p.query()) for p in config.include)
        try:
            answers = await self._client.bulk(requests)
        except JolokiaError:
            if listing:
                self._list_inline = False
            raise
        list_answers, read_answers = answers[: len(listing)], answers[len(listing) :]
        self._learn(listing, list_answers)

        error = 0.0
        seen: set[str] = set()
        beans: dict[str, _Bean] = {}
        read_errors: set[str] = set()
        engine = self._engine
        for answer in read_answers:
            status = answer.get("status")
            if status == 404:
                continue  # no MBean matches this include: nothing to export, not an error
            value = answer.get("value")
            if status != 200 or not isinstance(value, dict):
                error = 1.0
                request = answer.get("request")
                mbean = request.get("mbean") if isinstance(request, dict) else None
                message = f"jmx read {mbean}: {answer.get('error')}"
                # Logged when it first happens, not on every scrape while it lasts.
                log.log(logging.DEBUG if message in self._read_errors else logging.WARNING, message)
                read_errors.add(message)
                continue
            for object_name, attributes in value.items():
                if object_name in seen:
                    continue  # two includes may select the same bean
                seen.add(object_name)
                bean = self._beans.get(object_name) or self._bean(object_name)
                beans[object_name] = bean
                if not bean.included or not isinstance(attributes, dict):
                    continue
                meta = self._meta.get(object_name)
                attribute_labels: tuple[tuple[str, str], ...] = ()
                customizer = bean.customizer
                if customizer is not None:
                    attribute_labels = tuple(
                        (a, java_string(attributes[a]))
                        for a in customizer.attributes_as_labels
                        if attributes.get(a) is not None
                    )
                if meta is None and object_name not in self._listed:
                    self._wanted.add(object_name)
                    self._want_list(bean.domain)

                def emit(
                    properties: dict[str, str],
                    attr_keys: tuple[str, ...],
                    attr_name: str,
                    description: str | None,
                    leaf: object,
                    bean: _Bean = bean,
                    attribute_labels: tuple[tuple[str, str], ...] = attribute_labels,
                ) -> None:
                    name = (
                        bean.name
                        if properties is bean.properties and not attr_keys
                        else bean_name(bean.domain, properties, attr_keys)
                    )
                    engine.record(
                        bean.domain,
                        properties,
                        name,
                        attr_keys,
                        attr_name,
                        description,
                        leaf,
                        samples,
                        attribute_labels,
                    )

                for attr_name, leaf_value in attributes.items():
                    if bean.only_attributes is not None and attr_name not in bean.only_attributes:
                        continue
                    if attr_name in bean.skip_attributes:
                        continue
                    attr_meta = meta.get(attr_name) if meta is not None else None
                    if leaf_value.__class__ in _PLAIN_SCALARS and (
                        attr_meta is None or attr_meta.type not in _SPECIAL_TYPES
                    ):
                        # Most attributes are plain numbers: straight to the rules, skipping
                        # the walk over composite/tabular shapes (a measurable share per scrape).
                        engine.record(
                            bean.domain,
                            bean.properties,
                            bean.name,
                            (),
                            attr_name,
                            attr_meta.description if attr_meta is not None else None,
                            leaf_value,
                            samples,
                            attribute_labels,
                        )
                        continue
                    flatten_attribute(bean.properties, attr_name, attr_meta, leaf_value, emit)
                if customizer is not None:
                    # Extra metrics are exported as if the bean had these attributes.
                    for extra in customizer.extra_metrics:
                        flatten_attribute(
                            bean.properties,
                            extra.name,
                            AttributeMeta("java.lang.Object", extra.description),
                            extra.value,
                            emit,
                        )
        # Keep only beans still there: a JVM that churns through bean names stays bounded.
        self._beans = beans
        self._meta = {k: v for k, v in self._meta.items() if k in beans}
        self._listed &= beans.keys()
        self._wanted &= beans.keys()
        self._read_errors = read_errors
        return error

    def _bean(self, object_name: str) -> _Bean:
        config = self._config
        try:
            domain, props_text = split_name(object_name)
        except ValueError:
            return _Bean("", {}, "", False, None, frozenset(), None)
        properties = key_properties(props_text)
        included = any(p.matches(domain, properties) for p in config.include) and not any(
            p.matches(domain, properties) for p in config.exclude
        )
        only: frozenset[str] | None = None
        for text, attrs in config.include_attributes.items():
            if _same_name(text, domain, properties):
                only = attrs
        skip: frozenset[str] = frozenset()
        for text, attrs in config.exclude_attributes.items():
            if _same_name(text, domain, properties):
                skip = skip | attrs
        customizer = next(
            (c for c in config.metric_customizers if c.applies_to(domain, properties)), None
        )
        return _Bean(
            domain, properties, bean_name(domain, properties), included, only, skip, customizer
        )

    def _list_in_background(self, listing: list[str | None]) -> None:
        if self._list_task is not None and not self._list_task.done():
            return

        async def run() -> None:
            requests = [list_request(None if d is None else escape_path(d)) for d in listing]
            try:
                answers = await self._client.bulk(requests, timeout=self._config.timeout * 10)
            except JolokiaError as e:
                log.warning("jmx list of %s failed: %s", self._client.url, e)
                return
            self._learn(listing, answers)
            self._list_inline = True

        self._list_task = asyncio.create_task(run())

    def _want_list(self, domain: str) -> None:
        if self._pending_domains is not None:
            self._pending_domains.add(domain)

    def _learn(self, listing: list[str | None], answers: list[dict[str, Any]]) -> None:
        """Store attribute types and descriptions from ``list`` answers."""
        for domain, answer in zip(listing, answers, strict=True):
            value = answer.get("value")
            if answer.get("status") != 200 or not isinstance(value, dict):
                continue
            tree = value if domain is None else {domain: value}
            for dom, beans in tree.items():
                if not isinstance(beans, dict):
                    continue
                for props, info in beans.items():
                    attrs = info.get("attr") if isinstance(info, dict) else None
                    if not isinstance(attrs, dict):
                        continue
                    self._listed.add(f"{dom}:{props}")
                    self._meta[f"{dom}:{props}"] = {
                        name: AttributeMeta(str(a.get("type")), a.get("desc"))
                        for name, a in attrs.items()
                        if isinstance(a, dict)
                    }
        if listing:
            # Beans of the listed domains are covered, found or not: not asked for again (until
            # they go away and come back).
            everything = None in listing
            domains = {d for d in listing if d is not None}
            for name in list(self._wanted):
                if everything or name.partition(":")[0] in domains:
                    self._listed.add(name)
                    self._wanted.discard(name)
            self._pending_domains = set()

    def _own_metrics(self, duration: float, error: float) -> list[Metric]:
        out = []
        m = Metric("jmx_scrape_duration_seconds", "Time this JMX scrape took, in seconds.", "gauge")
        m.add_sample("jmx_scrape_duration_seconds", {}, duration)
        out.append(m)
        m = Metric("jmx_scrape_error", "Non-zero if this scrape failed.", "gauge")
        m.add_sample("jmx_scrape_error", {}, error)
        out.append(m)
        m = Metric(
            "jmx_scrape_cached_beans", "Number of beans with their matching rule cached", "gauge"
        )
        m.add_sample(
            "jmx_scrape_cached_beans",
            {},
            float(self._engine.cached_hits) if self._config.has_cached_rules else 0.0,
        )
        out.append(m)
        m = Metric(
            "jmx_config_reload_success",
            "Number of times configuration have successfully been reloaded.",
            "counter",
        )
        m.add_sample("jmx_config_reload_success_total", {}, float(self._reload_success))
        out.append(m)
        m = Metric(
            "jmx_config_reload_failure",
            "Number of times configuration have failed to be reloaded.",
            "counter",
        )
        m.add_sample("jmx_config_reload_failure_total", {}, float(self._reload_failure))
        out.append(m)
        m = Metric("jmx_exporter_build_info", "JMX Exporter build information", "gauge")
        m.add_sample(
            "jmx_exporter_build_info",
            {"name": "podpatterns-metrics-adapter", "version": _VERSION},
            1.0,
        )
        out.append(m)
        return out


def _same_name(text: str, domain: str, properties: dict[str, str]) -> bool:
    return ObjectNamePattern.parse(text).matches(domain, properties)


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
