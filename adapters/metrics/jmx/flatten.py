"""MBean attribute values, as Jolokia returns them in JSON, flattened the way jmx_exporter's
scraper walks them: composite data becomes attribute keys, tabular data becomes labels.

Jolokia's JSON loses two things jmx_exporter relies on: whether an object is CompositeData or
TabularData, and Java's spelling of numbers. The first comes from the attribute types of
Jolokia's ``list`` (see :mod:`.source`); below the attribute, and while the types are not known
yet, a JSON object whose keys are Java identifiers is read as composite data and any other as a
map (tabular data). The second is rebuilt by :func:`java_string` from the JSON number's type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

_INTEGER = re.compile(r"-?\d+")
_JAVA_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

# Attribute types as MBeanAttributeInfo.getType() (and so Jolokia's ``list``) reports them.
TABULAR = "javax.management.openmbean.TabularData"
COMPOSITE = "javax.management.openmbean.CompositeData"
DATE = "java.util.Date"
OBJECT_NAME = "javax.management.ObjectName"
_NUMERIC_TYPES = frozenset(
    {
        "int",
        "long",
        "short",
        "byte",
        "float",
        "double",
        "java.lang.Integer",
        "java.lang.Long",
        "java.lang.Short",
        "java.lang.Byte",
        "java.lang.Float",
        "java.lang.Double",
        "java.math.BigInteger",
        "java.math.BigDecimal",
        "java.util.concurrent.atomic.AtomicInteger",
        "java.util.concurrent.atomic.AtomicLong",
    }
)


def java_double(x: float) -> str:
    """``Double.toString``: ``1.7E9``, ``0.001``, ``1.0E-4``, ``12.5``, ``NaN``, ``Infinity``."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        # In this range Python's repr has Java's form already: shortest digits, no exponent,
        # at least one digit after the point.
        return repr(x)
    # repr() gives the shortest digits that round-trip, as Java's algorithm does (JDK 19+ exactly,
    # earlier JDKs in all but rare cases).
    sign, digits_t, exp = Decimal(repr(x)).as_tuple()
    assert isinstance(exp, int)
    digits = "".join(map(str, digits_t)).rstrip("0") or "0"
    exp += len(digits_t) - len(digits)
    point = len(digits) + exp  # position of the decimal point relative to the digit string
    prefix = "-" if sign else ""
    if 1e-3 <= abs(x) < 1e7:
        if point <= 0:
            return f"{prefix}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{prefix}{digits}{'0' * (point - len(digits))}.0"
        return f"{prefix}{digits[:point]}.{digits[point:]}"
    mantissa = digits[0] + "." + (digits[1:] or "0")
    return f"{prefix}{mantissa}E{point - 1}"


def java_string(value: object) -> str:
    """What ``String.valueOf`` prints for a JSON scalar that came from Java."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    return str(value)


@dataclass(frozen=True, slots=True)
class AttributeMeta:
    """What Jolokia's ``list`` says about one attribute."""

    type: str
    description: str | None


# Called with (bean properties, attribute keys, attribute name, description, value) per leaf.
Emit = Callable[[dict[str, str], tuple[str, ...], str, str | None, object], None]


def flatten_attribute(
    properties: dict[str, str],
    attr_name: str,
    meta: AttributeMeta | None,
    value: Any,
    emit: Emit,
) -> None:
    """Walk one attribute's value and call ``emit`` for every number/string/boolean in it, with
    the bean properties and attribute keys jmx_exporter would use."""
    attr_type = meta.type if meta is not None else None
    description = meta.description if meta is not None else None
    if value is None:
        return
    if attr_type == TABULAR:
        _tabular(properties, (), attr_name, value, emit)
        return
    if attr_type == DATE and isinstance(value, str):
        # jmx_exporter exports dates as seconds since the epoch; Jolokia sends ISO 8601.
        try:
            value = datetime.fromisoformat(value).timestamp()
        except ValueError:
            return
    elif attr_type in _NUMERIC_TYPES and not isinstance(value, int | float):
        # An agent with serializeLong=string sends longs as strings; otherwise a string here is
        # the error text Jolokia (ignoreErrors) puts where a failing attribute's value would be,
        # and jmx_exporter skips attributes that fail to read.
        if not isinstance(value, str) or not _INTEGER.fullmatch(value):
            return
        value = int(value)
    elif attr_type == OBJECT_NAME:
        return
    _value(properties, (), attr_name, description, value, emit)


