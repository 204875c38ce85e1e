"""spawner.py: the JupyterHub glue (validation once, the form, spawn links, the pre-flight), with a recorded
Slurm (no hub, no cluster)."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import pytest
from tornado import web

from dkrzspawner import spawner as spawner_module
from dkrzspawner.registry import REGISTRY
from dkrzspawner.slurm import Result, SlurmRejected, SlurmTimeout
from dkrzspawner.spawner import DKRZSpawner
from tests.unit.builders import PageSpawner, make_spawner
from tests.unit.recorded import TEST_ONLY



async def test_the_defaults_are_ours(monkeypatch):
    spawner, _ = make_spawner(monkeypatch)
    assert spawner.options_form is spawner_module._options_form
    assert spawner.options_from_form is spawner_module._options_from_form
    assert spawner.apply_user_options is DKRZSpawner._apply_options
    assert spawner.last_user_options() is None
    assert spawner.advanced_options and spawner.cluster_cache_ttl == 60
    for name in ("partitions", "advanced_options", "cluster_cache_ttl"):
        assert spawner.traits()[name].help, name


def test_the_hubs_slurm_commands_are_bounded_for_all_spawners_together():
    trait = DKRZSpawner.class_traits()["slurm_concurrency"]
    assert trait.default_value == 16 and trait.help
    settings = SimpleNamespace(sudo_command=["sudo", "-n"], slurm_timeout=30.0, log=logging.getLogger("test"),
                               slurm_concurrency=16)
    REGISTRY.clear()
    try:
        assert DKRZSpawner.runner.fget(settings).concurrency == 16
        settings.slurm_concurrency = 0  # no bound
        assert DKRZSpawner.runner.fget(settings).concurrency is None
    finally:
        REGISTRY.clear()


async def test_the_record_is_saved_through_the_servers_own_session_not_the_deprecated_spawner_db(monkeypatch, caplog):
    from jupyterhub import orm

    spawner, _ = make_spawner(monkeypatch)
    session = orm.new_session_factory("sqlite://")()
    row = orm.Spawner(name="", user=orm.User(name="alice"))
    session.add(row)
    session.commit()
    spawner.orm_spawner = row
    spawner.record.job_id, spawner.record.job_comment = "4242", "dkrzspawner:alice:default:abc"
    spawner._save_state()
    session.expire_all()
    assert session.query(orm.Spawner).one().state["job_id"] == "4242"
    assert "deprecated" not in caplog.text


async def test_validation_refusals_are_400_with_the_plain_message(monkeypatch):
    spawner, _ = make_spawner(monkeypatch)
    request = await spawner.validate_options({"partition": "gpu", "gpus": 1, "account": "ab0000"})
    assert (request.partition, request.gpus, request.account) == ("gpu", 1, "ab0000")
    with pytest.raises(web.HTTPError) as refused:
        await spawner.validate_options({"partition": "shared", "gpus": 1})
    assert refused.value.status_code == 400
    assert refused.value.jupyterhub_message == "GPUs: partition shared has none; choose gpu."
    await DKRZSpawner._apply_options(spawner, {"preset": "prepost", "cores": 2})
    with pytest.raises(web.HTTPError):
        await DKRZSpawner._apply_options(spawner, {"preset": "prepost", "cores": 3})


async def test_advanced_switched_off_is_refused_on_every_path(monkeypatch):
    spawner, _ = make_spawner(monkeypatch, advanced_options=False)
    with pytest.raises(web.HTTPError) as refused:
        await spawner.validate_options({"partition": "gpu"})
    assert "not available" in refused.value.jupyterhub_message
    assert 'id="dkrz-mode-advanced"' not in await spawner.render_options_form()


async def test_form_and_url_conversion_errors_are_400(monkeypatch):
    spawner, _ = make_spawner(monkeypatch)
    assert spawner.run_options_from_form({"mode": ["preset"], "preset": ["shared:2"]}) == \
        {"preset": "shared", "cores": 2}
    with pytest.raises(web.HTTPError) as refused:
        spawner.run_options_from_form({"mode": ["sideways"]})
    assert refused.value.jupyterhub_message == "Mode must be preset or advanced."
    with pytest.raises(web.HTTPError) as shown:  # a valid link: the form, pre-filled (see below)
        await spawner.options_from_query({"partition": ["gpu"], "gpus": ["1"]})
    assert shown.value.status_code == 200
    with pytest.raises(web.HTTPError) as refused:
        await spawner.options_from_query({"cores": ["1", "2"]})
    assert refused.value.status_code == 400


async def test_the_form_preselects_this_servers_last_options(monkeypatch):
    spawner, runner = make_spawner(monkeypatch, name="second", last_options={"partition": "gpu", "cores": 3})
    html = await spawner_module._options_form(spawner)
    assert "your server <strong>second</strong>" in html
    assert re.search(r'id="dkrz-mode-advanced"[^>]*checked', html)
    assert re.search(r'id="dkrz-cores"\s+value="3"', html)
    before = len(runner.commands)
    await spawner.render_options_form()
    assert len(runner.commands) == before, "the second render is served from the cache"


async def test_the_form_for_the_server_in_the_url(monkeypatch):
    default, _ = make_spawner(monkeypatch, last_options={"preset": "shared"})
    named = PageSpawner(user=default.user, hub=default.hub, lmod_command="")
    named.server_name, named.last_options = "big", {"partition": "gpu", "cores": 5}
    default.user.spawners["big"], default.user.orm_spawners["big"] = named, object()
    assert default._spawner_for_url("/hub/spawn/carol/big?_xsrf=abc") is named
    assert default._spawner_for_url("/hub/spawn/carol") is None
    assert default._spawner_for_url("/hub/spawn") is None
    assert default._spawner_for_url("/hub/spawn/bob/big") is None, "another user's URL: our own form"
    assert default._spawner_for_url("/hub/spawn/carol/unknown") is None
    assert default._spawner_for_url("/elsewhere/carol/big") is None
    html = await default.options_form_for_url("/hub/spawn/carol/big?_xsrf=abc")
    assert "your server <strong>big</strong>" in html and 'value="5"' in html


async def start_with(monkeypatch, spawner):
    """``apply_user_options`` then ``start()``, as JupyterHub calls them, without a database or a home."""
    monkeypatch.setattr(spawner, "_home", lambda: "/home/carol")
    monkeypatch.setattr(spawner, "get_env", lambda: {"JUPYTERHUB_API_TOKEN": "secret"})
    validations = []
    validate = spawner.validate_options

    async def counted(user_options):
        validations.append(user_options)
        return await validate(user_options)

    monkeypatch.setattr(spawner, "validate_options", counted)
    await spawner.apply_user_options(spawner, {"preset": "shared", "cores": 2})
    try:
        return await spawner.start()
    finally:
        assert len(validations) == 1, "validated once, in apply_user_options; start() submits that request"
        assert spawner.job_request is None, "the kept request is used once"


async def test_a_preflight_refusal_is_a_400_with_the_plain_message_and_no_submission(monkeypatch):
    refusal = SlurmRejected(["sbatch"], 1, "sbatch: error: Batch job submission failed: Invalid account or "
                                           "account/partition combination specified")
    spawner, runner = make_spawner(monkeypatch, answers={("sbatch", "--test-only"): refusal})
    with pytest.raises(web.HTTPError) as refused:
        await start_with(monkeypatch, spawner)
    assert refused.value.status_code == 400
    assert refused.value.jupyterhub_message == \
        "Slurm would refuse this request: your Slurm account may not be used in this partition."
    assert spawner.estimated_start is None and spawner.start_estimate_text == ""
    last = runner.commands[-1]
    assert (last.argv, last.user) == (["sbatch", "--test-only"], "carol") and "#SBATCH --cpus-per-task=2" in last.stdin
    assert not [c for c in runner.commands if c.argv[:2] == ["sbatch", "--parsable"]], "no job"


async def test_a_hub_api_on_loopback_is_said_once_jobs_on_nodes_cannot_reach_it(monkeypatch, caplog):
    refusal = SlurmRejected(["sbatch"], 1, "sbatch: error: Batch job submission failed: Invalid partition name")
    spawner, _ = make_spawner(monkeypatch, answers={("sbatch", "--test-only"): refusal})
    spawner.hub = SimpleNamespace(base_url="/hub/", api_url="http://127.0.0.1:8081/hub/api")
    REGISTRY._parts.pop(("once", "hub on loopback"), None)  # noqa: SLF001 - said once per process: reset for this test
    for _ in range(2):
        with pytest.raises(web.HTTPError):
            await start_with(monkeypatch, spawner)
    warned = [r.getMessage() for r in caplog.records if "loopback address" in r.getMessage()]
    assert len(warned) == 1 and "c.JupyterHub.hub_connect_ip" in warned[0]


async def test_a_hub_user_whose_name_is_no_unix_name_gets_why_and_no_slurm_command(monkeypatch):
    spawner, runner = make_spawner(monkeypatch, user="alice,carol")
    with pytest.raises(web.HTTPError) as refused:
        await spawner.validate_options({"preset": "shared"})
    assert refused.value.status_code == 403
    assert "'alice,carol' is not a Unix user name" in refused.value.log_message
    page = await spawner.render_options_form()
    assert "is not a Unix user name" in page and "<form" not in page and "&#x27;alice,carol&#x27;" in page
    assert runner.commands == [], "nothing was asked of Slurm"


# -- spawn links pre-fill the form, never start a job (issue 18 item 3) ---------------------------------------
def link_handler(query: str, method="GET"):
    from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
    line = RequestStartLine(method, f"/hub/spawn/carol/x?{query}", "HTTP/1.1")
    return SimpleNamespace(request=HTTPServerRequest(start_line=line, headers=HTTPHeaders({"Host": "hub"})))


async def test_a_spawn_link_never_starts_a_job_it_fills_in_the_form(monkeypatch):
    from dkrzspawner.errors import SpawnLinkToConfirm
    spawner, runner = make_spawner(monkeypatch, name="x")
    with pytest.raises(SpawnLinkToConfirm) as shown:
        await spawner.options_from_query({"partition": ["gpu"], "gpus": ["2"], "runtime": ["02:00:00"]})
    assert shown.value.status_code == 200 and 'id="dkrz-link-notice"' in shown.value.jupyterhub_html_message
    spawner.handler = link_handler("opt-partition=gpu&opt-gpus=2&opt-runtime=02:00:00&next=/x")
    assert spawner.link_options() == {"partition": "gpu", "gpus": 2, "runtime": "02:00:00"}
    html = await spawner.render_options_form()
    assert re.search(r'<option value="gpu"[^>]*selected', html)
    assert not [call for call in runner.argvs() if call[0] == "sbatch"], "nothing submitted, not even a test"


async def test_a_link_that_cannot_be_read_is_refused_by_name_and_a_post_is_not_a_link(monkeypatch):
    spawner, _ = make_spawner(monkeypatch, name="x")
    with pytest.raises(web.HTTPError) as refused:
        await spawner.options_from_query({"partition": ["shared"], "gpus": ["1"]})
    assert refused.value.jupyterhub_message == "GPUs: partition shared has none; choose gpu."
    spawner.handler = link_handler("opt-partition=gpu", method="POST")
    assert spawner.link_options() is None


def test_the_hubs_log_gets_no_traceback_for_a_link(caplog):
    import logging
    from dkrzspawner.errors import SpawnLinkToConfirm, quiet_link_confirmations
    quiet_link_confirmations("test-hub")
    log = logging.getLogger("test-hub")
    try:
        raise SpawnLinkToConfirm()
    except SpawnLinkToConfirm:
        log.error("Failed to spawn single-user server with query arguments", exc_info=True)
    try:
        raise ValueError("real")
    except ValueError:
        log.error("Failed to spawn single-user server with query arguments", exc_info=True)
    assert [r.exc_info[1].args for r in caplog.records if r.name == "test-hub"] == [("real",)]


async def test_a_links_options_are_not_called_last_times(monkeypatch):
    spawner, _ = make_spawner(monkeypatch, name="x", last_options={"preset": "prepost"})
    assert "used last time" in await spawner.render_options_form()
    spawner.handler = link_handler("opt-preset=shared")
    assert "used last time" not in await spawner.render_options_form()
