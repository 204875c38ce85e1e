"""The configuration reference the docs build: every configurable trait of ours is in exactly one topic, with help
text, shown as ``c.DKRZSpawner.NAME`` (``c.SlurmProvisioner.NAME`` for kernels, ``c.DKRZLab.NAME`` for the
JupyterLab extension) whichever class defines it.

The traits are enumerated here independently of the generator (every ``config=True`` trait of DKRZSpawner that
is not JupyterHub's ``Spawner`` trait object, every one of SlurmProvisioner that is not jupyter_client's), so a
trait added later that no topic names fails this test, and so does a topic naming a trait that is gone.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from jupyter_client.provisioning import KernelProvisionerBase
from jupyterhub.spawner import Spawner
from traitlets import Integer
from traitlets.config import Configurable

from dkrzspawner import config_reference
from dkrzspawner.config_reference import LAB, PROVISIONER, SPAWNER, TOPICS
from dkrzspawner.kernels.provisioner import SlurmProvisioner
from dkrzspawner.lab.config import DKRZLab
from dkrzspawner.spawner import DKRZSpawner

DOCS = Path(__file__).resolve().parents[2] / "docs"


def ours(cls: type, base: type) -> list[str]:
    inherited = base.class_traits(config=True)
    return sorted(name for name, trait in cls.class_traits(config=True).items() if inherited.get(name) is not trait)


SPAWNER_TRAITS = ours(DKRZSpawner, Spawner)
PROVISIONER_TRAITS = ours(SlurmProvisioner, KernelProvisionerBase)
LAB_TRAITS = ours(DKRZLab, Configurable)
ALL = ([(SPAWNER, name) for name in SPAWNER_TRAITS] + [(PROVISIONER, name) for name in PROVISIONER_TRAITS]
       + [(LAB, name) for name in LAB_TRAITS])
CLASSES = {SPAWNER: DKRZSpawner, PROVISIONER: SlurmProvisioner, LAB: DKRZLab}


def ids(item):
    return f"{item[0].name}.{item[1]}" if isinstance(item, tuple) else None


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return {topic.slug: config_reference.render_topic(topic.slug) for topic in TOPICS}


@pytest.fixture(scope="module")
def index() -> str:
    return config_reference.render_index()


def test_there_are_traits_to_check():
    assert {"presets", "partitions", "advanced_options", "watch_interval", "watch_as_users"} <= set(SPAWNER_TRAITS)
    assert {"connection_dir", "srun", "queue_poll_interval"} <= set(PROVISIONER_TRAITS)
    assert set(LAB_TRAITS) == {"templates", "statusbar", "panel", "notify_minutes"}


@pytest.mark.parametrize("item", ALL, ids=ids)
def test_every_configurable_trait_is_in_exactly_one_topic(item):
    section, name = item
    where = [topic.slug for topic in TOPICS if topic.section == section for listed in topic.names if listed == name]
    assert len(where) == 1, f"{section.name}.{name} is in {len(where)} topics: {where}"


@pytest.mark.parametrize("topic", TOPICS, ids=lambda topic: topic.slug)
def test_a_topic_names_only_existing_traits_once(topic):
    existing = {SPAWNER: SPAWNER_TRAITS, PROVISIONER: PROVISIONER_TRAITS, LAB: LAB_TRAITS}[topic.section]
    assert [name for name in topic.names if name not in existing] == []
    assert [name for name, count in Counter(topic.names).items() if count > 1] == []


def test_topics_have_a_slug_a_title_an_intro_and_settings():
    assert len({topic.slug for topic in TOPICS}) == len(TOPICS)
    for topic in TOPICS:
        assert re.fullmatch(r"[a-z]+", topic.slug)
        assert topic.title and topic.intro.strip() and topic.names


def test_the_kernels_topic_holds_the_provisioner_settings():
    assert [topic.slug for topic in TOPICS if topic.section == PROVISIONER] == ["kernels"]


@pytest.mark.parametrize("item", ALL, ids=ids)
def test_every_configurable_trait_is_on_its_topic_page(pages, item):
    section, name = item
    page = pages[next(topic.slug for topic in TOPICS if topic.section == section and name in topic.names)]
    assert f".. _{section.label_prefix}{name}:\n\n``{name}``\n" in page
    assert f":Setting: ``c.{section.name}.{name}``" in page


def test_the_spawner_settings_keep_their_labels_whichever_class_defines_them(pages):
    assert ".. _config-presets:" in pages["presets"]
    assert ".. _config-maintenance_file:" in pages["policy"]  # defined on a mixin today
    assert ".. _config-provisioner-slurm_timeout:" in pages["kernels"]
    assert ".. _config-slurm_timeout:" in pages["slurm"]
    assert "Mixin" not in "".join(pages.values())


@pytest.mark.parametrize("item", ALL, ids=ids)
def test_every_configurable_trait_has_help(item):
    section, name = item
    assert CLASSES[section].class_traits()[name].help.strip()


@pytest.mark.parametrize("item", ALL, ids=ids)
def test_the_index_links_every_setting_to_its_topic(index, item):
    section, name = item
    assert f":ref:`c.{section.name}.{name} <{section.label_prefix}{name}>`" in index


def test_the_generator_reports_what_the_table_gets_wrong():
    assert config_reference.problems() == []
    presets, policy = TOPICS[0], TOPICS[1]
    missing = (replace(presets, names=presets.names[1:]), *TOPICS[1:])
    assert config_reference.problems(missing) == ["DKRZSpawner.presets is in no topic"]
    twice = (presets, replace(policy, names=(*policy.names, "presets")), *TOPICS[2:])
    assert config_reference.problems(twice) == ["DKRZSpawner.presets is in 2 topics (presets, policy)"]
    unknown = (replace(presets, names=(*presets.names, "no_such")), *TOPICS[1:])
    assert config_reference.problems(unknown) == [
        "topic 'presets' names DKRZSpawner.no_such, which dkrzspawner does not define"]
    inherited = (replace(presets, names=(*presets.names, "start_timeout")), *TOPICS[1:])
    assert config_reference.problems(inherited) == [
        "topic 'presets' names DKRZSpawner.start_timeout, which dkrzspawner does not define"]


@pytest.mark.parametrize("topic", TOPICS, ids=lambda topic: topic.slug)
def test_each_topic_has_its_page(topic):
    page = (DOCS / "reference" / f"{topic.slug}.rst").read_text()
    assert f"\n.. dkrz-config-reference:: {topic.slug}\n" in page


def test_the_reference_index_lists_the_topics_in_the_table_order():
    text = (DOCS / "reference" / "index.rst").read_text()
    toctree = text.split(".. toctree::", 1)[1].split("\n\n", 2)[1]
    assert toctree.split() == [topic.slug for topic in TOPICS]
    assert "\n.. dkrz-config-index::\n" in text


def test_an_unknown_topic_is_refused():
    with pytest.raises(ValueError, match="no topic 'nosuch' \\(topics: presets, policy, "):
        config_reference.render_topic("nosuch")


def test_jupyterhub_traits_are_not_listed_but_changed_defaults_are_named(pages, index):
    everything = "".join(pages.values())
    assert ".. _config-start_timeout:" not in everything
    assert ".. _config-cmd:" not in everything
    assert "start_timeout" in config_reference.changed_defaults()
    assert "``start_timeout``" in index


def test_defaults_do_not_depend_on_the_machine(pages):
    assert ":Default: ``sys.prefix``" in pages["job"]
    assert f"``{sys.prefix!r}``" not in "".join(pages.values())


def test_help_text_is_dedented_for_rest(pages):
    assert "\nPresets offered to users, by name" in pages["presets"]
    assert "\n    c.DKRZSpawner.partitions = {\n" in pages["presets"]  # the example stays a literal block


def test_a_trait_without_help_fails_the_build():
    silent = Integer(1).tag(config=True)
    with pytest.raises(ValueError, match="DKRZSpawner.silent has no help text"):
        config_reference.render_setting(config_reference.Setting(SPAWNER, "silent", silent))
