"""dkrzspawner.lab: every REST handler of the JupyterLab extension, in a real jupyter_server ``ServerApp`` started
in-process on a free port with the extension enabled, called with tornado's AsyncHTTPClient and a token; Slurm is
the shared fake runner with recorded output. A refused POST is a 400 naming the field and writes nothing."""

from __future__ import annotations

import datetime
import json
import socket
from types import SimpleNamespace

import pytest
from jupyter_client.kernelspec import KernelSpec
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets.config import Config

from dkrzspawner import lab, siteconfig
from dkrzspawner.kernels import provisioner as prov
from dkrzspawner.kernels import templates
from dkrzspawner.lab import allocations, jobinfo
from dkrzspawner.lab.handlers import SETTINGS_KEY
from dkrzspawner.modules import ModuleCatalog
from dkrzspawner.slurm import JobUnknown, parse_job_info
from tests.unit import recorded
from tests.unit.fakeslurm import KERNEL_CLUSTER, FakeRunner, unanswered

TOKEN = "lab-test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def lmod_and_registry(monkeypatch):
    """Lmod as on the local cluster (answered by the fake runner); an empty allocation registry."""
    monkeypatch.setattr(siteconfig.SiteConfig, "module_catalog",
                        lambda site, runner: ModuleCatalog(runner, lmod_command="/bin/true", module_path=["/tmp"]))
    prov.ALLOCATIONS.clear()
    yield
    prov.ALLOCATIONS.clear()


@pytest.fixture
def home(tmp_path, monkeypatch):
    for name, sub in (("JUPYTER_DATA_DIR", "data"), ("JUPYTER_CONFIG_DIR", "config"),
                      ("JUPYTER_RUNTIME_DIR", "runtime")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(name, str(tmp_path / sub))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SLURM_JOB_ID", "930")
    return tmp_path


async def start_server(home, **lab_config):
    from jupyter_server.serverapp import ServerApp

    config = Config({"ServerApp": {"port": free_port(), "ip": "127.0.0.1", "open_browser": False,
                                   "root_dir": str(home), "jpserver_extensions": {"dkrzspawner.lab": True}},
                     "IdentityProvider": {"token": TOKEN}, "DKRZLab": lab_config})
    app = ServerApp.instance(config=config)
    app.init_signal = lambda: None
    app.initialize(argv=[], new_httpserver=True)
    return app


@pytest.fixture
async def server(home):
    """(call, the Lab state, the app); ``call(method, path, body)`` -> (status, JSON or None)."""
    from jupyter_server.serverapp import ServerApp

    app = await start_server(home)
    state = app.web_app.settings[SETTINGS_KEY]
    state.runner = FakeRunner(KERNEL_CLUSTER, {("squeue", "-h", "-j", "930"): recorded.SQUEUE_JOB_INFO})
    state.job = jobinfo.OwnJob(state.runner, {"SLURM_JOB_ID": "930"})
    client = AsyncHTTPClient()

    async def call(method, path, body=None):
        try:
            response = await client.fetch(
                f"http://127.0.0.1:{app.port}/dkrzspawner/api/{path}", method=method,
                headers={"Authorization": f"token {TOKEN}"}, raise_error=True,
                body=None if body is None and method in ("GET", "DELETE") else json.dumps(body or {}),
                allow_nonstandard_methods=True)
        except HTTPClientError as exc:
            response = exc.response
        text = response.body.decode() if response.body else ""
        return response.code, json.loads(text) if text else None

    yield SimpleNamespace(call=call, lab=state, app=app, home=home)
    app.http_server.stop()
    await app._cleanup()
    ServerApp.clear_instance()


async def test_config_says_what_the_site_switched_on(home):
    from jupyter_server.serverapp import ServerApp

    app = await start_server(home, panel=False, notify_minutes=[30])
    try:
        response = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{app.port}/dkrzspawner/api/config",
                                                 headers={"Authorization": f"token {TOKEN}"})
        assert json.loads(response.body) == {"templates": True, "statusbar": True, "panel": False,
                                             "notify_minutes": [30]}
    finally:
        app.http_server.stop()
        await app._cleanup()
        ServerApp.clear_instance()


