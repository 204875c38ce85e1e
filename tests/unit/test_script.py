"""script.py + share/batch_script.sh.j2: only validated values reach #SBATCH lines, and nothing can add one."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shlex
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from traitlets import TraitError

from dkrzspawner import script
from dkrzspawner.options import DKRZ_PRESETS, JobRequest, OptionsError, load_presets, validate
from dkrzspawner.units import runtime_seconds
from dkrzspawner.script import UnsafeValue
from dkrzspawner.spawner import DKRZSpawner

TEMPLATE = "batch_script.sh.j2"
PRESETS = load_presets(DKRZ_PRESETS)
SETTINGS = dict(
    job_name="jupyterhub-default",
    comment="dkrzspawner:alice:default:0123456789ab",
    output="/home/alice/.jupyterhub_slurm_%j.log",
    workdir="/home/alice",
    export_names=["PATH", "JUPYTERHUB_API_TOKEN", "HOME"],
    path="/opt/dkrzspawner/venv/bin:/usr/bin:/bin",
    command=["/opt/dkrzspawner/venv/bin/dkrzspawner-singleuser", "--", "jupyterhub-singleuser"],
)
# The lines after the #SBATCH block, for SETTINGS.
TAIL = [
    "",
    "umask 0022",
    "export PATH=/opt/dkrzspawner/venv/bin:/usr/bin:/bin",
    "export LANG=C.UTF-8",
    "export SLURM_EXPORT_ENV=ALL",
    "",
    "",
    "exec /opt/dkrzspawner/venv/bin/dkrzspawner-singleuser -- jupyterhub-singleuser",
    "",
]


def render(request: JobRequest, **overrides) -> str:
    return script.render(TEMPLATE, request=request, **{**SETTINGS, **overrides})


def sbatch_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("#SBATCH")]


def expected_sbatch(request: JobRequest, settings=SETTINGS) -> list[str]:
    lines = [
        f"#SBATCH --job-name={settings['job_name']}",
        f"#SBATCH --comment={settings['comment']}",
        f"#SBATCH --partition={request.partition}",
    ]
    if request.account:
        lines.append(f"#SBATCH --account={request.account}")
    lines += [
        f"#SBATCH --nodes={request.nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --cpus-per-task={request.cores}",
        f"#SBATCH --mem={request.memory}",
        f"#SBATCH --time={request.runtime}",
        "#SBATCH --no-requeue",
    ]
    if request.gpus:
        lines.append(f"#SBATCH --gpus-per-node={request.gpus}")
    if request.reservation:
        lines.append(f"#SBATCH --reservation={request.reservation}")
    lines += [
        f"#SBATCH --output={settings['output']}",
        f"#SBATCH --chdir={settings['workdir']}",
        f"#SBATCH --export={','.join(sorted(settings['export_names']))}",
    ]
    return lines


SHARED_2 = JobRequest(partition="shared", cores=2, memory_mb=5000, runtime_seconds=6 * 3600, preset="shared")


def test_the_job_sets_its_own_umask_first():
    """Submitted with umask 0077 (a private output file), the job then takes the configured one."""
    lines = render(SHARED_2, umask="0027").splitlines()
    commands = [line for line in lines[1:] if line and not line.startswith("#")]
    assert commands[0] == "umask 0027"



def test_sbatch_lines_exactly():
    text = render(SHARED_2)
    assert sbatch_lines(text) == [
        "#SBATCH --job-name=jupyterhub-default",
        "#SBATCH --comment=dkrzspawner:alice:default:0123456789ab",
        "#SBATCH --partition=shared",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=5000M",
        "#SBATCH --time=06:00:00",
        "#SBATCH --no-requeue",
        "#SBATCH --output=/home/alice/.jupyterhub_slurm_%j.log",
        "#SBATCH --chdir=/home/alice",
        "#SBATCH --export=HOME,JUPYTERHUB_API_TOKEN,PATH",
    ]
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert lines[1:13] == sbatch_lines(text)  # one block right after the shebang: sbatch reads all of them
    assert lines[13:] == TAIL
    assert text.endswith("\n")


def test_validated_request_renders_the_expected_lines():
    request = validate({"preset": "prepost", "cores": 4, "account": "bb1234", "runtime": "1:30:00"}, PRESETS)
    assert sbatch_lines(render(request)) == [
        "#SBATCH --job-name=jupyterhub-default",
        "#SBATCH --comment=dkrzspawner:alice:default:0123456789ab",
        "#SBATCH --partition=prepost",
        "#SBATCH --account=bb1234",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=10000M",
        "#SBATCH --time=01:30:00",
        "#SBATCH --no-requeue",
        "#SBATCH --output=/home/alice/.jupyterhub_slurm_%j.log",
        "#SBATCH --chdir=/home/alice",
        "#SBATCH --export=HOME,JUPYTERHUB_API_TOKEN,PATH",
    ]


@pytest.mark.parametrize("changes, present, absent", [
    ({}, [], ["--account", "--gpus", "--reservation"]),
    ({"account": "bb1234"}, ["#SBATCH --account=bb1234"], ["--gpus", "--reservation"]),
    ({"gpus": 1}, ["#SBATCH --gpus-per-node=1"], ["--account", "--reservation"]),
    ({"reservation": "maint"}, ["#SBATCH --reservation=maint"], ["--account", "--gpus"]),
    ({"account": "", "gpus": 0, "reservation": ""}, [], ["--account", "--gpus", "--reservation"]),
    ({"account": "ab0000", "gpus": 2, "reservation": "r1"},
     ["#SBATCH --account=ab0000", "#SBATCH --gpus-per-node=2", "#SBATCH --reservation=r1"], []),
])
def test_optional_lines_only_when_set(changes, present, absent):
    request = dataclasses.replace(SHARED_2, **changes)
    lines = sbatch_lines(render(request))
    assert lines == expected_sbatch(request)
    for line in present:
        assert line in lines
    for word in absent:
        assert not any(word in line for line in lines)


def test_optional_lines_order():
    request = dataclasses.replace(SHARED_2, account="bb1234", gpus=1, reservation="r1", nodes=2)
    options = [line.split("=")[0].removeprefix("#SBATCH ") for line in sbatch_lines(render(request))]
    assert options == ["--job-name", "--comment", "--partition", "--account", "--nodes", "--ntasks-per-node",
                       "--cpus-per-task", "--mem", "--time", "--no-requeue", "--gpus-per-node", "--reservation",
                       "--output",
                       "--chdir", "--export"]


def test_a_multi_node_request_asks_for_every_node_with_its_share():
    """nodes=2 means two nodes, each with the cores, the memory and the GPUs: one task per node (``--ntasks=1``
    would make Slurm shrink the job to one node), ``--mem`` per node, ``--gpus-per-node`` (``--gpus`` counts the
    whole job's)."""
    request = dataclasses.replace(SHARED_2, nodes=2, cores=4, memory_mb=8000, gpus=1)
    lines = sbatch_lines(render(request))
    assert lines[3:10] == ["#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --cpus-per-task=4",
                           "#SBATCH --mem=8000M", "#SBATCH --time=06:00:00", "#SBATCH --no-requeue",
                           "#SBATCH --gpus-per-node=1"]
    assert not any(line.startswith(("#SBATCH --ntasks=", "#SBATCH --gpus=")) for line in lines)


@pytest.mark.parametrize("command", [
    ["jupyterhub-singleuser", "--ServerApp.default_url=/lab"],
    ["echo", "it's", "a b", "$HOME", "`id`", "$(id)", ";", "&&", "|", "*", "#SBATCH --partition=gpu", ""],
    ["/path with space/python", "-c", "print('x')"],
    ["ünïcödé", "日本語"],
])
def test_command_is_shell_quoted(command):
    text = render(SHARED_2, command=command)
    exec_lines = [line for line in text.splitlines() if line.startswith("exec ")]
    assert len(exec_lines) == 1
    assert shlex.split(exec_lines[0]) == ["exec", *command]
    assert sbatch_lines(text) == expected_sbatch(SHARED_2)


def test_path_is_shell_quoted():
    text = render(SHARED_2, path="/opt/my env/bin:$(id)")
    assert "export PATH='/opt/my env/bin:$(id)'" in text.splitlines()


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "a\x1bb", "a\tb", "a\x7fb", "x\n#SBATCH --partition=gpu",
                                   "ok\n"])
