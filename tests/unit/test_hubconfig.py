"""The services' drop-in files, loaded as is beside a site's configuration the way JupyterHub loads them
(``load_subconfig``: each file in a configuration of its own, merged afterwards): they only add to it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from jupyterhub import roles
from jupyterhub.app import JupyterHub
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from dkrzspawner import dropins, hubconfig, templates_path

DROPINS = Path(dropins.FOLDER)
#: JupyterHub 6 has ``extra_user_scopes``; on 5 the drop-ins' scopes go into the default user role
HUB_6 = "extra_user_scopes" in JupyterHub.class_trait_names()
SITE = """
c.JupyterHub.services = [{{"name": "monitoring", "api_token": "x"}}]
c.JupyterHub.load_roles = [{{"name": "monitoring", "scopes": ["read:users"], "services": ["monitoring"]}}]
c.JupyterHub.template_paths = ["/srv/site-templates"]
c.JupyterHub.template_vars = {{"site": "DKRZ"}}
{site_user_scopes}
load_subconfig({accounts!r})
load_subconfig({announcements!r})
c.JupyterHub.services.append({{"name": "later"}})
"""


@pytest.fixture
def hub_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DKRZ_ANNOUNCEMENTS_DB_URL", raising=False)
    monkeypatch.setattr(roles, "get_default_roles", roles.get_default_roles)  # JupyterHub 5: undone afterwards
    site_user_scopes = 'c.JupyterHub.extra_user_scopes = {"read:groups"}' if HUB_6 else ""
    (tmp_path / "jupyterhub_config.py").write_text(SITE.format(accounts=str(DROPINS / "accounts.py"),
                                                               announcements=str(DROPINS / "announcements.py"),
                                                               site_user_scopes=site_user_scopes))
    config = PyFileConfigLoader("jupyterhub_config.py", path=str(tmp_path)).load_config()
    yield JupyterHub.instance(config=config), config
    JupyterHub.clear_instance()


def user_role_scopes(hub) -> set[str]:
    """What every user gets beyond ``self``, as the hub loads it: 6's extra_user_scopes, 5's default role."""
    if HUB_6:
        return set(hub.extra_user_scopes)
    user_role, = (role for role in roles.get_default_roles() if role["name"] == "user")
    return set(user_role["scopes"]) - {"self"}


def test_both_dropins_beside_a_site_config(hub_config, tmp_path):
    hub, config = hub_config
    assert [s["name"] for s in hub.services] == ["monitoring", "accounts", "announcements", "later"]
    accounts, announcements = hub.services[1:3]
    assert announcements["command"] == [sys.executable, "-m", "dkrzspawner.services.announcements"]
    assert announcements["environment"] == {"DKRZ_ANNOUNCEMENTS_DB_URL": f"sqlite:///{tmp_path}/dkrz-announcements.sqlite"}
    assert announcements["url"] != accounts["url"] and announcements["url"].startswith("http://127.0.0.1:")
    assert "api_token" not in announcements, "the hub makes the services' tokens"
    assert hub.load_roles == [{"name": "monitoring", "scopes": ["read:users"], "services": ["monitoring"]}]
    assert set(hub.custom_scopes) == {"custom:announcements:write"}
    assert user_role_scopes(hub) == ({"read:groups"} if HUB_6 else set()) | {
        "access:services!service=announcements", "access:services!service=accounts"}
    assert hub.template_paths == [templates_path(), "/srv/site-templates"]
    assert set(hub.template_vars) == {"site", "dkrz_announcements"}
    assert config.DKRZSpawner.show_budgets is True


def test_on_jupyterhub_5_the_scopes_go_into_the_default_user_role_of_the_running_hub(monkeypatch):
    monkeypatch.setattr(JupyterHub, "class_trait_names", classmethod(lambda cls: ["services"]))
    monkeypatch.setattr(roles, "get_default_roles", roles.get_default_roles)
    first, second = Config(), Config()
    hubconfig.grant_users(first, ["access:services!service=x"])
    hubconfig.grant_users(second, ["access:services!service=y"])
    assert "extra_user_scopes" not in first.JupyterHub
    first.merge(second)  # as two drop-ins merge into a hub's configuration
    try:
        JupyterHub.instance(config=first)
        user_role, = (role for role in roles.get_default_roles() if role["name"] == "user")
        assert user_role["scopes"] == ["self", "access:services!service=x", "access:services!service=y"]
    finally:
        JupyterHub.clear_instance()
    user_role, = (role for role in roles.get_default_roles() if role["name"] == "user")
    assert user_role["scopes"] == ["self"], "no running hub, no granted scopes"


def test_free_ports_are_ports():
    assert 0 < hubconfig.free_port() < 65536
