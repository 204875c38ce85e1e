"""The services' drop-in files, loaded as is beside a site's configuration: they only add to it."""

from __future__ import annotations

import sys
from pathlib import Path

from traitlets.config import Config

from dkrzspawner import hubconfig, templates_path

DROPINS = Path(__file__).resolve().parents[2] / "jupyterhub_config.d"


def load(c: Config, name: str) -> Config:
    exec(compile((DROPINS / f"{name}.py").read_text(), name, "exec"), {"get_config": lambda: c})
    return c


def site_config() -> Config:
    c = Config()
    c.JupyterHub.services = [{"name": "monitoring", "api_token": "x"}]
    c.JupyterHub.load_roles = [{"name": "monitoring", "scopes": ["read:users"], "services": ["monitoring"]},
                               {"name": "admin", "scopes": ["admin:users"]}]
    c.JupyterHub.template_paths = ["/srv/site-templates"]
    c.JupyterHub.template_vars = {"site": "DKRZ"}
    return c


def test_both_dropins_beside_a_site_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DKRZ_ANNOUNCEMENTS_DB_URL", raising=False)
    c = load(load(site_config(), "announcements"), "accounts")
    hub = c.JupyterHub
    assert [s["name"] for s in hub.services] == ["monitoring", "announcements", "accounts"]
    announcements, accounts = hub.services[1:]
    assert announcements["command"] == [sys.executable, "-m", "dkrzspawner.services.announcements"]
    assert announcements["environment"] == {"DKRZ_ANNOUNCEMENTS_DB_URL": f"sqlite:///{tmp_path}/dkrz-announcements.sqlite"}
    assert announcements["url"] != accounts["url"] and announcements["url"].startswith("http://127.0.0.1:")
    assert "api_token" not in announcements, "the hub makes the services' tokens"
    roles = {role["name"]: role for role in hub.load_roles}
    assert roles["monitoring"]["scopes"] == ["read:users"]
    assert roles["admin"]["scopes"] == ["admin:users", "custom:announcements:write"], "the site's admin role, extended"
    assert "custom:announcements:write" in hub.custom_scopes
    assert {"access:services!service=announcements", "access:services!service=accounts"} <= set(hub.extra_user_scopes)
    assert hub.template_paths == [templates_path(), "/srv/site-templates"]
    assert set(hub.template_vars) == {"site", "dkrz_announcements"}
    assert c.DKRZSpawner.show_budgets is True


def test_the_admin_role_keeps_its_default_scopes_when_the_site_has_none():
    c = Config()
    hubconfig.grant_admins(c, ["custom:x"])
    (admin,) = c.JupyterHub.load_roles
    assert {"admin:users", "admin:servers", "tokens", "custom:x"} <= set(admin["scopes"])


def test_appended_values_of_a_site_are_kept():
    c = Config()
    c.JupyterHub.services.append({"name": "site"})
    hubconfig.add_service(c, {"name": "announcements"})
    hubconfig.add_service(c, {"name": "announcements", "url": "http://127.0.0.1:1"})
    assert c.JupyterHub.services == [{"name": "site"}, {"name": "announcements", "url": "http://127.0.0.1:1"}]


def test_free_ports_are_ports():
    assert 0 < hubconfig.free_port() < 65536