@pytest.mark.parametrize("where", ["job_name", "comment", "output", "workdir", "path", "command", "export_names",
                                   "partition", "account", "memory", "runtime", "reservation"])
def test_newline_or_control_character_is_refused(where, value):
    request, settings = SHARED_2, {}
    if where in ("partition", "account", "reservation"):
        request = dataclasses.replace(SHARED_2, **{where: value})
    elif where in ("memory", "runtime"):  # numbers in a JobRequest; the text the template reads, from elsewhere
        request = SimpleNamespace(**{**dataclasses.asdict(SHARED_2), "memory": SHARED_2.memory,
                                     "runtime": SHARED_2.runtime, where: value})
    elif where == "command":
        settings["command"] = ["jupyterhub-singleuser", value]
    elif where == "export_names":
        settings["export_names"] = ["PATH", value]
    else:
        settings[where] = value
    with pytest.raises(UnsafeValue):
        render(request, **settings)


def test_unsafe_value_is_a_value_error():
    assert issubclass(UnsafeValue, ValueError)


def test_admin_template_folder_overrides_the_packaged_one(tmp_path):
    (tmp_path / TEMPLATE).write_text('{% extends "base.j2" %}{% block command %}exec site-wrapper {{ command }}\n'
                                     "{% endblock %}")
    (tmp_path / "base.j2").write_text("#!/bin/bash\n#SBATCH --partition={{ request.partition }}\n"
                                      "{% block command %}{% endblock %}")
    text = render(SHARED_2, extra_paths=[str(tmp_path)])
    assert text.splitlines() == ["#!/bin/bash", "#SBATCH --partition=shared",
                                 "exec site-wrapper /opt/dkrzspawner/venv/bin/dkrzspawner-singleuser -- "
                                 "jupyterhub-singleuser"]


