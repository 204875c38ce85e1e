"""What a site admin gets from ``pip install dkrzspawner``: the wheel, built from this tree and installed into an
empty virtualenv, carries every file the docs send admins to (drop-ins, page templates, batch script, kernel
templates, sudoers drop-in, JupyterLab's settings defaults) and each of them loads.

The empty venv gets the wheel alone (``--no-deps``); the project venv's site-packages are appended after its own
(a ``.pth`` file), so the dependencies import while every dkrzspawner file comes from the wheel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TREE = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}  # this tree's dkrzspawner, not the venv's copy

# Runs inside the empty venv; prints one JSON line of findings.
CHECK = r'''
import json, os, subprocess, sys, tempfile
from pathlib import Path
import dkrzspawner, jinja2
from traitlets.config.loader import PyFileConfigLoader
from dkrzspawner import dropins, script
from dkrzspawner.kernels import cli
from dkrzspawner.options import load_presets, load_partition_settings
from dkrzspawner.policy import load_policy

package = Path(dkrzspawner.__file__).parent
found = {"package": str(package), "dropins": dropins.names()}
os.chdir(tempfile.mkdtemp())
configs = {}
for name in dropins.names():
    configs[name] = PyFileConfigLoader(os.path.basename(dropins.path(name)),
                                       path=os.path.dirname(dropins.path(name))).load_config()
site = configs["site-example"].DKRZSpawner
presets = load_presets(site.presets)
load_partition_settings(site.partitions)
load_policy(site.policy, presets)
found["site_example_presets"] = sorted(presets)
found["services"] = sorted(s["name"] for n in ("accounts", "announcements")
                           for s in configs[n].JupyterHub.services.get_value([]))  # appended, not set
def parsed(folder):  # each template's syntax (filters and JupyterHub's base pages come with the hub)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)))
    return sorted(t for t in env.list_templates() if env.parse(env.loader.get_source(env, t)[0]))
found["page_templates"] = parsed(dkrzspawner.templates_path())
found["service_templates"] = parsed(package / "services" / "templates")
found["batch_script"] = bool(script.environment().get_template("batch_script.sh.j2"))
found["kernel_templates"] = sorted(p.parent.name for p in cli.SHARE.glob("*/kernel.json.j2"))
found["operations_kit"] = sorted(str(p.relative_to(package / "share")) for p in (package / "share").glob("*/*")
                                 if p.parent.name in ("prometheus", "grafana"))
sudoers = package / "share" / "sudoers.d" / "dkrzspawner"
found["sudoers_ok"] = subprocess.run(["visudo", "-qcf", str(sudoers)]).returncode == 0
lab = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.d" / "dkrzspawner.json"
found["lab_overrides"] = json.loads(lab.read_text())
server = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "dkrzspawner.json"
found["server_config"] = json.loads(server.read_text())
import dkrzspawner.lab
found["server_extension"] = dkrzspawner.lab._jupyter_server_extension_points()
print(json.dumps(found))
'''


def test_the_wheel_has_every_file_the_docs_promise_and_each_loads(tmp_path):
    source = tmp_path / "src"  # a copy: building the wheel writes build/ and *.egg-info next to the sources
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "test-artifacts", "_build", "build", "*.egg-info", "__pycache__", "node_modules", "results"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, timeout=300)
    wheel, = (tmp_path / "dist").glob("dkrzspawner-*.whl")

    venv = tmp_path / "empty"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([venv / "bin" / "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=300)
    purelib = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "zz-project-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")

    done = subprocess.run([venv / "bin" / "python", "-c", CHECK], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])

    assert found["package"].startswith(str(venv)), "dkrzspawner must come from the wheel, not the project venv"
    assert found["dropins"] == ["accounts", "announcements", "extend", "pages", "site-example"]
    assert found["site_example_presets"] == ["prepost", "shared"]
    assert found["services"] == ["accounts", "announcements"]
    assert {"spawn.html", "spawn_pending.html", "home.html", "options_form.html"} <= set(found["page_templates"])
    assert {"accounts.html", "announcements.html", "base.html"} <= set(found["service_templates"])
    assert found["batch_script"] is True
    assert {"python-slurm", "conda-slurm"} <= set(found["kernel_templates"])
    assert found["sudoers_ok"] is True
    assert found["operations_kit"] == ["grafana/dkrzspawner.json", "prometheus/alerts.yml", "prometheus/scrape.yml"]
    assert found["lab_overrides"]["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert found["server_config"] == {"ServerApp": {"jpserver_extensions": {"dkrzspawner.lab": True}}}
    assert found["server_extension"] == [{"module": "dkrzspawner.lab"}]


@pytest.mark.parametrize("names", [[], ["accounts", "pages"]])
def test_dropins_come_out_of_the_package(tmp_path, names):
    target = tmp_path / "jupyterhub_config.d"
    run = [sys.executable, "-m", "dkrzspawner.dropins", str(target), *names]
    done = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path, env=TREE, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = names or ["accounts", "announcements", "extend", "pages", "site-example"]
    assert sorted(p.stem for p in target.glob("*.py")) == sorted(expected)
    again = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path, env=TREE, timeout=60)
    assert again.returncode == 2 and "Not overwriting" in again.stderr and "--force" in again.stderr


def test_an_unknown_dropin_is_refused_by_name(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dkrzspawner.dropins", str(tmp_path / "d"), "acounts"],
                          capture_output=True, text=True, env=TREE, timeout=60)
    assert done.returncode == 2
    assert "No drop-in 'acounts'; there are: accounts, announcements, extend, pages, site-example." in done.stderr
    assert not (tmp_path / "d").exists()
