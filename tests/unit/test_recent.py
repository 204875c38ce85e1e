"""The recent jobs (dkrzspawner.recent) in a real JupyterHub database (SQLite through JupyterHub's own session
factory): what a new hub process reads, the cap, a removed server, a deleted user, two jobs ending at once; and
what the spawner makes of them for the home page, the API and the next form."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest
from jupyterhub import orm

from dkrzspawner import form, recent
from dkrzspawner.lifecycle import JobRecord, ServerJob, Timeouts, utc_time
from dkrzspawner.options import JobRequest
from dkrzspawner.recent import RecentJob, RecentJobs
from dkrzspawner.registry import REGISTRY
from dkrzspawner.slurm import JobStatus, Result
from tests.unit.builders import Page, make_spawner
from tests.unit.fakeslurm import FakeRunner


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"


def hub_session(url):
    """A session as a hub process opens it (a second call: a new hub process on the same database)."""
    return orm.new_session_factory(url)()


def add_user(session, name="carol"):
    user = orm.User(name=name)
    session.add(user)
    session.commit()
    return user


def job(job_id, server="", **fields):
    return RecentJob(job_id=job_id, server=server, user_options={"preset": "shared", "cores": 2},
                     summary="preset shared: 2 cores", cores=2, submitted=recent.now(), **fields)


@pytest.fixture(autouse=True)
def fresh_registry():
    REGISTRY.clear()
    yield
    REGISTRY.clear()


def test_a_new_hub_process_reads_what_the_old_one_wrote(db_url):
    old = hub_session(db_url)
    user = add_user(old)
    ledger = RecentJobs(old)
    ledger.submitted(user.id, job("101", server="analysis"))
    ledger.update(user.id, "101", ended=recent.now(), state="TIMEOUT", end_reason="The job reached its walltime limit.",
                  core_hours=4.0)
    old.close()

    new = hub_session(db_url)
    listed = RecentJobs(new).list(orm.User.find(new, "carol").id)
    assert [(j.job_id, j.server, j.state, j.core_hours) for j in listed] == [("101", "analysis", "TIMEOUT", 4.0)]
    assert listed[0].user_options == {"preset": "shared", "cores": 2}
    assert listed[0].end_reason == "The job reached its walltime limit."


def test_each_user_keeps_the_newest_twenty(db_url):
    session = hub_session(db_url)
    carol, bob = add_user(session), add_user(session, "bob")
    ledger = RecentJobs(session)
    ledger.submitted(bob.id, job("1"))
    for number in range(100, 125):
        ledger.submitted(carol.id, job(str(number)))
    assert [j.job_id for j in ledger.list(carol.id)] == [str(n) for n in range(124, 104, -1)]
    assert [j.job_id for j in ledger.list(bob.id)] == ["1"], "one user's jobs never push out another's"
    assert session.query(orm.User).count() == 2


def test_the_same_job_submitted_again_is_listed_once(db_url):
    session = hub_session(db_url)
    user = add_user(session)
    ledger = RecentJobs(session)
    ledger.submitted(user.id, job("7"))
    ledger.submitted(user.id, job("7", server="again"))
    assert [(j.job_id, j.server) for j in ledger.list(user.id)] == [("7", "again")]


def test_removing_a_server_keeps_its_jobs_deleting_the_user_removes_them(db_url):
    session = hub_session(db_url)
    user = add_user(session)
    server = orm.Spawner(name="analysis", user=user)
    session.add(server)
    session.commit()
    ledger = RecentJobs(session)
    ledger.submitted(user.id, job("5", server="analysis"))
    session.delete(server)  # what the hub does for DELETE /users/carol/servers/analysis?remove=true
    session.commit()
    assert [j.server for j in ledger.list(user.id)] == ["analysis"]
    user_id = user.id
    session.delete(user)
    session.commit()
    assert ledger.list(user_id) == [], "the user's jobs go with the user"


def test_two_jobs_ending_at_once_keep_both_ends(db_url):
    session = hub_session(db_url)
    user = add_user(session)
    ledger = RecentJobs(session)
    ledger.submitted(user.id, job("1", server="a"))
    ledger.submitted(user.id, job("2", server="b"))
    ledger.update(user.id, "2", state="COMPLETED", end_reason="The Jupyter server exited.")
    ledger.update(user.id, "1", state="OUT_OF_MEMORY", end_reason="The job ran out of memory.", output_tail="oom")
    ends = {j.job_id: (j.state, j.output_tail) for j in ledger.list(user.id)}
    assert ends == {"1": ("OUT_OF_MEMORY", "oom"), "2": ("COMPLETED", None)}


def test_a_job_no_longer_listed_is_not_brought_back(db_url):
    session = hub_session(db_url)
    user = add_user(session)
    ledger = RecentJobs(session)
    ledger.update(user.id, "404", state="COMPLETED")
    assert ledger.list(user.id) == [] and ledger.get(user.id, "404") is None


def test_the_options_in_words():
    preset = JobRequest(partition="shared", cores=2, memory_mb=5000, runtime_seconds=12 * 3600, account="bb1234",
                        preset="shared")
    assert recent.describe(preset) == "preset shared: 2 cores, 5 GB memory, runtime 12 h, account bb1234"
    advanced = JobRequest(partition="gpu", cores=4, memory_mb=8000, runtime_seconds=5400, gpus=1, nodes=1)
    assert recent.describe(advanced) == ("partition gpu: 4 cores, 8 GB memory, 1 GPU, runtime 90 min, "
                                         "account default")
    two = JobRequest(partition="gpu", cores=4, memory_mb=8000, runtime_seconds=5400, gpus=1, nodes=2)
    assert recent.describe(two) == ("partition gpu: 2 nodes, each 4 cores, 8 GB memory, 1 GPU, runtime 90 min, "
                                    "account default"), "the progress page's words (JobRequest.shape)"


def test_core_hours_are_cores_times_the_elapsed_hours():
    assert recent.core_hours(4, 5400) == 6.0
    assert recent.core_hours(2, None) is None
    assert recent.core_hours(1, 0) == 0.0


def test_start_again_is_a_spawn_link_with_exactly_those_options():
    url = recent.start_again_url("/hub/", "carol", "my analysis",
                                 {"partition": "gpu", "cores": 4, "modules": ["gcc/13", "cdo"]})
    parsed = urlparse(url)
    assert parsed.path == "/hub/spawn/carol/my%20analysis"
    query = parse_qs(parsed.query)
    assert query == {"opt-partition": ["gpu"], "opt-cores": ["4"], "opt-modules": ["gcc/13", "cdo"]}
    # the form reads such a link back into the very options (JupyterHub strips opt-)
    assert form.options_from_query({k[4:]: v for k, v in query.items()}) == {
        "partition": "gpu", "cores": 4, "modules": ["gcc/13", "cdo"]}
    assert recent.start_again_url("/hub/", "carol", "", {}) == "/hub/spawn/carol"


# -- the spawner: entries at submission and at the end, the listing, the next form ---------------------------------
def spawner_in_hub(monkeypatch, session, name="", last_options=None):
    spawner, runner = make_spawner(monkeypatch, name=name, last_options=last_options)
    orm_user = orm.User.find(session, "carol") or add_user(session)
    spawner.user.orm_user = orm_user
    return spawner, runner


def test_the_spawner_records_a_job_from_submission_to_its_end(monkeypatch, db_url):
    session = hub_session(db_url)
    spawner, _ = spawner_in_hub(monkeypatch, session, name="analysis")
    request = JobRequest(partition="shared", cores=2, memory_mb=5000, runtime_seconds=3600, preset="shared")
    spawner._starting = (request, {"preset": "shared", "cores": 2})
    spawner._job_submitted("900")
    spawner.record.job_id, spawner.record.job_started = "900", "2026-12-02T00:59:00+00:00"
    listed = spawner.recent_servers()
    assert [(j["job_id"], j["server"], j["ended"], j["active"]) for j in listed] == [("900", "analysis", None, False)]
    assert listed[0]["started"] == "2026-12-02T00:59:00+00:00", "a running job's start, from its server's record"
    assert listed[0]["summary"] == "preset shared: 2 cores, 5 GB memory, runtime 1 h, account default"
    assert listed[0]["start_again"] == "/hub/spawn/carol/analysis?opt-preset=shared&opt-cores=2"

    spawner._job_ended({"job_id": "900", "state": "FAILED", "reason": "The job failed (exit code 1).",
                        "at": "", "started": "2026-12-02T01:00:00+00:00", "elapsed": 1800.0,
                        "tail": "Traceback\nImportError: no module"})
    (entry,) = spawner.recent_servers()
    assert entry["state"] == "FAILED" and entry["failed"] and entry["end_reason"] == "The job failed (exit code 1)."
    assert entry["core_hours"] == 1.0 and entry["started"] == "2026-12-02T01:00:00+00:00" and entry["ended"]
    assert entry["output_tail"] == "Traceback\nImportError: no module"
    json.dumps(entry)  # what the API sends


def test_a_clean_end_keeps_no_output(monkeypatch, db_url):
    session = hub_session(db_url)
    spawner, _ = spawner_in_hub(monkeypatch, session)
    spawner._starting = (JobRequest(partition="shared", cores=1, memory_mb=2500, runtime_seconds=60), {})
    spawner._job_submitted("1")
    spawner._job_ended({"job_id": "1", "state": "CANCELLED", "reason": "The job was cancelled (by carol).",
                        "started": None, "elapsed": 0.0, "tail": "some output"})
    (entry,) = spawner.recent_servers()
    assert entry["output_tail"] is None and not entry["failed"] and entry["core_hours"] == 0.0


def test_without_a_hub_database_the_spawner_lists_nothing_and_starts_nothing(monkeypatch):
    spawner, _ = make_spawner(monkeypatch)
    spawner._starting = (JobRequest(partition="shared", cores=1, memory_mb=2500, runtime_seconds=60), {})
    spawner._job_submitted("1")
    assert spawner.recent_servers() == [] and spawner.recent_options() is None


async def test_a_new_named_server_starts_from_the_most_recent_options_of_any_server(monkeypatch, db_url):
    session = hub_session(db_url)
    spawner, _ = spawner_in_hub(monkeypatch, session)
    spawner._starting = (JobRequest(partition="gpu", cores=3, memory_mb=3000, runtime_seconds=3600),
                         {"partition": "gpu", "cores": 3})
    spawner._job_submitted("1")
    named, _ = spawner_in_hub(monkeypatch, session, name="fresh")
    page = Page(await named.render_options_form())
    assert "checked" in page.by_id("dkrz-mode-advanced")
    assert page.by_id("dkrz-cores")["value"] == "3"
    assert "The options of your most recent server, default, are selected." in page.words

    default, _ = spawner_in_hub(monkeypatch, session)  # the default server: its own last options, as before
    page = Page(await default.render_options_form())
    assert "checked" in page.by_id("dkrz-mode-preset")
    assert "most recent server" not in page.words


# -- the lifecycle tells the spawner ----------------------------------------------------------------------------
class EndedWatcher:
    def __init__(self, status):
        self._status = status

    def watch(self, job_id, on_over=None, user=None):
        pass

    def status(self, job_id):
        return self._status


async def test_the_lifecycle_tells_how_long_the_job_ran_and_its_output():
    record = JobRecord(job_id="77", job_started="2026-12-02T01:00:00+00:00")
    status = JobStatus(job_id="77", state="OUT_OF_MEMORY", exit_code="0:125", elapsed="00:30:00")
    ends = []
    runner = FakeRunner({("sacct",): Result("77|OUT_OF_MEMORY|0:125|00:30:00|01:00:00\n", "", 0.0)})
    life = ServerJob(runner, EndedWatcher(status), record, user="carol", timeouts=Timeouts(), on_end=ends.append,
                     output="/home/carol/out-%j.log", job_name="jupyterhub-default")
    life.read_output_tail = _tail
    await life.record_end(status)
    (end,) = ends
    assert end["job_id"] == "77" and end["state"] == "OUT_OF_MEMORY" and end["reason"] == "The job ran out of memory."
    assert end["elapsed"] == 1800.0 and end["started"] == "2026-12-02T01:00:00+00:00"
    assert end["tail"] == "Killed: out of memory", "a failed job's output is read even when it is not FAILED"


async def _tail():
    return "Killed: out of memory"



async def test_after_a_hub_restart_the_first_poll_records_when_the_running_job_started():
    record = JobRecord(job_id="78", job_host="node1", job_port=8888)
    saved = []
    life = ServerJob(FakeRunner({}), EndedWatcher(JobStatus(job_id="78", state="RUNNING", host="node1",
                                                            start_time="2026-12-02T01:00:00")),
                     record, user="carol", on_record=lambda: saved.append(record.to_state()))
    assert await life.poll(wait=1) is None
    assert saved and saved[-1]["job_started"] == utc_time("2026-12-02T01:00:00")
