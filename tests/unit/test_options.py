"""options.py: presets and the validation of user_options into a JobRequest (one code path for form and REST)."""

from __future__ import annotations

import pytest

from dkrzspawner import options
from dkrzspawner.options import DKRZ_PRESETS, JobRequest, OptionsError, load_presets, validate
from dkrzspawner.units import memory_mb


@pytest.fixture(scope="module")
def presets():
    return load_presets(DKRZ_PRESETS)


def refused(user_options, presets, accounts=()) -> OptionsError:
    with pytest.raises(OptionsError) as info:
        validate(user_options, presets, accounts)
    return info.value


def assert_one_sentence(message: str):
    assert message and message[0].isupper(), message
    assert message.endswith("."), message
    assert "\n" not in message, message


# -- default presets ---------------------------------------------------------------------------------------
def test_default_presets_load(presets):
    assert list(presets) == ["shared", "prepost"]
    for name, preset in presets.items():
        assert preset.partition == name
        assert preset.cores == (1, 2, 4)
        assert options.memory_mb(preset.memory_per_core) == 2500
    assert "internet" in presets["prepost"].description


def test_shared_two_cores(presets):
    request = validate({"preset": "shared", "cores": 2}, presets)
    assert request == JobRequest(partition="shared", cores=2, memory_mb=5000, runtime_seconds=6 * 3600,
                                 account=None, nodes=1, gpus=0, reservation=None, preset="shared")
    assert (request.memory, request.runtime) == ("5000M", "06:00:00"), "Slurm's text for the batch script"
    assert request.memory_mb == 5000
    assert request.core_hours == 12


@pytest.mark.parametrize("cores, memory", [(1, "2500M"), (2, "5000M"), (4, "10000M")])
def test_memory_scales_with_cores(presets, cores, memory):
    request = validate({"preset": "prepost", "cores": cores}, presets)
    assert (request.partition, request.cores, request.memory) == ("prepost", cores, memory)


def test_default_cores_is_the_first_choice():
    custom = load_presets({"big": {"display_name": "Big", "partition": "shared", "cores": [4, 8, 1]}})
    assert validate({"preset": "big"}, custom).cores == 4
    assert validate({"preset": "big"}, custom).memory == "10000M"


@pytest.mark.parametrize("empty", [{}, {"user_options": {}}])
def test_empty_options_give_the_first_preset(presets, empty):
    request = validate(empty, presets)
    assert (request.preset, request.partition, request.cores, request.memory) == ("shared", "shared", 1, "2500M")


def test_jupyterhub6_nested_body_is_accepted(presets):
    flat = validate({"preset": "prepost", "cores": 4, "account": "bb1234", "runtime": "02:00:00"}, presets)
    nested = validate({"user_options": {"preset": "prepost", "cores": 4, "account": "bb1234",
                                        "runtime": "02:00:00"}}, presets)
    assert nested == flat
    assert (nested.partition, nested.cores, nested.account, nested.runtime) == ("prepost", 4, "bb1234", "02:00:00")


def test_nested_body_with_extra_top_level_key_is_refused(presets):
    error = refused({"user_options": {"preset": "shared"}, "preset": "shared"}, presets)
    assert error.field == "user_options"


def test_account_and_runtime(presets):
    request = validate({"preset": "shared", "account": "ab0000", "runtime": "0-01:30:00"}, presets,
                       accounts=("bb1234", "ab0000"))
    assert request.account == "ab0000"
    assert request.runtime == "01:30:00"  # normalised
    assert validate({"preset": "shared", "runtime": "12:00:00"}, presets).runtime == "12:00:00"  # the maximum
    assert validate({"preset": "shared", "runtime": "00:01:00"}, presets).runtime == "00:01:00"  # the minimum


def test_explicit_nulls_mean_defaults(presets):
    request = validate({"preset": "shared", "cores": None, "account": None, "runtime": None}, presets)
    assert (request.cores, request.account, request.runtime) == (1, None, "06:00:00")