async def test_kernel_templates_switched_off_refuse_every_change(server):
    server.lab.config.templates = False
    status, body = await server.call("POST", "kernels", {"template": "python-slurm", "name": "k", "options": {}})
    assert status == 403 and "switched kernel templates off" in body["message"]
    assert (await server.call("POST", "environments", {"path": "/tmp"}))[0] == 403
    assert (await server.call("DELETE", "kernels/k"))[0] == 403
    assert not (server.home / "data" / "kernels").exists()


async def test_without_a_token_nothing_is_answered(server):
    with pytest.raises(HTTPClientError) as refused:
        await AsyncHTTPClient().fetch(f"http://127.0.0.1:{server.app.port}/dkrzspawner/api/job")
    assert refused.value.code == 403


async def test_job_is_this_servers_job_from_squeue_cached(server):
    status, job = await server.call("GET", "job")
    assert status == 200
    assert {key: job[key] for key in ("job_id", "state", "partition", "account", "node", "cores", "memory", "gpus",
                                      "started", "ends", "in_job")} == {
        "job_id": "930", "state": "RUNNING", "partition": "shared", "account": "bb1234", "node": "vm", "cores": 2,
        "memory": "5000M", "gpus": 0, "started": "2026-12-01T22:00:00", "ends": "2026-12-02T04:00:00",
        "in_job": True}
    assert isinstance(job["seconds_left"], int)
    await server.call("GET", "job")
    assert server.lab.runner.count(("squeue", "-h", "-j", "930")) == 1  # the second answer came from the cache
    assert server.lab.runner.commands[0].user is None  # as the server's own user, no sudo


async def test_job_outside_slurm_gone_unanswered_and_seconds_left():
    assert await jobinfo.OwnJob(FakeRunner(), {}).describe() == {"in_job": False}
    gone = FakeRunner(squeue=JobUnknown(["squeue"], 1, "slurm_load_jobs error: Invalid job id specified"))
    assert (await jobinfo.OwnJob(gone, {"SLURM_JOB_ID": "930"}).describe())["state"] == "GONE"
    down = unanswered({"squeue": ""}, "squeue")
    answer = await jobinfo.OwnJob(FakeRunner(down), {"SLURM_JOB_ID": "930"}).describe()
    assert answer["state"] is None and answer["error"].startswith("Slurm did not answer")
    parsed = parse_job_info(recorded.SQUEUE_JOB_INFO, "930")
    assert jobinfo.describe(parsed, datetime.datetime(2026, 12, 2, 3, 0, 0))["seconds_left"] == 3600
    assert jobinfo.seconds_until("N/A") is None


async def test_templates_list_the_slurm_templates(server):
    status, body = await server.call("GET", "templates")
    assert status == 200
    assert [(t["name"], t["needs_environment"]) for t in body["templates"]] == [("python-slurm", False),
                                                                                ("conda-slurm", True)]


async def test_templates_list_the_sites_own_with_their_starting_options(server, tmp_path, monkeypatch):
    (tmp_path / "python-gpu").mkdir()
    (tmp_path / "python-gpu" / "template.json").write_text(json.dumps(
        {"display_name": "Python on a GPU via Slurm", "options": {"partition": "gpu", "gpus": 1}}))
    monkeypatch.setenv(templates.SITE_TEMPLATES_ENV, str(tmp_path))
    status, body = await server.call("GET", "templates")
    assert status == 200
    assert body["templates"][-1] == {"name": "python-gpu", "display_name": "Python on a GPU via Slurm",
                                     "description": "", "needs_environment": False,
                                     "options": {"partition": "gpu", "gpus": 1}}


async def test_offer_is_the_hubs_offer_for_this_user(server):
    status, offer = await server.call("GET", "offer")
    assert status == 200
    assert [p["name"] for p in offer["presets"]] == ["shared", "prepost"]
    assert offer["presets"][0]["cores"] == [1, 2, 4]
    assert {p["name"] for p in offer["partitions"]} >= {"shared", "gpu"}
    assert offer["accounts"] == ["bb1234"] and offer["default_account"] == "bb1234"
    assert "example/2.0" in offer["modules"] and offer["errors"] == []
    assert offer["environments"] == []


