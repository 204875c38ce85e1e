"""leanstart.py: deferred modules load on their first call, a Python script runs in the same interpreter, anything
else is executed unchanged; and the spawner's job command with the lean start on and off."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from dkrzspawner import leanstart
from tests.unit.builders import make_spawner

PYTHON_BIN = os.path.dirname(os.path.abspath(sys.executable))


@pytest.fixture
def module_folder(tmp_path, monkeypatch):
    """A folder on sys.path holding ``slow_grammar``, a module that counts its own imports."""
    (tmp_path / "slow_grammar.py").write_text(textwrap.dedent("""
        import builtins
        builtins.slow_grammar_imports = getattr(builtins, "slow_grammar_imports", 0) + 1
        def is_valid(term, value):
            return (term, value)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("slow_grammar", None)


def test_a_deferred_module_is_imported_on_the_first_call_of_one_of_its_functions(module_folder):
    import builtins

    leanstart.defer("slow_grammar")
    from slow_grammar import is_valid  # what jsonschema does at its import

    assert not hasattr(builtins, "slow_grammar_imports")
    assert is_valid("iri", "x") == ("iri", "x")
    assert is_valid("iri", "y") == ("iri", "y")
    assert builtins.slow_grammar_imports == 1
    assert not isinstance(sys.modules["slow_grammar"], leanstart.Deferred)
    del builtins.slow_grammar_imports


def test_a_module_already_imported_is_left_as_it_is():
    leanstart.defer("json")
    assert not isinstance(sys.modules["json"], leanstart.Deferred)


def test_the_command_line_needs_the_separator_and_a_command():
    assert leanstart.parse(["--defer", "a", "--defer", "b", "--", "cmd", "--x"]) == (["a", "b"], ["cmd", "--x"])
    for wrong in ([], ["--"], ["cmd"], ["--defer"], ["--defer", "a", "cmd"]):
        with pytest.raises(SystemExit, match="usage"):
            leanstart.parse(wrong)


def script(tmp_path, shebang: str, body: str, name: str = "server") -> str:
    path = tmp_path / name
    path.write_text(f"#!{shebang}\n{body}")
    path.chmod(0o755)
    return str(path)


def test_a_script_of_this_environment_runs_here_with_its_arguments_and_the_modules_deferred(tmp_path, module_folder):
    path = script(tmp_path, f"{PYTHON_BIN}/python", textwrap.dedent("""
        import sys
        print(type(sys.modules["slow_grammar"]).__name__, sys.argv[1:], sys.path[0])
    """))
    done = subprocess.run([sys.executable, "-m", "dkrzspawner.leanstart", "--defer", "slow_grammar", "--", path, "--a"],
                          capture_output=True, text=True, check=True, cwd=os.getcwd(),
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), str(module_folder)])})
    kind, args, first_path = done.stdout.split(maxsplit=2)
    assert kind == "Deferred", "ran in leanstart's interpreter, with the stand-in in place"
    assert args == "['--a']"
    assert first_path.strip() == str(tmp_path), "the script's folder comes first, as for a script, not -m's cwd"
    assert leanstart.runs_here(path)


def test_anything_else_is_executed_unchanged(tmp_path):
    other = script(tmp_path, "/bin/sh", 'echo "sh $1"\n')
    elsewhere = script(tmp_path, "/usr/bin/env python3", "print('x')\n", name="other-python")
    assert not leanstart.runs_here(elsewhere)
    done = subprocess.run([sys.executable, "-m", "dkrzspawner.leanstart", "--", other, "--a"],
                          capture_output=True, text=True, check=True, cwd=os.getcwd())
    assert done.stdout == "sh --a\n"
    assert not leanstart.runs_here(str(tmp_path / "missing"))


async def request_of(monkeypatch, spawner):
    monkeypatch.setattr(spawner, "_home", lambda: "/home/carol")
    monkeypatch.setattr(spawner, "get_env", lambda: {"JUPYTERHUB_API_TOKEN": "secret"})
    return await spawner.validate_options({"preset": "shared"})


async def test_the_job_starts_the_server_through_the_lean_start_by_default(monkeypatch):
    spawner, _ = make_spawner(monkeypatch, job_prefix="/env", args=["--ServerApp.jpserver_extensions=jupyter_lsp=True"])
    text = spawner.submission(await request_of(monkeypatch, spawner)).script
    assert ("exec /env/bin/dkrzspawner-singleuser -- /env/bin/dkrzspawner-leanstart "
            "--defer rfc3987_syntax -- /env/bin/jupyterhub-singleuser "
            "--ServerApp.jpserver_extensions=jupyter_lsp=False --ServerApp.jpserver_extensions=notebook_shim=False "
            "--LabApp.extension_manager=readonly --ServerApp.jpserver_extensions=jupyter_lsp=True\n") in text, \
        "the site's Spawner.args come last: they override the lean defaults"


async def test_without_the_lean_start_the_job_runs_the_command_as_jupyterhub_would(monkeypatch):
    spawner, _ = make_spawner(monkeypatch, job_prefix="/env", lean_job_start=False)
    text = spawner.submission(await request_of(monkeypatch, spawner)).script
    assert "exec /env/bin/dkrzspawner-singleuser -- /env/bin/jupyterhub-singleuser\n" in text


async def test_a_site_command_of_its_own_runs_as_it_is(monkeypatch):
    spawner, _ = make_spawner(monkeypatch, job_prefix="/env", cmd=["site-server", "--x"])
    text = spawner.submission(await request_of(monkeypatch, spawner)).script
    assert "exec /env/bin/dkrzspawner-singleuser -- /env/bin/site-server --x\n" in text
