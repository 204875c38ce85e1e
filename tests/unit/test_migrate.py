"""The ProfilesSpawner -> presets helper: what it translates, what it refuses, and the snippet it prints."""

from __future__ import annotations

import io
import re
import sys
import textwrap
from pathlib import Path

import pytest
from jupyterhub.spawner import LocalProcessSpawner
from traitlets.config import Config

from dkrzspawner import migrate
from dkrzspawner.options import load_presets

SHARED = ("Shared, 2 cores", "shared2", "batchspawner.SlurmSpawner",
          {"req_partition": "shared", "req_nprocs": "2", "req_memory": "5G", "req_runtime": "08:00:00"})

CONFIG_FILE = '''
import batchspawner
raise SystemExit("the helper must not run the config")
c.JupyterHub.spawner_class = "wrapspawner.ProfilesSpawner"
c.ProfilesSpawner.profiles = [("Old", "old", "batchspawner.SlurmSpawner", {"req_partition": "old"})]
c.ProfilesSpawner.profiles = [
    ("Shared, 2 cores", "shared2", "batchspawner.SlurmSpawner",
     dict(req_partition="shared", req_nprocs="2", req_memory="5G", req_runtime="08:00:00")),
    ("GPU-less prepost", "Prepost", batchspawner.SlurmSpawner,
     {"req_partition": "prepost", "req_nprocs": 3, "req_memory": "10G", "req_runtime": "720", "req_ngpus": "0"}),
]
'''


def test_a_slurm_profile_becomes_a_preset():
    assert migrate.profiles_to_presets([SHARED]) == {"shared2": {
        "display_name": "Shared, 2 cores", "partition": "shared", "cores": [2], "memory_per_core": "2560M",
        "runtime": "08:00:00", "max_runtime": "08:00:00",
    }}


def test_the_presets_are_valid_for_the_spawner():
    presets = load_presets(migrate.profiles_to_presets([SHARED]))
    assert presets["shared2"].cores == (2,)
    assert presets["shared2"].memory_per_core == "2560M"


def test_memory_is_divided_per_core_and_rounding_is_noted():
    converted = migrate.convert_profile(("P", "p", "batchspawner.SlurmSpawner",
                                         {"req_partition": "prepost", "req_nprocs": 3, "req_memory": "10GB"}))
    assert converted.preset["memory_per_core"] == "3413M"
    assert converted.notes == ["req_memory 10GB rounded down to 3413M per core"]


def test_a_key_that_is_not_a_slug_is_renamed_with_a_note():
    converted = migrate.convert_profile(("P", "Pre Post", "SlurmSpawner", {"req_partition": "prepost"}))
    assert converted.name == "pre-post"
    assert converted.notes == ["key 'Pre Post' renamed to 'pre-post'"]


def _runtime(text):
    profile = ("P", "p", "SlurmSpawner", {"req_partition": "shared", "req_runtime": text})
    return migrate.profiles_to_presets([profile])["p"]["runtime"]


@pytest.mark.parametrize("text, runtime", [
    ("90", "01:30:00"), ("30:15", "00:30:15"), ("08:00:00", "08:00:00"), ("1-12", "1-12:00:00"),
    ("2-03:30", "2-03:30:00"), (720, "12:00:00"),
])
def test_slurm_time_forms_become_runtimes(text, runtime):
    assert _runtime(text) == runtime


@pytest.mark.parametrize("text", ["8h", "1-", "a:b", "UNLIMITED", "12:00:00\n#SBATCH"])
def test_malformed_or_unlimited_times_are_refused(text):
    with pytest.raises(migrate.MigrationError, match="is not a limited Slurm time"):
        _runtime(text)


@pytest.mark.parametrize("spawner_class", [
    "batchspawner.SlurmSpawner", "batchspawner.batchspawner.SlurmSpawner", "SlurmSpawner",
])
def test_slurm_spawner_names_are_accepted(spawner_class):
    assert migrate.is_slurm_spawner(spawner_class)


@pytest.mark.parametrize("spawner_class", [
    LocalProcessSpawner, "jupyterhub.spawner.LocalProcessSpawner", "batchspawner.TorqueSpawner",
    "mysite.SlurmSpawner", "kubespawner.KubeSpawner",
])
def test_other_spawner_classes_are_refused(spawner_class):
    with pytest.raises(migrate.MigrationError, match="only batchspawner's SlurmSpawner profiles"):
        migrate.profiles_to_presets([("Local", "local", spawner_class, {"req_partition": "shared"})])


def test_every_problem_of_every_profile_is_named_at_once():
    profiles = [
        ("GPU", "gpu", "batchspawner.SlurmSpawner", {"req_partition": "gpu", "req_ngpus": "1", "req_qos": "hi"}),
        ("Odd", "odd", "batchspawner.SlurmSpawner", {"req_partition": "shared", "cmd": ["jupyter-lab"]}),
        ("Nowhere", "nowhere", "batchspawner.SlurmSpawner", {"req_nprocs": "four"}),
    ]
    with pytest.raises(migrate.MigrationError) as caught:
        migrate.profiles_to_presets(profiles)
    problems = caught.value.problems
    assert any("'gpu': req_ngpus cannot be translated: presets have no GPUs" in p for p in problems)
    assert any("'gpu': req_qos cannot be translated" in p for p in problems)
    assert any("'odd': cmd is not a batchspawner SlurmSpawner setting" in p for p in problems)
    assert any("'nowhere': req_partition is missing" in p for p in problems)
    assert any("'nowhere': req_nprocs 'four' is not a whole number" in p for p in problems)
    assert len(problems) == 5


