"""The operations kit in tests: promtool, and the metric names that the alert rules and the Grafana dashboard
ask for against the names a registry (or a real hub's /hub/metrics) exports."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

SHARE = Path(__file__).resolve().parents[1] / "dkrzspawner" / "share"
ALERTS = SHARE / "prometheus" / "alerts.yml"
SCRAPE = SHARE / "prometheus" / "scrape.yml"
DASHBOARD = SHARE / "grafana" / "dkrzspawner.json"

PROMTOOL_MISSING = ("promtool is missing: `apt-get install --no-install-recommends prometheus` (Debian's package, "
                    "which ci/make-env installs). The alert rules, their tests, the scrape example and the "
                    "dashboard's queries were not checked.")

#: a metric of the hub (JupyterHub's own, or dkrzspawner's), or Prometheus's own ``up`` of the scrape
METRIC = re.compile(r"\b(?:jupyterhub|dkrzspawner)_\w+|\bup\b")
#: the series each metric type exports (prometheus_client's text format)
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}
#: what Prometheus records itself for each target, not the hub
PROMETHEUS_OWN = {"up"}


def require_promtool() -> str:
    """promtool's path; fail in CI, skip loudly elsewhere, when it is missing."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(PROMTOOL_MISSING)
        pytest.skip(reason=PROMTOOL_MISSING)
    return path


def alert_queries() -> dict[str, str]:
    """Each alert's name and its PromQL expression."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_queries() -> dict[str, str]:
    """Each query of the dashboard (its panels' targets, its variables), named by where it is."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = {f"{panel['title']} {target['refId']}": target["expr"]
             for panel in dashboard["panels"] for target in panel["targets"]}
    found.update({f"variable {variable['name']}": variable["query"]["query"]
                  for variable in dashboard["templating"]["list"] if variable["type"] == "query"})
    return found


def named_metrics(queries: dict[str, str]) -> dict[str, set[str]]:
    """The metric names each query asks for."""
    return {where: set(METRIC.findall(query)) for where, query in queries.items()}


def exported_names(families) -> set[str]:
    """Every series name that ``families`` (from ``REGISTRY.collect()`` or from parsing a scrape) exports,
    whether or not a labelled metric has a sample yet, and Prometheus's own ``up``."""
    names = set(PROMETHEUS_OWN)
    for family in families:
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def unexported(families) -> dict[str, set[str]]:
    """The queries of the alerts and the dashboard that name a metric ``families`` does not export."""
    exported = exported_names(families)
    asked = named_metrics({**{f"alert {k}": v for k, v in alert_queries().items()},
                           **{f"dashboard {k}": v for k, v in dashboard_queries().items()}})
    return {where: names - exported for where, names in asked.items() if names - exported}
