"""A multi-node request is what it says: nodes=N gives N nodes, each with ``cores``, ``memory`` and ``gpus``; the
batch script and the pre-flight ask Slurm for that shape, the limits are checked per node, and the form's cost
and its budget check count all the nodes' cores (issue 17, item 3). On the recorded two-node partition (8 cores, 16000 MB, 2 GPUs per node)."""

from __future__ import annotations

import json

import pytest
from tornado import web

from dkrzspawner import cluster, form
from dkrzspawner.cluster import Access, Snapshot
from dkrzspawner.form import preselect
from dkrzspawner.offer import make_facts
from dkrzspawner.options import DKRZ_PRESETS, OptionsError, load_partition_settings, load_presets, validate
from dkrzspawner.slurm import SlurmRejected
from tests.unit.builders import Page, make_spawner
from tests.unit.recorded import SCONTROL_TWO_NODES, SINFO_TWO_NODES

PRESETS = load_presets(DKRZ_PRESETS)
#: nodes=2, cores=4 for an hour: 8 cores x 1 hour
TWO_BY_FOUR = {"partition": "shared", "nodes": 2, "cores": 4, "runtime": "01:00:00"}


def two_node_facts(user="alice"):
    partitions = cluster.merge(cluster.parse_partitions(SCONTROL_TWO_NODES), cluster.parse_sinfo(SINFO_TWO_NODES))
    access = Access(user, "bb1234", (("bb1234", ""),))
    snapshot = Snapshot(user=user, partitions=partitions, access=access, reservations=())
    return make_facts(snapshot, load_partition_settings({}))


def test_the_limits_of_a_two_node_partition_are_per_node():
    limits = two_node_facts().partitions["shared"]
    assert (limits.max_nodes, limits.max_cores, limits.max_memory_mb, limits.max_gpus) == (2, 8, 16000, 2)


def test_a_two_node_request_counts_every_node():
    request = validate({**TWO_BY_FOUR, "gpus": 1}, PRESETS, facts=two_node_facts())
    assert (request.nodes, request.cores, request.gpus) == (2, 4, 1)
    assert (request.total_cores, request.total_gpus, request.core_hours) == (8, 2, 8.0)
    assert (request.memory_mb, request.total_memory_mb) == (8000, 16000)  # the default: 4 x 2000M per node
    assert request.shape == "2 nodes, each 4 cores, 8 GB memory, 1 GPU"


@pytest.mark.parametrize("changes, field, words", [
    ({"nodes": 3}, "nodes", "Nodes must be between 1 and 2 in partition shared."),
    ({"cores": 9}, "cores", "Cores must be between 1 and 8 per node in partition shared."),
    ({"memory": "17000M"}, "memory", "Memory must be at most 16000M (16 GB) per node in partition shared."),
    ({"gpus": 3}, "gpus", "GPUs must be between 0 and 2 per node in partition shared."),
])
def test_the_limits_are_checked_per_node(changes, field, words):
    with pytest.raises(OptionsError) as refused:
        validate({**TWO_BY_FOUR, **changes}, PRESETS, facts=two_node_facts())
    assert refused.value.field == field and str(refused.value) == words


def test_the_form_charges_what_the_request_costs_and_the_budget_check_agrees():
    """A 2-node 4-core request for an hour costs 8 core-hours on the form, in its budget check, and as a request."""
    facts = two_node_facts()
    request = validate(TWO_BY_FOUR, PRESETS, facts=facts)

    def page(left):
        budgets = {"bb1234": {"left_core_hours": left, "limit_core_hours": 100.0}}
        ctx = form.context(presets=PRESETS, facts=facts, selected=preselect(TWO_BY_FOUR, PRESETS, facts),
                           budgets=budgets)
        return ctx, Page(form.render(ctx))

    ctx, shown = page(left=7.5)
    assert ctx["cost"]["advanced"] == request.core_hours == 8.0
    assert ctx["budget"]["over"] and "hidden" not in shown.by_id("dkrz-budget-warning")
    assert "Cost of this request: 8 core-hours (nodes × cores per node × hours of runtime" in shown.words
    ctx, shown = page(left=8.5)
    assert not ctx["budget"]["over"] and "hidden" in shown.by_id("dkrz-budget-warning")
    data = json.loads(form.render(ctx).split('id="dkrz-form-data">', 1)[1].split("</script>", 1)[0])
    assert data["partitions"]["shared"]["max_gpus"] == 2  # the script's "at most 2 per node"


def test_the_form_says_per_node():
    facts = two_node_facts()
    ctx = form.context(presets=PRESETS, facts=facts, selected=preselect(TWO_BY_FOUR, PRESETS, facts))
    shown = Page(form.render(ctx))
    for words in ("Cores per node", "Memory per node", "GPUs per node",
                  "Each node gets the cores, memory and GPUs below; the server runs on the first."):
        assert words in shown.words


async def test_the_preflight_and_the_job_ask_for_two_nodes_of_four_cores(monkeypatch):
    """sbatch --test-only gets the very script sbatch would: N nodes, one task on each with the cores and memory
    per node (never --ntasks=1, which makes Slurm shrink the job to one node). The hub's partition settings here
    offer GPUs only in partition gpu; test_script checks --gpus-per-node."""
    refusal = SlurmRejected(["sbatch"], 1, "sbatch: error: Batch job submission failed: Requested node "
                                           "configuration is not available")
    spawner, runner = make_spawner(monkeypatch, user="alice", answers={
        cluster.PARTITIONS_ARGV: SCONTROL_TWO_NODES, cluster.SINFO_ARGV: SINFO_TWO_NODES,
        ("sbatch", "--test-only"): refusal})
    monkeypatch.setattr(spawner, "_home", lambda: "/home/alice")
    monkeypatch.setattr(spawner, "get_env", lambda: {"JUPYTERHUB_API_TOKEN": "secret"})
    await spawner.apply_user_options(spawner, TWO_BY_FOUR)
    request = spawner.job_request
    with pytest.raises(web.HTTPError):
        await spawner.start()
    preflight = next(c for c in runner.commands if c.argv == ["sbatch", "--test-only"])
    asked = [line for line in preflight.stdin.splitlines() if line.startswith("#SBATCH")]
    assert asked[3:9] == ["#SBATCH --account=bb1234", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1",
                          "#SBATCH --cpus-per-task=4", f"#SBATCH --mem={request.memory}", "#SBATCH --time=01:00:00"]
    assert not any(line.startswith(("#SBATCH --ntasks=", "#SBATCH --gpus")) for line in asked)
    submitted = spawner.submission(request).script.splitlines()
    assert [line for line in submitted if line.startswith("#SBATCH") and "--comment" not in line] == \
        [line for line in asked if "--comment" not in line]
    assert spawner.submission(request).summary == \
        "partition shared, 2 nodes, each 4 cores, 8 GB memory, walltime 01:00:00"
