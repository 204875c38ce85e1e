"""Domain objects several unit test files build: cluster facts, a spawner without a hub, the parsed spawn form, a
watcher's polling.

- :func:`facts_for`: a user's :class:`~dkrzspawner.options.Facts` from the recorded cluster and the demo's policy;
- :func:`make_spawner` / :class:`PageSpawner`: a DKRZSpawner without JupyterHub's database, on a
  :class:`~tests.unit.fakeslurm.FakeRunner` with the hub's recorded cluster;
- :class:`Page`: the spawn form's elements, as a browser without JavaScript sees them;
- :func:`polled`: wait for a watcher's queries.

Imports the production modules and :mod:`tests.unit.recorded` / :mod:`tests.unit.fakeslurm`; no test file.
"""

from __future__ import annotations

import asyncio
import re
from html.parser import HTMLParser
from types import SimpleNamespace

from dkrzspawner import cluster
from dkrzspawner.cluster import Access, Reservation, Snapshot
from dkrzspawner.offer import Facts, make_facts
from dkrzspawner.options import load_partition_settings
from dkrzspawner.spawner import DKRZSpawner
from tests.unit.fakeslurm import HUB_CLUSTER, FakeRunner
from tests.unit.recorded import SCONTROL_PARTITIONS, SINFO_MIXED


# -- cluster facts ------------------------------------------------------------------------------------------------
#: the site's partition policy of the demo: GPUs only in gpu
DEMO_POLICY = {"*": {"max_gpus": 0}, "gpu": {"max_gpus": 2, "description": "With GPUs."}}
#: reservations open to alice and carol, and to account ab0000
RESERVATIONS = (
    Reservation("course", state="ACTIVE", end="2099-01-01T00:00:00", users=("alice", "carol")),
    Reservation("project", state="ACTIVE", end="2099-01-01T00:00:00", accounts=("ab0000",)),
)


def slurm_partitions(text=SCONTROL_PARTITIONS, sinfo=SINFO_MIXED):
    """The partitions of ``scontrol`` output ``text`` with the nodes of ``sinfo`` output."""
    return cluster.merge(cluster.parse_partitions(text), cluster.parse_sinfo(sinfo))


def facts_for(user="carol", policy=DEMO_POLICY, accounts=None, default=None, advanced=True, partitions="recorded",
              reservations=RESERVATIONS) -> Facts:
    """``user``'s facts: the recorded partitions (or ``partitions``), accounts (alice bb1234, bob ab0000, carol
    both; ``"unknown"``: sacctmgr did not answer), ``reservations`` and the site's partition ``policy``."""
    if accounts is None:
        accounts = {"alice": ("bb1234",), "bob": ("ab0000",), "carol": ("bb1234", "ab0000")}.get(user, ())
    access = None if accounts == "unknown" else Access(user, default or (accounts[0] if accounts else None),
                                                        tuple((a, "") for a in accounts))
    snapshot = Snapshot(user=user, partitions=slurm_partitions() if partitions == "recorded" else partitions,
                        access=access, reservations=reservations)
    return make_facts(snapshot, load_partition_settings(policy), advanced=advanced)


# -- a spawner without a hub -------------------------------------------------------------------------------------
class FakeUser(SimpleNamespace):
    """What the spawner uses of JupyterHub's User: name, orm_spawners, spawners."""


class PageSpawner(DKRZSpawner):
    """A DKRZSpawner without JupyterHub's database: the server's name and last options are given."""

    server_name = ""
    last_options = None

    @property
    def name(self):
        return self.server_name

    def last_user_options(self):
        return self.last_options


def make_spawner(monkeypatch, user="carol", name="", last_options=None, answers=None, **config):
    """A :class:`PageSpawner` of ``user``'s server ``name`` and its runner: :data:`HUB_CLUSTER` with ``answers``
    (given to every DKRZSpawner until the test ends)."""
    runner = FakeRunner(HUB_CLUSTER, answers)
    monkeypatch.setattr(DKRZSpawner, "runner", property(lambda self: runner))
    owner = FakeUser(name=user, orm_spawners={}, spawners={})
    config.setdefault("lmod_command", "")  # no modules unless a test offers them
    spawner = PageSpawner(user=owner, hub=SimpleNamespace(base_url="/hub/", api_url="http://10.0.0.1:8081/hub/api"),
                          partitions={"*": {"max_gpus": 0}, "gpu": {"max_gpus": 2}}, **config)
    spawner.server_name, spawner.last_options = name, last_options
    owner.spawners[name] = spawner
    owner.orm_spawners[name] = object()
    return spawner, runner


# -- the spawn form ----------------------------------------------------------------------------------------------
class Page(HTMLParser):
    """The form's elements, labels and text, parsed the way a browser without JavaScript sees them."""

    def __init__(self, html):
        super().__init__()
        self.elements, self.labels, self.legends, self.text = [], {}, 0, []
        self._label = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("input", "select", "textarea", "option", "fieldset", "section", "table", "output", "div", "p", "tr"):
            self.elements.append((tag, attrs))
        if tag == "label":
            self._label = attrs.get("for")
            self.labels[self._label] = ""
        if tag == "legend":
            self.legends += 1

    def handle_endtag(self, tag):
        if tag == "label":
            self._label = None

    def handle_data(self, data):
        self.text.append(data)
        if self._label:
            self.labels[self._label] += data

    def inputs(self, name=None):
        return [a for tag, a in self.elements if tag in ("input", "select") and (name is None or a.get("name") == name)]

    def by_id(self, element_id):
        return next((a for _, a in self.elements if a.get("id") == element_id), None)

    def options(self, select_id):
        found, inside = [], False
        for tag, attrs in self.elements:
            if tag == "select":
                inside = attrs.get("id") == select_id
            elif tag == "option" and inside:
                found.append(attrs)
        return found

    @property
    def words(self):
        return re.sub(r"\s+", " ", " ".join(self.text))


# -- the watcher -------------------------------------------------------------------------------------------------
async def polled(w, cycles=1):
    """Wait until the watcher has finished ``cycles`` queries in all (watch() starts the first one by itself)."""
    for _ in range(500):
        if w.cycles >= cycles:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the watcher made {w.cycles} queries, not {cycles}")


#: what a member of the policy's "students" group (presets: shared; no partitions; accounts: bb1234) is refused,
#: by field and in the words users read: (user_options, field, message)
STUDENT_REFUSALS = [
    ({"preset": "prepost"}, "preset", "Preset prepost is not open to you; yours are shared."),
    ({"user_options": {"preset": "big"}}, "preset", "Preset big is not open to you; yours are shared."),
    ({"partition": "gpu"}, "partition", "Partition gpu is not open to you; use a preset."),
    ({"preset": "shared", "account": "ab0000"}, "account",
     "Account ab0000 may not be used on this hub by you; allowed: bb1234."),
]
