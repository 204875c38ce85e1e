"""The operations kit (dkrzspawner/share/prometheus, dkrzspawner/share/grafana): the alert rules pass
``promtool check rules`` and their unit tests (alerts_test.yml) with ``promtool test rules``, the scrape example
is a valid Prometheus configuration, every dashboard query is valid PromQL, and every metric that the alerts and
the dashboard name is one the hub's registry exports (tests/e2e/test_policy_metrics.py checks a real hub's)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import jupyterhub.metrics  # noqa: F401  (JupyterHub's own metrics, in the registry as in the hub)
import yaml
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import dkrzspawner.metrics  # noqa: F401
from tests.opskit import ALERTS, SCRAPE, alert_queries, dashboard_queries, exported_names, named_metrics, \
    require_promtool, unexported

HERE = Path(__file__).resolve().parent


def promtool(*argv, cwd=None) -> None:
    done = subprocess.run([require_promtool(), *map(str, argv)], capture_output=True, text=True, timeout=120,
                          cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_alert_rules_pass_promtool():
    promtool("check", "rules", ALERTS)


def test_each_alert_fires_on_its_series_and_not_on_look_alikes():
    promtool("test", "rules", HERE / "alerts_test.yml")


def test_the_scrape_example_is_a_valid_prometheus_configuration(tmp_path):
    token = tmp_path / "jupyterhub-token"
    token.write_text("a token with the read:metrics scope\n")
    config = SCRAPE.read_text().replace("/etc/prometheus/rules/dkrzspawner.yml", str(ALERTS)) \
        .replace("/etc/prometheus/jupyterhub-token", str(token))
    assert str(ALERTS) in config and str(token) in config, "the example's paths changed"
    (tmp_path / "prometheus.yml").write_text(config)
    promtool("check", "config", tmp_path / "prometheus.yml")


def test_every_dashboard_query_is_valid_promql(tmp_path):
    grafana = {"$__rate_interval": "5m", "$instance": ".*"}  # what Grafana puts in before it asks

    def promql(query: str) -> str:
        for variable, value in grafana.items():
            query = query.replace(variable, value)
        return query

    queries = {where: promql(query) for where, query in dashboard_queries().items() if not where.startswith("variable ")}
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{number}", "expr": query} for number, query in enumerate(queries.values())]}]}
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    promtool("check", "rules", tmp_path / "dashboard.yml")


def test_every_query_names_a_metric():
    assert all(named_metrics(alert_queries()).values())
    assert all(named_metrics(dashboard_queries()).values())
    assert {"dkrzspawner_slurm_command_errors_total", "dkrzspawner_watcher_cycle_duration_seconds_sum",
            "jupyterhub_server_spawn_duration_seconds_count"} <= set().union(*named_metrics(alert_queries()).values())


def test_every_metric_the_alerts_and_the_dashboard_name_is_exported():
    assert unexported(REGISTRY.collect()) == {}


def test_the_registry_exports_what_its_scrape_text_says():
    names = exported_names(REGISTRY.collect())
    assert {"dkrzspawner_queue_wait_seconds_bucket", "dkrzspawner_queue_wait_seconds_sum",
            "dkrzspawner_queue_wait_seconds_count", "dkrzspawner_slurm_command_errors_total",
            "dkrzspawner_watcher_interval_seconds", "jupyterhub_running_servers"} <= names
    assert "dkrzspawner_queue_wait_seconds" not in names and "dkrzspawner_slurm_command_errors" not in names
    assert exported_names(text_string_to_metric_families(generate_latest(REGISTRY).decode())) == names


def test_a_metric_name_that_is_not_exported_is_found():
    families = [family for family in REGISTRY.collect() if family.name != "dkrzspawner_queue_wait_seconds"]
    missing = unexported(families)
    assert missing["alert QueueWaitLong"] == {"dkrzspawner_queue_wait_seconds_bucket"}
    assert missing["dashboard Queue wait by partition A"] == {"dkrzspawner_queue_wait_seconds_bucket"}
