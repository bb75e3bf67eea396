#!/usr/bin/env python3
"""The PromQL of a Grafana dashboard JSON: every panel target's `expr` (rows'
nested panels included) and every query variable's query, the metric names
they read, and the expressions made concrete for Prometheus' HTTP API.

    dashboard_queries.py names DASHBOARD   one metric name per line
    dashboard_queries.py exprs DASHBOARD   one concrete expression per line

Used by dashboard_test.py (names against a live /metrics) and by
deploy/test_deployment.sh (each expression against the stack's Prometheus).
"""
import json
import re
import sys

# Grafana's variables, replaced to send an expression to Prometheus as is:
# $model (a multi-value regex) by "any model", $__rate_interval by a window
# holding several 5 s scrapes.
SUBSTITUTIONS = [(r"\$__rate_interval", "1m"), (r"\$model", ".+")]

# PromQL words that are neither functions (followed by "(") nor metric names.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}


def _panels(panels):
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


def queries(dashboard):
    """(where, expression) of every query in the dashboard, variables unresolved."""
    out = []
    for p in _panels(dashboard.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append((f'panel "{p.get("title")}" {t.get("refId")}', t["expr"]))
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            query = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
            m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", query)
            if m:  # label_values(SELECTOR, label): the selector is PromQL
                query = m.group(1)
            out.append((f'variable "{v.get("name")}"', query))
    return out


def concrete(expr):
    for pattern, value in SUBSTITUTIONS:
        expr = re.sub(pattern, value, expr)
    return expr


def metric_names(expr):
    """The metric names an expression reads."""
    e = re.sub(r'"(\\.|[^"\\])*"', '""', expr)          # string literals
    e = re.sub(r"\{[^}]*\}", "", e)                     # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                    # range and subquery windows
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue  # a function or aggregation, or a keyword
        if re.fullmatch(r"\d*[eE]\d+", word) or (m.start() > 0 and e[m.start() - 1].isdigit()):
            continue  # part of a number
        names.add(word)
    return names


def load(path):
    with open(path) as f:
        return json.load(f)


if __name__ == "__main__":
    cmd, path = sys.argv[1], sys.argv[2]
    qs = queries(load(path))
    if cmd == "names":
        print("\n".join(sorted(set().union(*(metric_names(e) for _, e in qs)))))
    elif cmd == "exprs":
        print("\n".join(concrete(e) for _, e in qs))
    else:
        raise SystemExit(f"unknown command {cmd}")
