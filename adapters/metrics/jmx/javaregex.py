"""Java regular expressions and ``Matcher.replaceAll`` replacement strings, in Python.

jmx_exporter rules are Java regexes, anchored as ``^.*(?:PATTERN).*$``; ``name``, ``labels``,
``help`` and ``value`` are Java replacement strings (``$1``, ``${name}``, ``\\$``). Python's ``re``
reads almost all of Java's syntax; this module translates the rest (named groups, ``\\Q..\\E``,
``\\z``), keeps ``\\w``/``\\d``/``\\s`` ASCII as in Java, and expands replacements the way Java
does, including how ``$12`` falls back to ``$1`` followed by ``2``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class JavaRegexError(ValueError):
    """The pattern or replacement is invalid (or uses Java syntax Python cannot express)."""


_INLINE_FLAGS = re.compile(r"\(\?([idmsuxU]*)(?:-([idmsuxU]*))?\)")


def _python_flags(flags: str) -> str:
    # Java's d (UNIX_LINES), u (Unicode case) and U (Unicode classes) have no scoped Python form.
    return "".join(f for f in flags if f in "imsx")


def translate(pattern: str) -> str:
    """Java regex syntax -> Python ``re`` syntax (a leading ``(?flags)`` stays leading)."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    in_class = 0
    depth = 0
    # Java's mid-pattern "(?i)" applies to the rest of the enclosing group; Python only has the
    # scoped "(?i:...)", so it is opened there and closed where the enclosing group ends.
    open_scopes: list[int] = []
    leading = _INLINE_FLAGS.match(pattern)
    if leading:
        on, off = _python_flags(leading.group(1)), _python_flags(leading.group(2) or "")
        if off:
            raise JavaRegexError("leading (?-flags) is not supported")
        if on:
            out.append(f"(?{on})")
        i = leading.end()
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "Q" and not in_class:
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
                out.append(re.escape(literal))
                i = n if end < 0 else end + 2
                continue
            if nxt == "z":
                out.append(r"\Z")
            elif nxt == "Z":
                out.append(r"(?=\n?\Z)")
            elif nxt == "k" and i + 2 < n and pattern[i + 2] == "<":
                end = pattern.find(">", i + 3)
                if end < 0:
                    raise JavaRegexError("unterminated \\k<name>")
                out.append(f"(?P={pattern[i + 3 : end]})")
                i = end + 1
                continue
            elif nxt in "pP":
                raise JavaRegexError("\\p{...} classes are not supported")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if ch == "[":
                in_class += 1
            elif ch == "]":
                in_class -= 1
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = 1
            out.append(ch)
            # A ']' right after '[' or '[^' is literal in both dialects.
            if pattern.startswith("^", i + 1):
                out.append("^")
                i += 1
            if pattern.startswith("]", i + 1):
                out.append("\\]")
                i += 1
            i += 1
            continue
        flags = _INLINE_FLAGS.match(pattern, i)
        if flags:
            on, off = _python_flags(flags.group(1)), _python_flags(flags.group(2) or "")
            if on or off:
                out.append(f"(?{on}{'-' + off if off else ''}:")
                open_scopes.append(depth)
            i = flags.end()
            continue
        if ch == "|" and open_scopes and open_scopes[-1] == depth:
            raise JavaRegexError("an inline (?flags) before '|' in the same group is not supported")
        if ch == "(":
            depth += 1
            if pattern.startswith("(?<", i) and not pattern.startswith(("(?<=", "(?<!"), i):
                out.append("(?P<")
                i += 3
                continue
        elif ch == ")":
            while open_scopes and open_scopes[-1] == depth:
                out.append(")")
                open_scopes.pop()
            depth -= 1
        out.append(ch)
        i += 1
    out.extend(")" * len(open_scopes))
    return "".join(out)


Groups = tuple[str | None, ...]  # index 0 is the whole subject, as in jmx_exporter's match


@dataclass(frozen=True, slots=True)
class RulePattern:
    """A rule pattern compiled as jmx_exporter does (``^.*(?:PATTERN).*$``), with a faster
    equivalent for patterns that start with literal text.

    The greedy ``^.*`` makes the regex engine try every start position from the end of the
    string backwards and keep the first where PATTERN matches. When PATTERN starts with a
    literal, only the places where that literal occurs can succeed, so trying just those (from
    the last) with ``(?:PATTERN).*$`` gives the same match and the same groups, much faster.
    """

    full: re.Pattern[str]
    tail: re.Pattern[str]
    prefix: str | None

    @property
    def groups(self) -> int:
        return self.full.groups

    @property
    def groupindex(self) -> dict[str, int]:
        return dict(self.full.groupindex)

    def match(self, subject: str) -> Groups | None:
        prefix = self.prefix
        if prefix is None or "\n" in subject:
            m = self.full.match(subject)
            return None if m is None else (subject, *m.groups())
        i = subject.rfind(prefix)
        while i >= 0:
            m = self.tail.match(subject, i)
            if m is not None:
                return (subject, *m.groups())
            if i == 0:
                break
            i = subject.rfind(prefix, 0, i + len(prefix) - 1)
        return None


