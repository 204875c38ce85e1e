"""The options schema on the real hub and cluster: alice's own token reads her schema (her accounts, not bob's); a
request built from it starts a server (which cannot be extended: that is off by default), one the schema forbids
is refused with the validation's sentence; who may read whose schema."""

from __future__ import annotations

import json

import jsonschema
import pytest
import requests

PATH = "/dkrzspawner/options-schema"


def token_of(hub, user) -> str:
    """A token of ``user`` with the user's own rights (no scopes asked: the owner's)."""
    if hub.api("GET", f"/users/{user}").status_code == 404:
        hub.api("POST", f"/users/{user}")
    response = hub.api("POST", f"/users/{user}/tokens", json={"expires_in": 3600, "note": "e2e options schema"})
    assert response.status_code == 201, response.text
    return response.json()["token"]


def get(hub, token, query=""):
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.get(hub.api_url + PATH + query, headers=headers, timeout=60)


def request_from(schema) -> dict:
    """A request built from the schema alone: the first partition (else preset) branch, its default account
    and cores, five minutes if its runtime allows that."""
    branches = [b for b in schema["oneOf"] if "partition" in b.get("properties", {})] or \
        [b for b in schema["oneOf"] if "preset" in b.get("properties", {})]
    branch = branches[0]
    props = branch["properties"]
    key = "partition" if "partition" in props else "preset"
    options = {key: props[key]["const"], "account": props["account"]["default"]}
    options["cores"] = props["cores"].get("default", 1)
    validator = jsonschema.Draft202012Validator(schema)
    for runtime in ("00:05:00", props["runtime"].get("default")):
        if runtime and validator.is_valid({**options, "runtime": runtime}):
            options["runtime"] = runtime
            break
    validator.validate(options)
    return options


def test_alices_schema_lists_her_accounts_and_a_request_built_from_it_starts_one_it_forbids_is_refused(hub):
    alice = token_of(hub, "alice")
    response = get(hub, alice)
    assert response.status_code == 200, response.text
    schema = response.json()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["title"] == "user_options for alice"
    accounts = {a for b in schema["oneOf"] for a in b.get("properties", {}).get("account", {}).get("enum", [])}
    assert "bb1234" in accounts and "ab0000" not in json.dumps(schema), "her account, not bob's"
    validator = jsonschema.Draft202012Validator(schema)

    options = request_from(schema)
    headers = {"Authorization": f"token {alice}"}
    url = hub.api_url + hub.server_path("alice", "schema")
    started = requests.post(url, headers=headers, json={"user_options": options}, timeout=120)
    assert started.status_code in (201, 202), started.text
    hub.wait_ready("alice", "schema")
    extend = requests.post(hub.api_url + "/dkrzspawner/extend/alice/schema", headers=headers,
                           json={"add": "00:10:00"}, timeout=60)
    assert extend.status_code == 400 and "not switched on" in extend.json()["message"], "off by default"
    hub.stop_server("alice", "schema")

    forbidden = {**options, "account": "ab0000"}
    assert not validator.is_valid(forbidden)
    refused = requests.post(url, headers=headers, json={"user_options": forbidden}, timeout=120)
    assert refused.status_code == 400, refused.text
    assert "Account ab0000 is not one of yours (bb1234)." in refused.json()["message"]
    too_many = {**options, "cores": 10 ** 4}
    assert not validator.is_valid(too_many)
    refused = requests.post(url, headers=headers, json={"user_options": too_many}, timeout=120)
    assert refused.status_code == 400 and "Cores" in refused.json()["message"], refused.text
    assert hub.server("alice", "schema") is None, "nothing was started"


@pytest.mark.parametrize("who, query, status", [
    ("bob", "?user=alice", (403, 404)),  # bob may not start alice's servers, so he cannot read her options
    ("nobody", "", (403,)),
    ("alice's server token", "", (403,)),  # access:servers only: it may not start servers
])
def test_who_may_not_read_whose_schema(hub, who, query, status):
    token = {"bob": lambda: token_of(hub, "bob"), "nobody": lambda: "",
             "alice's server token": lambda: hub.user_token("alice")}[who]()
    response = get(hub, token, query)
    assert response.status_code in status, response.text
    assert "bb1234" not in response.text


def test_an_admin_may_read_another_users_schema(hub):
    token_of(hub, "bob")  # bob exists
    response = hub.api("GET", PATH + "?user=bob")
    assert response.status_code == 200, response.text
    text = json.dumps(response.json())
    assert response.json()["title"] == "user_options for bob" and "ab0000" in text and "bb1234" not in text
    assert hub.api("GET", PATH + "?user=nosuchuser").status_code == 404
