"""The JSONPath subset json_exporter configs use (Kubernetes-style, in braces).

Paths: ``{.a.b}``, ``{$.a}``, ``{@}``, ``{.a[0]}``, ``{.a[-1]}``, ``{.a[*].b}``, ``{.a.*}``,
``{.a['odd key']}``, ``{..name}`` (any depth), filters ``{.a[?(@.state == "ACTIVE")]}`` with
``== != < <= > >=`` against a string, number, true/false/null, or ``[?(@.field)]`` (present and
not false). Templates mix text and paths: ``"planet-{.location}"``.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


class JsonPathError(ValueError):
    pass


_NAME = re.compile(r"[A-Za-z0-9_\-$]+")
_FILTER = re.compile(r"\?\(\s*@((?:\.[A-Za-z0-9_\-]+)+)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)$")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

Step = Callable[[Any], Iterator[Any]]


@dataclass(frozen=True)
class JsonPath:
    text: str
    steps: tuple[Step, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        body = text.strip()
        if body.startswith("{") and body.endswith("}"):
            body = body[1:-1].strip()
        return cls(text, tuple(_parse_steps(body)))

    def find(self, document: Any) -> list[Any]:
        nodes = [document]
        for step in self.steps:
            nodes = [out for node in nodes for out in step(node)]
        return nodes


def _parse_steps(body: str) -> Iterator[Step]:
    i = 0
    if body[:1] in ("$", "@"):
        i = 1
    n = len(body)
    while i < n:
        if body.startswith("..", i):
            m = _NAME.match(body, i + 2)
            if m is None:
                raise JsonPathError(f"expected a name after '..' in {body!r}")
            yield _descendants(m.group(0))
            i = m.end()
        elif body[i] == ".":
            if body.startswith("*", i + 1):
                yield _children
                i += 2
                continue
            m = _NAME.match(body, i + 1)
            if m is None:
                raise JsonPathError(f"expected a name after '.' in {body!r}")
            yield _key(m.group(0))
            i = m.end()
        elif body[i] == "[":
            end = _bracket_end(body, i)
            yield _bracket(body[i + 1 : end].strip(), body)
            i = end + 1
        else:
            raise JsonPathError(f"unexpected {body[i]!r} at {i} in {body!r}")


def _bracket_end(body: str, start: int) -> int:
    depth = 0
    quote = ""
    for j in range(start, len(body)):
        c = body[j]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "[(":
            depth += 1
        elif c in "])":
            depth -= 1
            if depth == 0:
                return j
    raise JsonPathError(f"unclosed '[' in {body!r}")


def _bracket(inner: str, body: str) -> Step:
    if inner == "*":
        return _children
    if inner[:1] in ("'", '"') and inner[-1:] == inner[:1]:
        return _key(inner[1:-1])
    if re.fullmatch(r"-?\d+", inner):
        return _index(int(inner))
    m = _FILTER.match(inner)
    if m:
        fields = m.group(1).split(".")[1:]
        if m.group(2) is None:
            return _filter(fields, None, None)
        try:
            literal = json.loads(m.group(3).replace("'", '"'))
        except ValueError as e:
            raise JsonPathError(f"bad filter value {m.group(3)!r} in {body!r}") from e
        return _filter(fields, _OPS[m.group(2)], literal)
    raise JsonPathError(f"unsupported [{inner}] in {body!r}")


def _key(name: str) -> Step:
    def step(node: Any) -> Iterator[Any]:
        if isinstance(node, dict) and name in node:
            yield node[name]

    return step


def _index(index: int) -> Step:
    def step(node: Any) -> Iterator[Any]:
        if isinstance(node, list) and -len(node) <= index < len(node):
            yield node[index]

    return step


def _children(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        yield from node.values()
    elif isinstance(node, list):
        yield from node


def _descendants(name: str) -> Step:
    def step(node: Any) -> Iterator[Any]:
        stack = [node]
        while stack:
            current = stack.pop(0)
            if isinstance(current, dict):
                if name in current:
                    yield current[name]
                stack.extend(current.values())
            elif isinstance(current, list):
                stack.extend(current)

    return step


def _filter(fields: list[str], op: Callable[[Any, Any], bool] | None, literal: Any) -> Step:
    def value_of(item: Any) -> tuple[bool, Any]:
        for f in fields:
            if not isinstance(item, dict) or f not in item:
                return False, None
            item = item[f]
        return True, item

    def step(node: Any) -> Iterator[Any]:
        items = node if isinstance(node, list) else node.values() if isinstance(node, dict) else []
        for item in items:
            found, value = value_of(item)
            if not found:
                continue
            if op is None:
                if value is not False and value is not None:
                    yield item
                continue
            try:
                if op(value, literal):
                    yield item
            except TypeError:
                continue  # e.g. "<" between a string and a number: no match

    return step


@dataclass(frozen=True)
class Template:
    """Text with ``{path}`` parts, e.g. a label value ``"planet-{.location}"``."""

    parts: tuple[str | JsonPath, ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        parts: list[str | JsonPath] = []
        i = 0
        while i < len(text):
            start = text.find("{", i)
            if start < 0:
                parts.append(text[i:])
                break
            if start > i:
                parts.append(text[i:start])
            end = text.find("}", start)
            if end < 0:
                raise JsonPathError(f"unclosed '{{' in {text!r}")
            parts.append(JsonPath.parse(text[start : end + 1]))
            i = end + 1
        return cls(tuple(parts))

    @property
    def is_literal(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def render(self, document: Any) -> str | None:
        """The text, or None if a path finds nothing."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            found = part.find(document)
            if not found:
                return None
            out.append(scalar_text(found[0]))
        return "".join(out)


def scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if value is None:
        return ""
    return str(value)