def test_the_template_is_compiled_once_for_every_spawn_and_a_changed_site_template_is_read_again(tmp_path):
    assert script.environment() is script.environment(), "one environment: its compiled templates are kept"
    assert script.environment([str(tmp_path)]) is script.environment((str(tmp_path),))
    assert script.environment([str(tmp_path)]) is not script.environment()
    template = tmp_path / TEMPLATE
    template.write_text("#!/bin/bash\n# first\n")
    assert render(SHARED_2, extra_paths=[str(tmp_path)]).splitlines()[1] == "# first"
    template.write_text("#!/bin/bash\n# second\n")
    stat = template.stat()
    os.utime(template, (stat.st_atime, stat.st_mtime + 10))  # a later edit, as an admin's would be
    assert render(SHARED_2, extra_paths=[str(tmp_path)]).splitlines()[1] == "# second"


def test_a_site_template_extends_our_blocks_with_super_and_values_stay_checked(tmp_path):
    """docs/admin/presets.rst's example: a block of ours plus the site's lines; the parent block's own line breaks
    pass, a value with one inside it is still refused."""
    (tmp_path / "site.sh.j2").write_text('{% extends "batch_script.sh.j2" %}{% block prologue %}{{ super() }}'
                                          "module load python3\n{% endblock %}")
    site = dict(SETTINGS, extra_paths=[str(tmp_path)])
    lines = script.render("site.sh.j2", request=SHARED_2, **site).splitlines()
    start = lines.index("umask 0022")
    assert lines[start:start + 5] == ["umask 0022", f"export PATH={SETTINGS['path']}", "export LANG=C.UTF-8",
                                      "export SLURM_EXPORT_ENV=ALL", "module load python3"]
    with pytest.raises(UnsafeValue):
        script.render("site.sh.j2", request=SHARED_2, **{**site, "path": "/bin\n#SBATCH --x"})