def compile_rule_pattern(pattern: str) -> RulePattern:
    """A rule pattern as jmx_exporter compiles it: must match the whole string, anywhere."""
    translated = translate(pattern)
    flags = ""
    leading = re.match(r"\(\?[imsx]+\)", translated)
    if leading:
        # Python wants global flags at the very start, before the ^.* jmx_exporter adds.
        flags, translated = leading.group(0), translated[leading.end() :]
    try:
        full = re.compile(flags + "^.*(?:" + translated + ").*$", re.ASCII)
        tail = re.compile(flags + "(?:" + translated + ").*$", re.ASCII)
    except re.error as e:
        raise JavaRegexError(str(e)) from e
    return RulePattern(full, tail, None if flags else leading_literal(pattern))


def required_literal(pattern: str) -> str | None:
    """The longest literal text every match of ``pattern`` must contain, or None.

    Used to skip rules cheaply: if the text is not in the string, the rule cannot match. Only
    top-level literal runs count (not inside groups, classes or under a quantifier), and any
    alternation or inline flag gives up, so the answer is always safe.
    """
    runs = _literal_runs(pattern)
    if not runs:
        return None
    return max((text for _, text in runs), key=len)


def leading_literal(pattern: str) -> str | None:
    """The literal text every match of ``pattern`` starts with, or None."""
    runs = _literal_runs(pattern)
    if runs and runs[0][0] == 0:
        return runs[0][1]
    return None


def _literal_runs(pattern: str) -> list[tuple[int, str]]:
    """Top-level runs of literal text, with where in the pattern each starts."""
    runs: list[tuple[int, str]] = []
    run: list[str] = []
    run_start = 0
    depth = 0
    i = 0
    n = len(pattern)
    if "(?" in pattern and re.search(r"\(\?[a-zA-Z]", pattern):
        return []  # inline flags such as (?i) change what a literal matches
    if "\\Q" in pattern:
        return []

    def flush() -> None:
        nonlocal run
        if run:
            runs.append((run_start, "".join(run)))
        run = []

    while i < n:
        ch = pattern[i]
        literal: str | None = None
        width = 1
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            width = 2
            if not nxt.isalnum():
                literal = nxt
        elif ch == "|" and depth == 0:
            return []
        elif ch in "([":
            if ch == "[":
                end = _class_end(pattern, i)
                width = end - i
            else:
                depth += 1
        elif ch == ")":
            depth -= 1
        elif ch not in ".^$*+?{}":
            literal = ch
        following = pattern[i + width] if i + width < n else ""
        if not run:
            run_start = i
        if depth == 0 and literal is not None and following not in ("*", "?", "{", "+"):
            run.append(literal)
        else:
            if depth == 0 and literal is not None and following == "+":
                run.append(literal)
            flush()
        i += width
    flush()
    return runs


def _class_end(pattern: str, start: int) -> int:
    i = start + 1
    if pattern.startswith("^", i):
        i += 1
    if pattern.startswith("]", i):
        i += 1
    depth = 1
    while i < len(pattern) and depth:
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "[":
            depth += 1
        elif pattern[i] == "]":
            depth -= 1
        i += 1
    return i


@dataclass(frozen=True, slots=True)
class Replacement:
    """A parsed Java replacement string: literal text and group references."""

    parts: tuple[str | int, ...]
    literal: str | None  # the whole result when there are no group references

    @classmethod
    def parse(cls, text: str, regex: RulePattern | None) -> Replacement:
        groups = regex.groups if regex is not None else 0
        names = regex.groupindex if regex is not None else {}
        parts: list[str | int] = []
        buf: list[str] = []
        i = 0
        n = len(text)
        while i < n:
            ch = text[i]
            if ch == "\\":
                if i + 1 >= n:
                    raise JavaRegexError(f"character to be escaped is missing in {text!r}")
                buf.append(text[i + 1])
                i += 2
                continue
            if ch != "$":
                buf.append(ch)
                i += 1
                continue
            if i + 1 >= n:
                raise JavaRegexError(f"illegal group reference: group index is missing in {text!r}")
            if text[i + 1] == "{":
                end = text.find("}", i + 2)
                if end < 0:
                    raise JavaRegexError(
                        f"named capturing group is missing trailing '}}' in {text!r}"
                    )
                name = text[i + 2 : end]
                if name not in names:
                    raise JavaRegexError(f"no group with name {{{name}}} in {text!r}")
                ref = names[name]
                i = end + 1
            elif text[i + 1].isdigit():
                ref = int(text[i + 1])
                if ref > groups:
                    raise JavaRegexError(f"no group {ref} in {text!r}")
                i += 2
                # Java takes more digits only while the number still names a group.
                while i < n and text[i].isdigit() and ref * 10 + int(text[i]) <= groups:
                    ref = ref * 10 + int(text[i])
                    i += 1
            else:
                raise JavaRegexError(f"illegal group reference in {text!r}")
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(ref)
        if buf:
            parts.append("".join(buf))
        literal = None
        if all(isinstance(p, str) for p in parts):
            literal = "".join(p for p in parts if isinstance(p, str))
        return cls(tuple(parts), literal)

    def expand(self, groups: Groups | None) -> str:
        if self.literal is not None:
            return self.literal
        assert groups is not None
        return "".join(p if isinstance(p, str) else (groups[p] or "") for p in self.parts)
