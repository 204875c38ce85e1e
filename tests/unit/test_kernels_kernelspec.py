"""kernels/kernelspec.py: shape checks without Slurm, validation with the cluster's facts, the env."""

from __future__ import annotations

import dataclasses

import pytest

from dkrzspawner.cluster import Access
from dkrzspawner.kernels import kernelspec
from dkrzspawner.offer import Facts, PartitionLimits
from dkrzspawner.options import OptionsError
from dkrzspawner.slurm import allocations


def facts(**overrides) -> Facts:
    part = dict(max_nodes=1, max_cores=8, max_memory_mb=16000, max_gpus=0, max_runtime=12 * 3600,
                default_runtime=3600, memory_per_core_mb=2000)
    partitions = {
        "shared": PartitionLimits(name="shared", display_name="shared", default=True, **part),
        "gpu": PartitionLimits(name="gpu", display_name="gpu", **{**part, "max_gpus": 2}),
    }
    access = Access(user="alice", default_account="bb1234", associations=(("bb1234", ""),))
    return Facts(user="alice", partitions=partitions, access=access, reservations=(), **overrides)


@pytest.mark.parametrize("config", [
    {}, {"preset": "shared"}, {"preset": "prepost", "cores": 4, "runtime": "01:00:00", "account": "bb1234"},
    {"partition": "gpu", "gpus": 1, "memory": "8G", "runtime": "02:00:00", "tasks": 2},
    {"job_id": 1234}, {"job_id": "1234"}, {"preset": "shared", "modules": ["python3/2023.01", "netcdf-c"]},
])
def test_good_shapes(config):
    options = kernelspec.check_shape(config)
    assert options.job == {k: v for k, v in config.items() if k in kernelspec.JOB_KEYS}
    assert options.reuses_allocation == ("job_id" in config)


@pytest.mark.parametrize("config, field, words", [
    ({"walltime": "1"}, "walltime", "Unknown option 'walltime'"),
    ({"preset": "shared", "cores": 3}, "cores", "Cores must be one of 1, 2, 4"),
    ({"preset": "shared", "cores": "2"}, "cores", "Cores: must be a whole number"),
    ({"preset": "nosuch"}, "preset", "does not exist"),
    ({"preset": "shared", "account": "bb1234\n#SBATCH -p gpu"}, "account", "Account must be"),
    ({"partition": "sha red"}, "partition", "Partition must be"),
    ({"partition": "shared", "memory": "8 GB"}, "memory", "Memory must be a size"),
    ({"partition": "shared", "memory": "0"}, "memory", "Memory must be at least 1M"),  # the hub's sentence
    ({"partition": "shared", "runtime": "2h"}, "runtime", "Runtime must look like"),
    ({"partition": "shared", "cores": 0}, "cores", "Cores must be at least 1"),
    ({"partition": "shared", "gpus": -1}, "gpus", "GPUs must be 0 or more"),
    ({"partition": "shared", "reservation": "a;b"}, "reservation", "Reservation must be"),
    ({"partition": "shared", "bogus": 1}, "bogus", "Unknown option"),
    ({"job_id": "12; rm"}, "job_id", "Job id must be the number"),
    ({"job_id": 0}, "job_id", "Job id must be the number"),
    ({"job_id": 12, "cores": 2}, "job_id", "cannot be combined with cores"),
    ({"job_id": 12, "tasks": 2}, "job_id", "cannot be combined with tasks"),
    ({"modules": "netcdf"}, "modules", "Modules"),
    ({"modules": ["net cdf"]}, "modules", "not a module name"),
    ({"tasks": 0}, "tasks", "Tasks must be between"),
    ({"tasks": True}, "tasks", "Tasks: must be a whole number"),
    ({"allocation_timeout": 0}, "allocation_timeout", "Allocation timeout"),
    ([], "config", "JSON object"),
])
def test_bad_shapes_are_refused_by_field(config, field, words):
    with pytest.raises(OptionsError) as error:
        kernelspec.check_shape(config)
    assert error.value.field == field
    assert words in str(error.value)