@pytest.mark.parametrize("where", ["job_name", "comment"])
def test_whitespace_in_an_sbatch_value_is_refused(where):
    with pytest.raises(UnsafeValue):
        render(SHARED_2, **{where: "jupyterhub-x --partition=gpu --gpus=2"})


# -- fuzzing user_options through validation and rendering --------------------------------------------------
KNOWN_KEYS = ("preset", "cores", "account", "runtime")
# Characters that matter: line breaks (also the Unicode ones), control characters, shell and option syntax,
# look-alike digits, and a little of everything else.
ALPHABET = st.sampled_from(
    list("\n\r\t\x00\x01\x0b\x0c\x1b\x7f\x85\u2028\u2029\u200b\u202e -=#;$`'\"\\|&*%:,._/")
    + list("abzAZ0129") + ["é", "ß", "日", "١", "٠", "１", "Ⅻ", "😀", "\ufeff", "\U0010ffff"]
)
NASTY_TEXT = st.text(alphabet=ALPHABET, max_size=12)
INJECTIONS = st.sampled_from(["\n", "\r", "\n#SBATCH --partition=gpu", "\n#SBATCH --gpus=8\n", " --partition=gpu",
                              "\x00", "\t--qos=high", "\u2028", "\x85", "\n\n", ";id", "$(id)", " "])


def weighted(*choices):
    """``weighted((3, a), (1, b))``: a three times as often as b."""
    return st.sampled_from([strategy for weight, strategy in choices for _ in range(weight)]).flatmap(lambda s: s)


def _good_or_nasty(good):
    """Mostly valid values (so that many examples reach the template), else ones with something added."""
    good = st.sampled_from(good)
    return weighted(
        (8, good),
        (1, st.builds(lambda a, b: a + b, good, INJECTIONS)),
        (1, st.builds(lambda a, b: a + b, INJECTIONS, good)),
        (1, st.builds(lambda a, b: a + b, good, NASTY_TEXT)),
        (1, NASTY_TEXT),
    )


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | NASTY_TEXT,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(NASTY_TEXT, inner, max_size=2),
    max_leaves=3,
)
WRONG_TYPES = st.one_of(
    ANY_JSON,
    st.sampled_from([0, -1, -(2**63), 2**31, 2**63, 2**64 + 1, 10**100, -(10**100), True, False, 2.0, 1e308,
                     float("inf"), float("nan"), "", "2", "--cpus-per-task=64", ["shared"], {"preset": "shared"}]),
)
VALUES = {
    "preset": weighted((12, _good_or_nasty(["shared", "prepost"])),
                       (1, st.sampled_from(["Shared", "gpu", "--partition", "shared "])), (1, WRONG_TYPES)),
    "cores": weighted((10, st.sampled_from([1, 2, 4])), (1, st.integers()), (1, WRONG_TYPES)),
    "account": weighted((10, _good_or_nasty(["bb1234", "ab0000", "x", "a.b-c_d", "B" * 64])),
                        (1, st.sampled_from(["--account=ab0000", "-A", " ", "bb1234 ab0000", "a" * 65, "_x"])),
                        (1, WRONG_TYPES)),
    "runtime": weighted((10, _good_or_nasty(["01:00:00", "1:00:00", "0-02:00:00", "12:00:00", "00:01:00",
                                             "00:59:59"])),
                        (1, st.sampled_from(["00:00:59", "12:00:01", "1-00:00:00", "99:59:59", "--time=7-00:00:00",
                                             "01:00", "01:00:00 ", "٠1:00:00", "١:00:00", "１:00:00"])),
                        (1, WRONG_TYPES)),
}
UNKNOWN_KEYS = st.one_of(NASTY_TEXT, st.sampled_from(["partition", "nodes", "gpus", "memory", "reservation", "qos",
                                                      "--partition", "user_options", "#SBATCH", "Preset", ""]))
