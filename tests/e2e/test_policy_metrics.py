"""Site policy and metrics with a real hub on the real Slurm: maintenance, a group's server limit, /hub/metrics.

The test hub (conftest.TEST_CONFIG) reads its maintenance message from ``maintenance.txt`` in its working
directory, and limits the members of the hub group ``e2e-limited`` to one server; both are switched on here only.
"""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_lifecycle import answers
from tests.opskit import unexported
from tests.slurmtools import jobs_of

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]

NOTICE = "Slurm maintenance until 14:00; running servers go on."


def test_maintenance_blocks_new_spawns_while_running_servers_go_on(hub):
    flag = hub.workdir / "maintenance.txt"
    hub.spawn("alice", options={"preset": "shared"})
    job = hub.wait_ready("alice")["state"]["job_id"]
    flag.write_text(NOTICE + "\n")
    try:
        response = hub.spawn("alice", "second", options={"preset": "shared"})
        assert response.status_code == 503, response.text
        assert response.json()["message"] == NOTICE
        assert jobs_of("alice") == [job], "no job was submitted"
        page = hub.login("alice").get(f"{hub.public_url}/hub/spawn/alice/second", timeout=30).text
        assert 'id="dkrz-maintenance"' in page and NOTICE in page, "the spawn page shows the message"
        assert answers(hub, "alice"), "the running server still answers"
        assert hub.server("alice")["ready"], "and the hub still counts it as running"
    finally:
        flag.unlink(missing_ok=True)
    response = hub.spawn("alice", "second", options={"preset": "shared"})
    assert response.status_code in (201, 202), response.text
    hub.wait_ready("alice", "second")


def test_a_groups_server_limit_refuses_one_more(hub):
    assert hub.api("POST", "/groups/e2e-limited").status_code in (201, 409)
    try:
        assert hub.api("POST", "/groups/e2e-limited/users", json={"users": ["bob"]}).ok
        hub.spawn("bob", options={"preset": "shared"})
        hub.wait_ready("bob")
        response = hub.spawn("bob", "more", options={"preset": "shared"})
        assert response.status_code == 400, response.text
        assert response.json()["message"] == ("Servers: you already have 1 running or starting (default), the "
                                              "most allowed per user here; stop one first.")
        assert len(jobs_of("bob")) == 1, "no job was submitted"
    finally:
        hub.api("DELETE", "/groups/e2e-limited")


def metrics_text(hub, scheme="token") -> str:
    response = requests.get(hub.api_url.removesuffix("/api") + "/metrics",
                            headers={"Authorization": f"{scheme} {hub.token}"}, timeout=30)
    assert response.ok, response.text
    return response.text


def scrape(hub) -> dict[tuple, float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(metrics_text(hub)) for sample in family.samples
            if sample.name.startswith("dkrzspawner_")}


def test_metrics_change_after_a_spawn(hub):
    before = scrape(hub)
    hub.spawn("carol", options={"preset": "shared"})
    hub.wait_ready("carol")
    after = scrape(hub)

    def grew(name, **labels) -> bool:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) > before.get(key, 0)

    assert grew("dkrzspawner_spawn_duration_seconds_count")
    assert grew("dkrzspawner_queue_wait_seconds_count", partition="shared")
    assert grew("dkrzspawner_slurm_command_duration_seconds_count", command="sbatch")
    assert grew("dkrzspawner_watcher_cycle_duration_seconds_count")
    assert after[("dkrzspawner_servers", (("partition", "shared"), ("state", "running")))] >= 1
    assert not any("carol" in str(key) for key in after), "no user names in labels"


def test_every_metric_the_alerts_and_the_dashboard_name_is_on_hub_metrics(hub):
    """dkrzspawner/share/prometheus/alerts.yml and share/grafana/dkrzspawner.json against the real scrape, asked
    as Prometheus asks with share/prometheus/scrape.yml (a bearer token with the read:metrics scope)."""
    assert unexported(text_string_to_metric_families(metrics_text(hub, scheme="Bearer"))) == {}