def _value(
    properties: dict[str, str],
    attr_keys: tuple[str, ...],
    attr_name: str,
    description: str | None,
    value: Any,
    emit: Emit,
) -> None:
    if value is None:
        return
    if isinstance(value, bool | int | float | str):
        emit(properties, attr_keys, attr_name, description, value)
    elif isinstance(value, dict):
        if any(_JAVA_IDENTIFIER.fullmatch(k) is None for k in value):
            # Below the attribute Jolokia's list gives no types. Composite item names are Java
            # identifiers; keys with spaces or dots are a map's keys, i.e. tabular data (as the
            # JDK's own GcInfo.memoryUsageAfterGc: {"G1 Eden Space": {...}}).
            _tabular(properties, attr_keys, attr_name, value, emit)
            return
        # CompositeType.keySet() is sorted; the nested values have no description of their own
        # through Jolokia.
        keys = (*attr_keys, attr_name)
        for key in sorted(value):
            _value(properties, keys, key, None, value[key], emit)
    # Arrays (JSON lists) are not exported, as in jmx_exporter.


def _tabular(
    properties: dict[str, str],
    attr_keys: tuple[str, ...],
    attr_name: str,
    value: Any,
    emit: Emit,
) -> None:
    for index_names, row in _rows(value):
        labels = dict(properties)
        for idx in index_names:
            cell = row.get(idx)
            if cell is None:
                continue
            # Nested tabular data repeats index names; jmx_exporter appends "_" until unique.
            name = idx
            while name in labels:
                name += "_"
            if isinstance(cell, dict):
                for sub in sorted(cell):
                    labels[f"{name}_{sub}"] = java_string(cell[sub])
            else:
                labels[name] = java_string(cell)
        extended = (*attr_keys, attr_name)
        for value_key in sorted(k for k in row if k not in index_names):
            if value_key.lower() == "value":
                # A key/value row: the value is the attribute itself, no extra name part.
                _value(labels, attr_keys, attr_name, None, row[value_key], emit)
            else:
                _value(labels, extended, value_key, None, row[value_key], emit)


def _rows(value: Any) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """The rows of a TabularData in Jolokia's JSON, with the index names of the table.

    Jolokia writes a table as nested objects keyed by the index values, the row (which repeats
    those values) at the bottom; an MXBean map (index ``key``, one ``value``) as a plain object
    ``{key: value}``; a table with non-simple index as ``{"indexNames": [...], "values": [...]}``.
    The JSON carries no index names, so they are found as the row fields that repeat the keys.
    """
    if not isinstance(value, dict):
        return
    if set(value) == {"indexNames", "values"} and isinstance(value["values"], list):
        names = tuple(str(n) for n in value["indexNames"])
        for row in value["values"]:
            if isinstance(row, dict):
                yield names, row
        return
    found = list(_nested_rows(value, ()))
    if found:
        yield from found
        return
    for key, cell in value.items():
        yield ("key",), {"key": key, "value": cell}


def _nested_rows(
    node: dict[str, Any], path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    rows: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    for key, child in node.items():
        if not isinstance(child, dict):
            return
        keys = (*path, key)
        names = _index_fields(child, keys)
        if names is not None:
            rows.append((names, child))
            continue
        deeper = list(_nested_rows(child, keys))
        if not deeper:
            return
        rows.extend(deeper)
    yield from rows


def _index_fields(row: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, ...] | None:
    """The fields of ``row`` whose values are ``keys`` in order, or None if it is not a row."""
    names: list[str] = []
    for key in keys:
        match = next(
            (
                f
                for f, v in row.items()
                if f not in names and not isinstance(v, dict | list) and java_string(v) == key
            ),
            None,
        )
        if match is None:
            return None
        names.append(match)
    return tuple(names)