OPTIONS = st.builds(
    lambda known, unknown: {**unknown, **known},
    weighted(
        (6, st.fixed_dictionaries({"preset": VALUES["preset"]},
                                  optional={key: VALUES[key] for key in ("cores", "account", "runtime")})),
        (1, st.fixed_dictionaries({}, optional=VALUES)),
    ),
    weighted((6, st.just({})), (1, st.dictionaries(UNKNOWN_KEYS, ANY_JSON, min_size=1, max_size=2))),
)
BODIES = weighted((8, OPTIONS), (1, OPTIONS.map(lambda options: {"user_options": options})), (1, WRONG_TYPES))
ACCOUNTS = st.sampled_from([(), ("bb1234",), ("bb1234", "ab0000")])
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@functools.lru_cache(maxsize=None)
def render_cached(request: JobRequest) -> str:
    """script.render is pure (data in, text out): render each distinct request once."""
    return render(request)


def _expected_request(body, accounts) -> JobRequest:
    """An independent oracle for what an accepted body must turn into (only well-formed values pass)."""
    options = body["user_options"] if set(body) == {"user_options"} and isinstance(body["user_options"], dict) \
        else body
    options = options or {"preset": "shared"}
    preset = PRESETS[options["preset"]]
    cores = options.get("cores") or preset.cores[0]
    runtime = options.get("runtime") or preset.runtime
    account = options.get("account")
    assert set(options) <= set(KNOWN_KEYS)
    assert type(cores) is int and cores in preset.cores
    assert account is None or not accounts or account in accounts
    assert account is None or ACCOUNT_NAME.fullmatch(account)
    assert isinstance(runtime, str) and re.fullmatch(r"([0-9]{1,2}-)?[0-9]{1,2}:[0-5][0-9]:[0-5][0-9]", runtime)
    assert 60 <= runtime_seconds(runtime) <= 12 * 3600
    return JobRequest(partition=preset.partition, cores=cores, memory_mb=cores * 2500,
                      runtime_seconds=runtime_seconds(runtime), account=account, preset=options["preset"])


def _check_rendered(text: str, request: JobRequest):
    lines = text.splitlines()
    sbatch = expected_sbatch(request)
    assert sbatch_lines(text) == sbatch
    assert lines == ["#!/bin/bash", *sbatch, *TAIL]
    for line in sbatch:
        assert len(line.split()) == 2, line  # sbatch reads each whitespace-separated token as an option
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]", text)


@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(body={"preset": "shared", "account": "bb1234\n"}, accounts=())
@example(body={"preset": "shared", "account": "bb1234\n"}, accounts=("bb1234",))
@given(body=BODIES, accounts=ACCOUNTS)
def test_fuzz_user_options_refused_or_exact_sbatch_lines(body, accounts):
    """Every input is either refused with OptionsError, or renders exactly the expected #SBATCH lines."""
    try:
        request = validate(body, PRESETS, accounts)
    except OptionsError as error:
        assert isinstance(error.field, str)
        assert str(error).endswith(".") and "\n" not in str(error)
        return
    assert request == _expected_request(body, accounts)
    _check_rendered(render_cached(request), request)


@pytest.mark.parametrize("value, ok", [("0022", True), ("027", True), ("0077", True), ("0022; id", False),
                                       ("22", False), ("0088", False)])
def test_job_umask_is_octal(value, ok):
    if ok:
        assert DKRZSpawner(job_umask=value).job_umask == value
    else:
        with pytest.raises(TraitError, match="job_umask"):
            DKRZSpawner(job_umask=value)
