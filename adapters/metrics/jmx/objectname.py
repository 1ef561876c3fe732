"""JMX ObjectNames: the key-property order jmx_exporter uses for names, and pattern matching for
``includeObjectNames`` / ``excludeObjectNames``.

jmx_exporter builds metric names from the properties *in the order the MBean was registered with*
(``ObjectName.getKeyPropertyListString()``), not the canonical sorted order. Jolokia returns names
in that order when asked with ``canonicalNaming=false``; this module parses them the way
jmx_exporter's property cache does, so quoted values keep their quotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# One ``key=value`` of a key property list. A key has no ``,=:*?``; a value is either quoted (with
# backslash escapes, quotes kept) or runs to the next separator. Same grammar as jmx_exporter's
# property cache, so names containing odd characters split the same way.
_PROPERTY = re.compile(r'([^,=:*?]+)=("(?:[^\\"]|\\.)*"|[^,=:"]*)')


def key_properties(property_list: str) -> dict[str, str]:
    """``type=Foo,name="a,b"`` -> ``{"type": "Foo", "name": '"a,b"'}``, in the given order."""
    return {m.group(1): m.group(2) for m in _PROPERTY.finditer(property_list)}


def split_name(object_name: str) -> tuple[str, str]:
    """``domain:props`` -> (domain, props). The domain cannot contain a colon."""
    domain, sep, props = object_name.partition(":")
    if not sep:
        raise ValueError(f"not an ObjectName (no ':'): {object_name!r}")
    return domain, props


def _wildcard(text: str) -> re.Pattern[str]:
    # JMX patterns know only ``*`` and ``?``; everything else is literal.
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in text)
    return re.compile(body, re.DOTALL)


def _split_properties(props: str) -> list[str]:
    """Split at commas outside quoted values."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for ch in props:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            current.append(ch)
            escaped = True
        elif ch == '"':
            current.append(ch)
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise ValueError("unterminated quoted value")
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class ObjectNamePattern:
    """An ObjectName or ObjectName pattern as JMX's ``ObjectName.apply`` understands it."""

    text: str
    domain: re.Pattern[str]
    properties: tuple[tuple[str, str | re.Pattern[str]], ...]
    property_list_pattern: bool

    @classmethod
    def parse(cls, text: str) -> ObjectNamePattern:
        domain, props = split_name(text)
        if not props:
            raise ValueError(f"no key properties in {text!r}")
        parsed: list[tuple[str, str | re.Pattern[str]]] = []
        list_pattern = False
        seen: set[str] = set()
        for part in _split_properties(props):
            if part == "*":
                if list_pattern:
                    raise ValueError(f"'*' given twice in {text!r}")
                list_pattern = True
                continue
            key, eq, value = part.partition("=")
            if not eq or not key or not value:
                raise ValueError(f"bad key property {part!r} in {text!r}")
            if any(c in key for c in ":*?\n,="):
                raise ValueError(f"bad key {key!r} in {text!r}")
            if key in seen:
                raise ValueError(f"key {key!r} given twice in {text!r}")
            seen.add(key)
            unquoted_wildcard = not value.startswith('"') and ("*" in value or "?" in value)
            parsed.append((key, _wildcard(value) if unquoted_wildcard else value))
        return cls(text, _wildcard(domain), tuple(parsed), list_pattern)

    @property
    def is_pattern(self) -> bool:
        return (
            self.property_list_pattern
            or self.domain.pattern != re.escape(split_name(self.text)[0])
            or any(not isinstance(v, str) for _, v in self.properties)
        )

    def query(self) -> str:
        """The pattern to send to Jolokia. A plain name is widened to a pattern so that Jolokia
        answers in its pattern shape, with the name as registered (property order included);
        :meth:`matches` then keeps only the exact name."""
        return self.text if self.property_list_pattern else self.text + ",*"

    def matches(self, domain: str, properties: dict[str, str]) -> bool:
        if self.domain.fullmatch(domain) is None:
            return False
        for key, wanted in self.properties:
            have = properties.get(key)
            if have is None:
                return False
            if isinstance(wanted, str):
                if have != wanted:
                    return False
            elif wanted.fullmatch(have) is None:
                return False
        return self.property_list_pattern or len(properties) == len(self.properties)