def test_preset_runtime_may_allow_days():
    custom = load_presets({"long": {"display_name": "Long", "partition": "shared", "max_runtime": "2-00:00:00"}})
    assert validate({"preset": "long", "runtime": "1-12:00:00"}, custom).runtime == "1-12:00:00"
    assert validate({"preset": "long", "runtime": "36:00:00"}, custom).runtime == "1-12:00:00"
    assert refused({"preset": "long", "runtime": "2-00:00:01"}, custom).field == "runtime"


# -- refusals --------------------------------------------------------------------------------------------
REFUSALS = [
    # (user_options, field, words the message must contain)
    ({"preset": "shared", "colour": "red"}, "colour", ["Unknown option", "'colour'"]),
    ({"preset": "shared", "nodes": 2}, "nodes", ["Unknown option"]),
    ({"preset": "shared", "cores": "2"}, "cores", ["Cores", "whole number"]),
    ({"preset": "shared", "cores": True}, "cores", ["Cores", "whole number"]),
    ({"preset": "shared", "cores": 2.0}, "cores", ["Cores", "whole number"]),
    ({"preset": "shared", "cores": [2]}, "cores", ["Cores"]),
    ({"preset": ["shared"]}, "preset", ["Preset", "text"]),
    ({"preset": None}, "preset", ["Preset", "text"]),
    ({"preset": 1}, "preset", ["Preset", "text"]),
    ({"preset": "shared", "account": 1234}, "account", ["Account", "text"]),
    ({"preset": "shared", "runtime": 3600}, "runtime", ["Runtime", "text"]),
    ({"preset": "nosuch"}, "preset", ["'nosuch'", "does not exist", "shared, prepost"]),
    ({"preset": "Shared"}, "preset", ["does not exist"]),
    ({"preset": "shared", "cores": 3}, "cores", ["Cores", "1, 2, 4", "shared"]),
    ({"preset": "shared", "cores": 0}, "cores", ["Cores"]),
    ({"preset": "shared", "cores": -1}, "cores", ["Cores"]),
    ({"preset": "shared", "cores": 10**30}, "cores", ["Cores"]),
    ({"preset": "shared", "runtime": "1 hour"}, "runtime", ["Runtime", "HH:MM:SS"]),
    ({"preset": "shared", "runtime": "01:00"}, "runtime", ["Runtime", "HH:MM:SS"]),
    ({"preset": "shared", "runtime": "01:60:00"}, "runtime", ["Runtime", "HH:MM:SS"]),
    ({"preset": "shared", "runtime": ""}, "runtime", ["Runtime"]),
    ({"preset": "shared", "runtime": "12:00:01"}, "runtime", ["Runtime", "12:00:00", "shared"]),
    ({"preset": "shared", "runtime": "1-00:00:00"}, "runtime", ["Runtime", "12:00:00"]),
    ({"preset": "shared", "runtime": "00:00:59"}, "runtime", ["Runtime", "00:01:00"]),
    ({"preset": "shared", "runtime": "00:00:00"}, "runtime", ["Runtime"]),
    ({"preset": "shared", "account": "bb 1234"}, "account", ["Account", "Slurm account name"]),
    ({"preset": "shared", "account": "bb1234;id"}, "account", ["Account"]),
    ({"preset": "shared", "account": "-bb1234"}, "account", ["Account"]),
    ({"preset": "shared", "account": "--account=ab0000"}, "account", ["Account"]),
    ({"preset": "shared", "account": "bb12\n34"}, "account", ["Account"]),
    ({"preset": "shared", "account": ""}, "account", ["Account"]),
    ({"preset": "shared", "account": "a" * 65}, "account", ["Account"]),
    ({"partition": "gpu"}, "partition", ["Advanced", "partition", "not available"]),
    ({"partition": "gpu", "cores": 4, "memory": "8G"}, "partition", ["Advanced"]),
    ({"cores": 2}, "preset", ["preset"]),
    ({"preset": "shared", "partition": "gpu"}, "partition", ["Unknown option"]),
    ({"user_options": "shared"}, "preset", ["preset"]),
]


