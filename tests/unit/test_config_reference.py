"""The configuration reference the docs build: every configurable trait of ours is in it, with help text.

The traits are enumerated here independently of the generator (every ``config=True`` trait of DKRZSpawner
that is not JupyterHub's ``Spawner`` trait object), so a generator that forgets some fails this test.
"""

from __future__ import annotations

import sys

import pytest
from jupyterhub.spawner import Spawner
from traitlets import Integer

from dkrzspawner import config_reference
from dkrzspawner.spawner import DKRZSpawner

INHERITED = Spawner.class_traits(config=True)
OURS = sorted(name for name, trait in DKRZSpawner.class_traits(config=True).items()
              if INHERITED.get(name) is not trait)


@pytest.fixture(scope="module")
def reference() -> str:
    return config_reference.render()


def test_there_are_traits_to_check():
    assert {"presets", "partitions", "advanced_options", "watch_interval", "watch_as_users"} <= set(OURS)


@pytest.mark.parametrize("name", OURS)
def test_every_configurable_trait_is_in_the_reference(reference, name):
    assert f".. _config-{name}:\n\n``{name}``\n" in reference
    assert f":Setting: ``c.DKRZSpawner.{name}``" in reference


@pytest.mark.parametrize("name", OURS)
def test_every_configurable_trait_has_help(name):
    assert DKRZSpawner.class_traits()[name].help.strip()


def test_the_generator_lists_exactly_our_traits():
    assert sorted(setting.name for setting in config_reference.settings()) == OURS


def test_jupyterhub_traits_are_not_listed_but_changed_defaults_are_named(reference):
    assert ".. _config-start_timeout:" not in reference
    assert ".. _config-cmd:" not in reference
    assert "start_timeout" in config_reference.changed_defaults()
    assert "``start_timeout``" in reference


def test_defaults_do_not_depend_on_the_machine(reference):
    assert ":Default: ``sys.prefix``" in reference
    assert f"``{sys.prefix!r}``" not in reference


def test_help_text_is_dedented_for_rest(reference):
    assert "\nPresets offered to users, by name" in reference
    assert "\n    c.DKRZSpawner.partitions = {\n" in reference  # the example stays a literal block


def test_a_trait_without_help_fails_the_build():
    silent = Integer(1).tag(config=True)
    with pytest.raises(ValueError, match="DKRZSpawner.silent has no help text"):
        config_reference.render_setting(config_reference.Setting(owner=DKRZSpawner, name="silent", trait=silent),
                                        "DKRZSpawner")