def test_job_request_with_facts():
    request = kernelspec.to_job_request(kernelspec.check_shape({"partition": "gpu", "gpus": 1, "cores": 4, "tasks": 2}),
                                   facts=facts())
    assert (request.partition, request.cores, request.gpus, request.account) == ("gpu", 4, 1, "bb1234")
    assert request.memory == "8000M" and request.runtime == "01:00:00"


@pytest.mark.parametrize("config, field", [
    ({"partition": "shared", "cores": 99}, "cores"),
    ({"partition": "shared", "gpus": 1}, "gpus"),
    ({"partition": "nosuch"}, "partition"),
    ({"partition": "shared", "account": "ab0000"}, "account"),
    ({"partition": "shared", "runtime": "13:00:00"}, "runtime"),
    ({"partition": "shared", "cores": 4, "tasks": 3}, "tasks"),
    ({"partition": "shared", "cores": 2, "tasks": 4}, "tasks"),
])
def test_limits_need_facts(config, field):
    options = kernelspec.check_shape(config)  # the shape is fine
    with pytest.raises(OptionsError) as error:
        kernelspec.to_job_request(options, facts=facts())
    assert error.value.field == field


def test_salloc_argv_from_a_request():
    request = kernelspec.to_job_request(kernelspec.check_shape(
        {"partition": "gpu", "gpus": 1, "cores": 4, "tasks": 2, "account": "bb1234", "runtime": "02:00:00"}),
        facts=facts())
    options = kernelspec.check_shape(
        {"partition": "gpu", "gpus": 1, "cores": 4, "tasks": 2, "account": "bb1234", "runtime": "02:00:00"})
    assert kernelspec.tasks_per_node(options, request) == 2
    argv = allocations.salloc_argv(request, tasks_per_node=2, job_name="jupyter-kernel-x", comment="dkrz-kernel:abc")
    assert argv == ["salloc", "--kill-command=HUP", "--job-name=jupyter-kernel-x", "--comment=dkrz-kernel:abc",
                    "--partition=gpu", "--account=bb1234", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=2",
                    "--mem=8000M", "--time=02:00:00", "--gpus-per-node=1", "cat"]
    preset = kernelspec.to_job_request(kernelspec.check_shape({"preset": "shared", "cores": 2}))
    argv = allocations.salloc_argv(preset, job_name="n", comment="c")
    assert "--cpus-per-task=2" in argv and "--mem=5000M" in argv and not any(a.startswith("--account") for a in argv)


def multi_node_facts() -> Facts:
    gpu = PartitionLimits(name="gpu", display_name="gpu", default=True, max_nodes=2, max_cores=8,
                          max_memory_mb=16000, max_gpus=2, max_runtime=12 * 3600, memory_per_core_mb=2000)
    return dataclasses.replace(facts(), partitions={"gpu": gpu})


@pytest.mark.parametrize("tasks, per_node, cpus", [(None, 1, 4), (2, 1, 4), (4, 2, 2), (8, 4, 1)])
def test_a_multi_node_allocation_has_the_cores_memory_gpus_and_tasks_on_every_node(tasks, per_node, cpus):
    """nodes=2, cores=4, gpus=1: two nodes, each with 4 cores, the memory and 1 GPU; the tasks (one per node
    unless asked) are spread evenly, so Slurm keeps both nodes (``--ntasks=1`` would shrink it to one)."""
    config = {"partition": "gpu", "nodes": 2, "cores": 4, "gpus": 1, "memory": "6G",
              **({"tasks": tasks} if tasks else {})}
    options = kernelspec.check_shape(config)
    request = kernelspec.to_job_request(options, facts=multi_node_facts())
    assert (request.total_cores, request.total_gpus, request.core_hours) == (8, 2, 8.0)
    assert kernelspec.tasks_per_node(options, request) == per_node
    argv = allocations.salloc_argv(request, tasks_per_node=per_node, job_name="n", comment="c")
    assert argv[6:12] == ["--nodes=2", f"--ntasks-per-node={per_node}", f"--cpus-per-task={cpus}", "--mem=6G",
                          "--time=01:00:00", "--gpus-per-node=1"]