@pytest.mark.parametrize("user_options, field, words", REFUSALS, ids=[repr(r[0])[:60] for r in REFUSALS])
def test_refusals_name_the_field_in_one_sentence(presets, user_options, field, words):
    error = refused(user_options, presets)
    assert error.field == field
    message = str(error)
    assert_one_sentence(message)
    for word in words:
        assert word in message


def test_account_not_among_the_users_accounts(presets):
    error = refused({"preset": "shared", "account": "ab0000"}, presets, accounts=("bb1234",))
    assert error.field == "account"
    assert "ab0000" in str(error) and "bb1234" in str(error)
    assert_one_sentence(str(error))
    # without known accounts, Slurm decides
    assert validate({"preset": "shared", "account": "ab0000"}, presets).account == "ab0000"


@pytest.mark.parametrize("body", [None, "preset=shared", ["shared"], 42, b'{"preset": "shared"}'])
def test_non_dict_body_is_refused(presets, body):
    error = refused(body, presets)
    assert error.field == "user_options"
    assert_one_sentence(str(error))


def test_unknown_key_with_control_characters_is_shown_safely(presets):
    error = refused({"preset": "shared", "x\n#SBATCH --partition=gpu": 1}, presets)
    assert error.field == "x\n#SBATCH --partition=gpu"
    assert "\n" not in str(error)


def test_options_error_is_a_value_error():
    assert issubclass(OptionsError, ValueError)


@pytest.mark.parametrize("user_options", [
    {"preset": "shared", "account": "bb1234\n"},
    {"preset": "shared", "runtime": "01:00:00\n"},
])
def test_trailing_newline_is_refused(presets, user_options):
    refused(user_options, presets)


def test_refusal_message_of_a_foreign_account_is_one_line(presets):
    error = refused({"preset": "shared", "account": "bb1234\n"}, presets, accounts=("bb1234",))
    assert error.field == "account"
    assert_one_sentence(str(error))


@pytest.mark.parametrize("runtime", ["\u0661:00:00", "0\u0661:00:00", "\uff11:00:00"])
def test_runtime_with_non_ascii_digits_is_refused(presets, runtime):
    assert refused({"preset": "shared", "runtime": runtime}, presets).field == "runtime"


# -- admin preset config -------------------------------------------------------------------------------
@pytest.mark.parametrize("config, words", [
    ({"bad": {"display_name": "Bad", "partition": "shared", "cores": []}}, ["'bad'", "cores"]),
    ({"bad": {"display_name": "Bad", "partition": "shared", "cores": [0, 1]}}, ["'bad'", "cores"]),
    ({"bad": {"display_name": "Bad", "partition": "shared", "memory_per_core": "lots"}}, ["'bad'", "memory_per_core"]),
    ({"bad": {"display_name": "Bad", "partition": "shared", "runtime": "6h"}}, ["'bad'", "runtime"]),
    ({"bad": {"display_name": "Bad", "partition": "shared", "max_runtime": "x"}}, ["'bad'", "max_runtime"]),
    ({"bad": {"display_name": "Bad", "partition": "sha red"}}, ["'bad'", "partition"]),
    ({"bad": {"display_name": "Bad", "partition": "shared\n"}}, ["'bad'", "partition"]),
    ({"bad": {"partition": "shared"}}, ["'bad'", "display_name"]),
    ({"bad": {"display_name": "Bad", "partition": "shared", "colour": "red"}}, ["'bad'", "colour"]),
    ({"Bad Name": {"display_name": "Bad", "partition": "shared"}}, ["'Bad Name'", "slug"]),
    ({}, ["at least one preset"]),
])
def test_bad_admin_preset_config_names_the_preset(config, words):
    good = {"shared": DKRZ_PRESETS["shared"]} if config else {}
    with pytest.raises(ValueError) as info:
        load_presets({**good, **config})
    assert not isinstance(info.value, OptionsError)
    for word in words:
        assert word in str(info.value)


def test_presets_are_frozen(presets):
    with pytest.raises(Exception):
        presets["shared"].partition = "gpu"


def test_memory_round_trip_through_requests(presets):
    for cores in (1, 2, 4):
        request = validate({"preset": "shared", "cores": cores}, presets)
        assert memory_mb(request.memory) == cores * 2500
