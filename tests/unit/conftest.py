"""Unit tests never read this machine's site file: no ``DKRZSPAWNER_SITE_CONFIG``, and no default file."""

import pytest

from dkrzspawner import siteconfig


@pytest.fixture(autouse=True)
def no_site_file_of_this_machine(monkeypatch, tmp_path_factory):
    monkeypatch.delenv(siteconfig.ENV_PATH, raising=False)
    monkeypatch.delenv(siteconfig.ENV_HUB_GROUPS, raising=False)
    monkeypatch.setattr(siteconfig, "DEFAULT_PATH", str(tmp_path_factory.getbasetemp() / "no-site.toml"))
