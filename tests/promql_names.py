"""Metric names and label matchers of PromQL expressions, without a full parser.

Enough of PromQL for dashboard queries: string literals, label matchers in
braces, range and subquery brackets, grouping clauses (``by``, ``without``,
``on``, ``ignoring``, ``group_left``, ``group_right``), function calls, numbers,
durations and Grafana variables (``$__rate_interval``, ``$environment``). What is
left after those are removed are the metric names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
SELECTOR = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{(?P<matchers>[^{}]*)\}")
MATCHER = re.compile(
    r"(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>\"\")"
)
BRACKETS = re.compile(r"\[[^\[\]]*\]")
GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
# An identifier that starts a token: not the tail of a number (1e9) or a
# duration (5m), not a Grafana variable.
IDENTIFIER = re.compile(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*")
KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "atan2",
    }
)


@dataclass(frozen=True)
class Selector:
    """One metric name and the labels its matchers use."""

    name: str
    labels: frozenset[str]


def _blank_strings(expr: str) -> str:
    # Strings become "" so a matcher keeps its shape but no text inside a
    # string (a regex, a route) can look like a name or a brace.
    return STRING.sub('""', expr)


def selectors(expr: str) -> list[Selector]:
    """Every metric selector of ``expr``, with the labels of its matchers.

    Raises ValueError for a selector without a metric name (``{__name__=...}``),
    which the dashboards do not use.
    """
    text = _blank_strings(expr)
    found: list[Selector] = []
    for match in SELECTOR.finditer(text):
        name = match.group("name")
        if not name:
            raise ValueError(f"selector without a metric name in {expr!r}")
        labels = frozenset(
            m.group("label") for m in MATCHER.finditer(match.group("matchers"))
        )
        found.append(Selector(name, labels))

    bare = SELECTOR.sub(" ", text)
    bare = BRACKETS.sub(" ", bare)
    bare = GROUPING.sub(" ", bare)
    for match in IDENTIFIER.finditer(bare):
        word = match.group(0)
        following = bare[match.end() :].lstrip()
        if word.lower() in KEYWORDS or following.startswith("("):
            continue
        found.append(Selector(word, frozenset()))
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` reads."""
    return {selector.name for selector in selectors(expr)}