def test_a_fixed_account_is_refused_with_what_to_do():
    with pytest.raises(migrate.MigrationError, match="users pick one of their own Slurm accounts"):
        migrate.profiles_to_presets([("A", "a", "SlurmSpawner", {"req_partition": "shared", "req_account": "bb1234"})])


def test_empty_settings_and_zero_gpus_count_as_unset():
    presets = migrate.profiles_to_presets([("A", "a", "SlurmSpawner", {
        "req_partition": "shared", "req_account": "", "req_ngpus": "0", "req_options": None, "req_qos": ""})])
    assert presets == {"a": {"display_name": "A", "partition": "shared"}}


def test_values_the_preset_model_refuses_are_refused():
    with pytest.raises(migrate.MigrationError, match="preset 'a'"):
        migrate.profiles_to_presets([("A", "a", "SlurmSpawner", {"req_partition": "shared", "req_nprocs": "0"})])
    with pytest.raises(migrate.MigrationError, match="partition"):
        migrate.profiles_to_presets([("A", "a", "SlurmSpawner", {"req_partition": "bad\n#SBATCH --uid=0"})])


def test_two_profiles_may_not_become_the_same_preset():
    with pytest.raises(migrate.MigrationError, match="both become preset 'shared'"):
        migrate.profiles_to_presets([("One", "shared", "SlurmSpawner", {"req_partition": "shared"}),
                                     ("Two", "Shared", "SlurmSpawner", {"req_partition": "shared"})])


@pytest.mark.parametrize("profiles", [[], None, [("too", "short")], [("A", "a", "SlurmSpawner", "not a dict")]])
def test_malformed_lists_are_refused(profiles):
    with pytest.raises(migrate.MigrationError):
        migrate.profiles_to_presets(profiles)


def test_the_snippet_is_config_that_gives_the_same_presets():
    profiles = [SHARED, ("Defaults", "defaults", "SlurmSpawner", {"req_partition": "prepost"})]
    snippet = migrate.config_snippet(profiles)
    c = Config()
    exec(snippet, {"c": c})
    assert c.JupyterHub.spawner_class == "dkrz"
    assert c.DKRZSpawner.presets == migrate.profiles_to_presets(profiles)
    assert load_presets(c.DKRZSpawner.presets)
    assert '# "cores": [1, 2, 4],  (the default)' in snippet
    assert '# "max_runtime": "12:00:00",  (the default)' in snippet


def test_the_config_file_is_read_not_run():
    profiles = migrate.read_profiles(CONFIG_FILE)
    assert [profile[1] for profile in profiles] == ["shared2", "Prepost"]
    assert profiles[1][2] == "batchspawner.SlurmSpawner"
    assert profiles[0][3]["req_memory"] == "5G"
    assert migrate.profiles_to_presets(profiles)["prepost"]["runtime"] == "12:00:00"


def test_a_file_with_just_the_list_is_read():
    assert migrate.read_profiles(repr([SHARED])) == [SHARED]


@pytest.mark.parametrize("source, message", [
    ("c.ProfilesSpawner.profiles = make_profiles()", "must be a literal list"),
    ("c.ProfilesSpawner.profiles = [('A', 'a', 'SlurmSpawner', {'req_memory': MEM})]", "not written as literal"),
    ("c.ProfilesSpawner.profiles = [('A', 'a', 'SlurmSpawner', dict(**base))]", "not written as literal"),
    ("c.JupyterHub.spawner_class = 'dkrz'", "no `c.ProfilesSpawner.profiles = [...]` found"),
    ("c.ProfilesSpawner.profiles = [", "not Python"),
])
def test_config_the_helper_cannot_read_without_running_it(source, message):
    with pytest.raises(migrate.MigrationError, match=message.replace("[", r"\[").replace("(", r"\(")):
        migrate.read_profiles(source)


def test_command_prints_the_snippet(tmp_path, capsys):
    path = tmp_path / "jupyterhub_config.py"
    path.write_text(CONFIG_FILE)
    before = {name for name in sys.modules if name.startswith(("batchspawner", "wrapspawner"))}
    assert migrate.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# dkrzspawner presets, translated from c.ProfilesSpawner.profiles")
    assert '"prepost": {' in out and "# key 'Prepost' renamed to 'prepost'" in out
    assert {name for name in sys.modules if name.startswith(("batchspawner", "wrapspawner"))} == before


def test_command_reads_standard_input(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(repr([SHARED])))
    assert migrate.main([]) == 0
    assert '"shared2": {' in capsys.readouterr().out


def test_command_refuses_with_every_problem_and_status_2(tmp_path, capsys):
    path = tmp_path / "profiles.py"
    path.write_text(repr([("Local", "local", "jupyterhub.spawner.LocalProcessSpawner", {"cmd": ["x"]})]))
    assert migrate.main([str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[0] == "dkrzspawner-migrate-profiles: cannot translate these profiles:"
    assert len(captured.err.splitlines()) == 4  # the class, cmd, and the missing partition


def test_command_reports_a_missing_file(tmp_path, capsys):
    assert migrate.main([str(tmp_path / "missing.py")]) == 1
    assert "No such file or directory" in capsys.readouterr().err


def test_the_documented_example_is_what_the_helper_prints():
    page = (Path(__file__).resolve().parents[2] / "docs" / "admin" / "migration.rst").read_text()
    blocks = [textwrap.dedent(block) for block in re.findall(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", page)]
    given, printed = blocks[0], blocks[1]
    assert migrate.config_snippet(migrate.read_profiles(given)) == printed.rstrip("\n") + "\n"