@pytest.mark.parametrize("tasks, words", [
    (1, "Tasks must divide the 8 cores of the allocation evenly, the same number on each of its 2 nodes: "
        "2, 4 or 8."),
    (3, "the same number on each of its 2 nodes"),
    (6, "2, 4 or 8"),
    (16, "2, 4 or 8"),
])
def test_tasks_that_do_not_spread_evenly_over_the_nodes_are_refused(tasks, words):
    options = kernelspec.check_shape({"partition": "gpu", "nodes": 2, "cores": 4, "tasks": tasks})
    with pytest.raises(OptionsError) as error:
        kernelspec.to_job_request(options, facts=multi_node_facts())
    assert error.value.field == "tasks" and words in str(error.value)


def test_one_node_keeps_its_tasks_message():
    options = kernelspec.check_shape({"partition": "shared", "cores": 4, "tasks": 3})
    with pytest.raises(OptionsError, match=r"^Tasks must divide the 4 cores of the allocation evenly: 1, 2 or 4\.$"):
        kernelspec.to_job_request(options, facts=facts())


def test_describe():
    assert kernelspec.describe(kernelspec.check_shape({"job_id": 5})) == "allocation 5"
    assert kernelspec.describe(kernelspec.check_shape({"job_id": 5, "node": "vm"})) == "allocation 5, node vm"
    assert kernelspec.describe(kernelspec.check_shape({"preset": "shared", "cores": 2})) == "preset shared, 2 cores"
    assert kernelspec.describe(kernelspec.check_shape({"preset": "shared", "cores": 1, "runtime": "01:00:00"})) == \
        "preset shared, 1 core, 01:00:00"
    assert kernelspec.describe(kernelspec.check_shape({"partition": "gpu", "gpus": 1})) == "partition gpu, 1 GPU"
    assert kernelspec.describe(kernelspec.check_shape({"partition": "gpu", "nodes": 2, "cores": 4, "gpus": 1})) == \
        "partition gpu, 2 nodes, 4 cores per node, 1 GPU per node"


def test_node_needs_an_existing_allocation_and_is_checked_against_its_nodes():
    options = kernelspec.check_shape({"job_id": "12", "node": "l40123"})
    assert options.node == "l40123"
    for config, words in (({"preset": "shared", "node": "vm"}, "needs job_id"),
                          ({"job_id": 12, "node": "vm; rm"}, "Node must be a node's name")):
        with pytest.raises(OptionsError) as error:
            kernelspec.check_shape(config)
        assert error.value.field == "node" and words in str(error.value)
    assert kernelspec.check_node("b", "12", ("a", "b")) == "b"
    assert kernelspec.check_node(None, "12", ("a",)) is None
    with pytest.raises(OptionsError, match=r"Node 'c' is not one of allocation 12's nodes \(a, b\)\.") as error:
        kernelspec.check_node("c", "12", ("a", "b"))
    assert error.value.field == "node"


@pytest.mark.parametrize("texts, words", [
    (["PROJ"], "must be NAME=VALUE"),
    (["1X=a"], "is not a variable name"),
    (["A-B=a"], "is not a variable name"),
    (["SLURM_NTASKS=4"], "Slurm's variables"),
    (["SBATCH_ACCOUNT=x"], "Slurm's variables"),
    (["DKRZ_JOB_NTASKS=4"], "set by the kernel's provisioner"),
    (["MODULEPATH=/x"], "set by the kernel's provisioner"),
    (["A=one\ntwo"], "one line"),
    (["A=\x1b[31m"], "control characters"),
    (["A=" + "x" * 5000], "at most 4096"),
    (["A=1", "A=2"], "given twice"),
])
def test_bad_env_variables_are_refused(texts, words):
    with pytest.raises(OptionsError) as error:
        kernelspec.check_env(kernelspec.env_pairs(texts))
    assert error.value.field == "env" and words in str(error.value)


def test_env_variables():
    assert kernelspec.check_env(kernelspec.env_pairs(["PROJ_HOME=/a/b", "X=a=b", "EMPTY=", "P=${HOME}/x"])) == {
        "PROJ_HOME": "/a/b", "X": "a=b", "EMPTY": "", "P": "${HOME}/x"}
    assert kernelspec.check_env({"A": "1"}) == {"A": "1"}
    with pytest.raises(OptionsError):
        kernelspec.check_env({"A": 1})