async def test_create_list_edit_remove_a_kernel(server):
    status, body = await server.call("POST", "kernels", {"template": "python-slurm", "name": "my-kernel",
                                                         "display_name": "My kernel",
                                                         "options": {"preset": "shared", "cores": 2}})
    assert (status, body["name"], body["display_name"]) == (201, "my-kernel", "My kernel")
    spec = json.loads((server.home / "data" / "kernels" / "my-kernel" / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["config"] == {"preset": "shared", "cores": 2}
    status, listed = await server.call("GET", "kernels")
    assert listed == {"kernels": [{"name": "my-kernel", "display_name": "My kernel", "template": "python-slurm",
                                   "options": {"preset": "shared", "cores": 2}, "environment": None,
                                   "slurm": True}]}
    status, body = await server.call("POST", "kernels", {"template": "python-slurm", "name": "my-kernel",
                                                         "options": {"preset": "shared"}})
    assert status == 400 and body["field"] == "name" and "exists already" in body["message"]
    status, body = await server.call("PUT", "kernels/my-kernel", {"template": "python-slurm",
                                                                  "options": {"partition": "gpu", "gpus": 1}})
    assert status == 200
    spec = json.loads((server.home / "data" / "kernels" / "my-kernel" / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["config"] == {"partition": "gpu", "gpus": 1}
    assert (await server.call("PUT", "kernels/nosuch", {"template": "python-slurm", "options": {}}))[0] == 404
    status, body = await server.call("PUT", "kernels/my-kernel", {"template": "python-slurm", "name": "other",
                                                                  "options": {}})
    assert status == 400 and body["field"] == "name"
    assert (await server.call("DELETE", "kernels/my-kernel"))[0] == 204
    assert not (server.home / "data" / "kernels" / "my-kernel").exists()
    assert (await server.call("DELETE", "kernels/my-kernel"))[0] == 404


@pytest.mark.parametrize("body, field, words", [
    ({"template": "python-slurm", "name": "k", "options": {"preset": "shared", "cores": 3}}, "cores",
     "Cores must be one of 1, 2, 4"),
    ({"template": "python-slurm", "name": "k", "options": {"partition": "shared", "cores": 99}}, "cores",
     "Cores must be between 1 and 8"),
    ({"template": "python-slurm", "name": "k", "options": {"partition": "shared", "account": "ab0000"}},
     "account", "Account ab0000 is not one of yours"),
    ({"template": "python-slurm", "name": "../evil", "options": {"preset": "shared"}}, "name", "Name '../evil'"),
    ({"template": "nosuch", "name": "k", "options": {}}, "template", "Template 'nosuch'"),
    ({"template": "conda-slurm", "name": "k", "options": {"preset": "shared"}}, "environment", "needs"),
    ({"template": "python-slurm", "name": "k", "options": {"preset": "shared"}, "argv": ["x"]}, "argv",
     "Unknown field 'argv'"),
])
async def test_a_refused_kernel_is_a_400_naming_the_field_and_nothing_is_written(server, body, field, words):
    status, answer = await server.call("POST", "kernels", body)
    assert status == 400 and answer["field"] == field and words in answer["message"], answer
    assert not (server.home / "data" / "kernels").exists()
    assert not any(call[0] in ("salloc", "sbatch", "srun") for call in server.lab.runner.argvs())


async def test_conda_kernel_from_a_listed_environment_and_register_env(server):
    env = server.home / "miniconda3" / "envs" / "climate"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to("/usr/bin/python3")
    (env / "conda-meta").mkdir()
    status, offer = await server.call("GET", "offer")
    assert offer["environments"] == [{"path": str(env), "kind": "conda", "name": "climate"}]
    status, body = await server.call("POST", "kernels", {"template": "conda-slurm", "name": "climate",
                                                         "options": {"preset": "prepost"}, "environment": str(env)})
    assert status == 201
    spec = json.loads((server.home / "data" / "kernels" / "climate" / "kernel.json").read_text())
    assert spec["env"]["CONDA_PREFIX"] == str(env) and spec["argv"][0] == str(env / "bin" / "python")
    status, body = await server.call("POST", "environments", {"path": str(env), "name": "climate-local"})
    assert status == 400 and body["field"] == "path" and "ipykernel is not installed" in body["message"]
    assert not (server.home / "data" / "kernels" / "climate-local").exists()
    status, body = await server.call("POST", "environments", {"path": str(server.home / "nothing")})
    assert status == 400 and body["field"] == "path"


async def test_allocations_from_the_registry_with_one_squeue(server):
    prov.ALLOCATIONS["77"] = prov.Allocation(job_id="77", owned=True, kernels={"k1"}, node="l40123")
    prov.ALLOCATIONS["78"] = prov.Allocation(job_id="78", owned=True, kernels={"k2"})
    server.lab.runner.answers[("squeue", "-h", "-t", "all", "-j")] = (
        recorded.squeue_line(77, host="localhost") + "78|PENDING|n/a|Priority|2099-11-22T05:40:00|N/A|shared|alice\n")
    status, body = await server.call("GET", "allocations")
    assert status == 200
    first, second = body["allocations"]
    assert (first["job_id"], first["state"], first["reason"]) == ("77", "RUNNING", "")
    assert first["node"] == "l40123"  # the kernels' node, not salloc's host
    assert isinstance(first["seconds_left"], int) and second["seconds_left"] is None
    assert (second["job_id"], second["state"], second["node"]) == ("78", "PENDING", None)
    assert second["reason"] and "Slurm's reason" not in second["reason"]
    assert second["estimated_start"] == "2099-11-22T05:40:00" and second["start_text"].startswith("expected")
    assert server.lab.runner.argvs(("squeue", "-h", "-t", "all", "-j"))[0][5] == "77,78"  # one batched squeue


async def test_cancel_only_an_allocation_of_this_servers_kernels(server):
    prov.ALLOCATIONS["77"] = prov.Allocation(job_id="77", owned=True, kernels={"k1"})
    server.lab.runner.answers["scancel"] = ""
    assert (await server.call("DELETE", "allocations/930"))[0] == 404  # the server's own job, say
    assert server.lab.runner.count("scancel") == 0
    assert (await server.call("DELETE", "allocations/77"))[0] == 204
    assert server.lab.runner.argvs("scancel") == [["scancel", "77"]]


async def test_a_kernel_waiting_for_its_allocation_is_listed():
    spec = KernelSpec(argv=["/py", "-m", "ipykernel_launcher", "-f", "{connection_file}"], display_name="Waits",
                      language="python")
    waiting = prov.SlurmProvisioner(kernel_id="k9", kernel_spec=spec, parent=None, lmod_command="")
    waiting.job_id = "79"
    waiting.status.update(job_id="79", state="PENDING")
    manager = SimpleNamespace(kernel_name="slurmy", kernel_spec=spec, provisioner=waiting)
    kernels = SimpleNamespace(list_kernel_ids=lambda: ["k9"], get_kernel=lambda kid: manager)
    assert allocations.registered(kernels) == {"79": [{"id": "k9", "name": "slurmy", "display_name": "Waits"}]}
    waiting.status.update(state="CANCELLED")
    assert allocations.registered(kernels) == {}
    listing = await allocations.listing(kernels, FakeRunner())
    assert listing == {"allocations": []}


def test_the_extension_points_name_the_package():
    assert lab._jupyter_server_extension_points() == [{"module": "dkrzspawner.lab"}]


class StandInHub:
    """The hub's two answers the extend button needs (``GET /user``, ``POST /dkrzspawner/extend/USER/NAME``), on
    a free port of 127.0.0.1; ``scopes``: the token's, ``refusal``: a (status, message) to answer instead."""

    def __init__(self, scopes, refusal=None):
        import tornado.web

        hub = self
        self.requests = []

        class Identity(tornado.web.RequestHandler):
            def get(self):
                hub.requests.append(("GET", self.request.path, self.request.headers.get("Authorization"), None))
                self.finish({"name": "alice", "scopes": scopes})

        class Extend(tornado.web.RequestHandler):
            def post(self, user, server):
                hub.requests.append(("POST", self.request.path, self.request.headers.get("Authorization"),
                                     json.loads(self.request.body)))
                if refusal:
                    self.set_status(refusal[0])
                    return self.finish({"status": refusal[0], "message": refusal[1]})
                self.finish({"job_id": "930", "time_limit": "07:00:00", "end": "2026-12-02T05:00:00",
                             "ends_at": 1796187600})

        self.port = free_port()
        self.server = tornado.web.Application([(r"/hub/api/user", Identity),
                                               (r"/hub/api/dkrzspawner/extend/([^/]+)/([^/]*)", Extend)]
                                              ).listen(self.port, "127.0.0.1")

    def api(self, **environ):
        from dkrzspawner.lab.hubapi import HubAPI

        return HubAPI({"JUPYTERHUB_API_URL": f"http://127.0.0.1:{self.port}/hub/api", "JUPYTERHUB_API_TOKEN": "srv",
                       "JUPYTERHUB_USER": "alice", "JUPYTERHUB_SERVER_NAME": "", **environ})


async def test_extend_goes_to_the_hub_with_the_servers_token_and_the_job_is_asked_again(server):
    hub = StandInHub(["access:servers!server=alice/", "custom:dkrzspawner:extend!server=alice/"])
    server.lab.hub = hub.api()
    try:
        status, job = await server.call("GET", "job")
        assert status == 200 and job["extendable"] is True
        status, extended = await server.call("POST", "job/extend", {"add": "01:00:00"})
        assert status == 200 and extended["time_limit"] == "07:00:00"
        assert hub.requests == [("GET", "/hub/api/user", "token srv", None),
                                ("POST", "/hub/api/dkrzspawner/extend/alice/", "token srv", {"add": "01:00:00"})]
        await server.call("GET", "job")
        assert server.lab.runner.count(("squeue", "-h", "-j", "930")) == 2, "the new end is Slurm's, asked again"
    finally:
        hub.server.stop()


async def test_the_hubs_refusal_is_the_users_sentence_and_a_token_without_the_scope_is_not_offered(server):
    refused = StandInHub(["custom:dkrzspawner:extend!server=alice/"], (400, "Add: this hub lets a server run at "
                                                                           "most 02:00:00; this one has 02:00:00 "
                                                                           "already, so no more."))
    plain = StandInHub(["access:servers!server=alice/"])
    try:
        server.lab.hub = refused.api()
        status, body = await server.call("POST", "job/extend", {"add": "01:00:00"})
        assert (status, body["field"]) == (400, "add") and body["message"].startswith("Add: this hub lets")
        for bad in ({}, {"add": 3600}, {"add": "01:00:00", "user": "bob"}):
            status, body = await server.call("POST", "job/extend", bad)
            assert (status, body["field"]) == (400, "add"), bad
        assert len(refused.requests) == 2, "a malformed request never reaches the hub"

        server.lab.hub = plain.api()
        assert (await server.call("GET", "job"))[1]["extendable"] is False
        status, body = await server.call("POST", "job/extend", {"add": "01:00:00"})
        assert status == 403 and "does not let JupyterLab extend" in body["message"]
        assert [request[0] for request in plain.requests] == ["GET"], "asked once, never told to extend"
    finally:
        refused.server.stop()
        plain.server.stop()


async def test_an_unreachable_hub_is_said_and_asked_again():
    from dkrzspawner.lab.hubapi import HubAPI, HubRefused

    api = HubAPI({"JUPYTERHUB_API_URL": f"http://127.0.0.1:{free_port()}/hub/api", "JUPYTERHUB_API_TOKEN": "t",
                  "JUPYTERHUB_USER": "alice"}, timeout=5)
    assert await api.may_extend() is False and api._may_extend is None
    with pytest.raises(HubRefused) as failed:
        await api.extend("01:00:00")
    assert failed.value.status == 502 and failed.value.args[0].startswith("The hub did not answer")
    assert await HubAPI({}).may_extend() is False  # outside a hub's server
