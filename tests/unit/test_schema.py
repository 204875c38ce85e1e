"""schema.py: the options schema agrees with the validation both ways.

For several users, groups (policy) and partitions (the recorded cluster, and a hand-written multi-node GPU
partition with Slurm's per-CPU memory limit and an account list): every request generated from the schema
(:func:`instances`: hypothesis strategies read from the schema's keywords; hypothesis-jsonschema 0.23.1 fails
with this hypothesis, ``'many' object has no attribute 'more'``) is accepted by ``Offer.validate``; every request
of a broad generator, and every near-miss made from a valid request (a value just out of range, an unknown key, a wrong type), gets the same
answer from both; and the range patterns match exactly the texts ``units`` reads as values in the range.
"""

from __future__ import annotations

import asyncio
import json
import re

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dkrzspawner import cluster
from dkrzspawner.cluster import Access, Reservation, Snapshot
from dkrzspawner.modules import parse_avail
from dkrzspawner.offer import Offer
from dkrzspawner.options import DKRZ_PRESETS, MIN_RUNTIME, OptionsError, load_partition_settings, load_presets
from dkrzspawner.patterns import LONGEST_RUNTIME, memory_pattern, runtime_pattern
from dkrzspawner.policy import allowance_for, load_policy
from dkrzspawner.schema import options_schema
from dkrzspawner.units import MEMORY, RUNTIME, format_runtime, memory_mb, runtime_seconds
from tests.unit.builders import DEMO_POLICY, RESERVATIONS, make_spawner, slurm_partitions
from tests.unit.recorded import LMOD_AVAIL, SCONTROL_RESTRICTED

SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.filter_too_much])

# -- the offers ------------------------------------------------------------------------------------------------
PRESETS = load_presets({**DKRZ_PRESETS,
                        "wide": {"display_name": "Wide", "partition": "shared", "cores": [8, 2],
                                 "runtime": "13:00:00", "max_runtime": "1-00:00:00"},
                        "big": {"display_name": "Big", "partition": "prepost", "cores": [16]},
                        "nowhere": {"display_name": "Nowhere", "partition": "missing"}})
POLICY = load_policy({"groups": {"students": {"presets": ["shared"], "partitions": [], "accounts": ["bb1234"]},
                                 "gpu-users": {"partitions": ["gpu", "compute"]},
                                 "projects": {"accounts": ["bb1234", "ab0000"]}}}, PRESETS)
#: the site's partition 'compute' (scontrol's restricted example, up and visible) on four GPU nodes
COMPUTE = SCONTROL_RESTRICTED.replace("State=DOWN", "State=UP").replace("Hidden=YES", "Hidden=NO")
COMPUTE_NODES = "".join(f"compute|c{n}|idle|0/64/0/64|256000|0|gpu:4|gpu:0|\n" for n in range(1, 5))
SITE = {**DEMO_POLICY, "compute": {"max_gpus": 4, "max_runtime": "1-12:00:00", "default_cores": 2}}
MORE_RESERVATIONS = RESERVATIONS + (
    Reservation("not-bob", end="2099-01-01T00:00:00", users=("bob",), users_excluded=True, accounts=("ab0000",),
                accounts_excluded=True),
    Reservation("groups-only", end="2099-01-01T00:00:00"),
)


def _partitions():
    partitions = cluster.merge(cluster.parse_partitions(COMPUTE), cluster.parse_sinfo(COMPUTE_NODES))
    return {**slurm_partitions(), **partitions}


def _offer(user, groups=(), accounts=None, modules=None, reservations=MORE_RESERVATIONS, presets=PRESETS,
           advanced=True, site=SITE) -> Offer:
    if accounts is None:
        accounts = {"alice": ("bb1234",), "bob": ("ab0000",), "carol": ("bb1234", "ab0000", "cc0000")}[user]
    access = None if accounts == "unknown" else Access(user, accounts[0] if accounts else None,
                                                        tuple((a, "") for a in accounts))
    snapshot = Snapshot(user=user, partitions=_partitions(), access=access, reservations=reservations)
    offer = Offer(presets, load_partition_settings(site), advanced=advanced, allowance=allowance_for(POLICY, groups))
    return offer.with_cluster(snapshot, modules)


OFFERS = {
    "alice": _offer("alice"),
    "bob": _offer("bob"),
    "carol with modules": _offer("carol", modules=parse_avail(LMOD_AVAIL)),
    "a student": _offer("carol", groups=["students"]),
    "a GPU user": _offer("alice", groups=["gpu-users"]),
    "accounts unknown": _offer("carol", accounts="unknown"),
    "accounts unknown, two allowed": _offer("carol", groups=["projects"], accounts="unknown"),
    "accounts unknown, one allowed": _offer("carol", groups=["students"], accounts="unknown"),
    "no reservations known": _offer("bob", reservations=None),
    "no advanced requests": _offer("carol", advanced=False),
    "no accounts": _offer("alice", accounts=()),
    "first preset unusable": _offer("carol", presets={"big": PRESETS["big"], "shared": PRESETS["shared"]}),
}


def schema_of(name):
    return options_schema(OFFERS[name])


def named(schema, key) -> list[str]:
    """The presets (``key`` "preset") or partitions a schema has a branch for, in its order."""
    return [b["properties"][key]["const"] for b in schema.get("oneOf", []) if key in b.get("properties", {})]


def accepted(offer, request) -> bool:
    try:
        offer.validate(request)
    except OptionsError as exc:
        assert exc.field and str(exc).endswith(".") and "\n" not in str(exc), str(exc)
        return False
    return True


def agree(name, request):
    offer, schema = OFFERS[name], options_schema(OFFERS[name])
    by_schema = jsonschema.Draft202012Validator(schema).is_valid(request)
    by_validation = accepted(offer, request)
    assert by_schema == by_validation, (f"{name}: {json.dumps(request)}: the schema says {by_schema}, the "
                                        f"validation {by_validation}")
    return by_schema


# -- the schema itself -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", OFFERS)
def test_it_is_a_valid_draft_2020_12_schema(name):
    schema = schema_of(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    json.dumps(schema)


def test_it_lists_the_users_presets_partitions_and_accounts():
    alice = schema_of("alice")
    assert named(alice, "preset") == ["shared", "prepost", "wide"], \
        "big needs more cores than a node has; nowhere has no partition"
    assert named(alice, "partition") == ["shared", "prepost", "gpu", "compute"]
    assert "bb1234" in json.dumps(alice) and "ab0000" not in json.dumps(alice)
    bob = schema_of("bob")
    assert "ab0000" in json.dumps(bob) and "bb1234" not in json.dumps(bob)
    assert "compute" not in named(bob, "partition"), "AllowAccounts=bb1234,cc0000"
    student = schema_of("a student")
    assert [b["title"] for b in student["oneOf"]] == ["Shared", "The defaults (preset shared)"]


def test_what_the_policy_and_slurm_leave_out():
    gpu = schema_of("a GPU user")
    assert named(gpu, "partition") == ["gpu", "compute"]
    assert named(schema_of("no advanced requests"), "partition") == []
    nothing = schema_of("no accounts")
    assert "oneOf" not in nothing and nothing["not"] == {}
    assert "you have no Slurm account on this cluster" in nothing["description"]
    first = schema_of("first preset unusable")
    assert "The defaults" not in json.dumps([b["title"] for b in first["oneOf"]])


def test_the_spawner_serves_it_from_the_offer_the_form_uses(monkeypatch):
    spawner, runner = make_spawner(monkeypatch, user="carol")
    schema = asyncio.run(spawner.options_schema())
    assert schema["title"] == "user_options for carol"
    accounts = {a for b in schema["oneOf"] for a in b.get("properties", {}).get("account", {}).get("enum", [])}
    assert accounts == {"bb1234", "ab0000", None}
    assert all(command.argv[0] in ("scontrol", "sinfo", "sacctmgr") for command in runner.commands)


# -- strategies read from the schema -------------------------------------------------------------------------
def values(schema: dict) -> st.SearchStrategy:
    """Values of one property's schema (the keywords schema.py writes: anyOf, const, enum, type, minimum,
    maximum, pattern, items, maxItems); a rule between fields is left to :func:`instances`' check."""
    if "anyOf" in schema:
        return st.one_of([values(part) for part in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    found = []
    for kind in kinds:
        if kind == "null":
            found.append(st.none())
        elif kind == "integer":
            found.append(st.integers(schema.get("minimum"), schema.get("maximum")))
        elif kind == "string":
            found.append(st.from_regex(schema["pattern"]))
        elif kind == "array":
            found.append(st.lists(values(schema["items"]), max_size=schema["maxItems"]) if schema.get("items")
                         else st.just([]))
    return st.one_of(found)


def instances(schema: dict) -> st.SearchStrategy[dict]:
    """Requests the schema accepts: a branch of its ``oneOf``, its required keys and some of the others, each
    value drawn from the property's schema; kept only if the whole schema accepts it (the ``if``/``then`` rules)."""
    validator = jsonschema.Draft202012Validator(schema)

    @st.composite
    def build(draw):
        branch = draw(st.sampled_from(schema["oneOf"]))
        properties = branch.get("properties", {})
        keys = branch.get("required", []) + draw(st.lists(st.sampled_from(sorted(properties) or [""]), unique=True))
        request = {key: draw(values(properties[key])) for key in dict.fromkeys(keys) if key in properties}
        assume(validator.is_valid(request))
        return request
    return build()


# -- both ways -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", OFFERS)
@SLOW
@given(data=st.data())
def test_every_request_the_schema_accepts_is_accepted_by_the_validation(name, data):
    schema = schema_of(name)
    if "oneOf" not in schema:
        return
    request = data.draw(instances(schema))
    assert accepted(OFFERS[name], request), json.dumps(request)


def _limits(offer):
    return [p for p in offer.facts.partitions.values()]


def _spellings(seconds: int) -> st.SearchStrategy[str]:
    """Every way of writing ``seconds`` as [D-]HH:MM:SS (where it can be written)."""
    hours, rest = divmod(seconds, 3600)
    clock = f":{rest // 60:02d}:{rest % 60:02d}"
    ways = [f"{h}{clock}" for h in {str(hours), f"{hours:02d}"} if hours <= 99] + \
        [f"{d}-{h}{clock}" for day in range(0, hours // 24 + 1) for d in {str(day), f"{day:02d}"}
         for h in {str(hours - 24 * day), f"{hours - 24 * day:02d}"} if day <= 99 and hours - 24 * day <= 99]
    return st.sampled_from(sorted(w for w in ways if RUNTIME.fullmatch(w))) if ways else st.just("100:00:00")


def _sizes(mb: int) -> st.SearchStrategy[str]:
    """Ways of writing ``mb`` MB, and the sizes next to it."""
    return st.sampled_from([f"{mb}", f"{mb}M", f"0{mb}M", f"{mb * 1024}K", f"{mb * 1024 + 1023}K",
                            f"{mb * 1024 - 1}K", f"{mb // 1024}G", f"{-(-mb // 1024)}G", f"{mb // 1048576}T"])


def _boundaries(offer):
    """Numbers next to the limits in the offer: at, below and above each."""
    found = {0, 1, 2, -1}
    for p in _limits(offer):
        for value in (p.max_nodes, p.max_cores, p.max_gpus, p.max_gpus * p.max_nodes, p.default_cores):
            found |= {value - 1, value, value + 1}
    for preset in offer.site_presets.values():
        found |= set(preset.cores)
    return sorted(found)


def requests(offer) -> st.SearchStrategy[dict]:
    """Broad requests: the names this offer and its neighbours know, numbers and texts next to its limits,
    nulls, wrong types and unknown keys."""
    facts = offer.facts
    names = sorted({*offer.site_presets, *facts.partitions, "bb1234", "ab0000", "cc0000", "xx0000",
                    *(r.name for r in RESERVATIONS + MORE_RESERVATIONS)})
    seconds = sorted({MIN_RUNTIME - 1, MIN_RUNTIME, 3600, *(s + d for p in _limits(offer) if p.max_runtime
                      for s in (p.max_runtime, p.default_runtime) for d in (-1, 0, 1)),
                      *(runtime_seconds(t) + d for preset in offer.site_presets.values()
                        for t in (preset.runtime, preset.max_runtime) for d in (-1, 0, 1))})
    megabytes = sorted({1, *(m + d for p in _limits(offer) for m in (p.max_memory_mb, p.max_memory_per_core_mb or 1)
                             for d in (-1, 0, 1) if m + d > 0)})
    wrong = st.one_of(st.booleans(), st.floats(allow_nan=False).filter(lambda f: not f.is_integer()),
                      st.lists(st.integers(), max_size=1), st.dictionaries(st.text(max_size=2), st.integers(),
                                                                              max_size=1))
    number = st.one_of(st.sampled_from(_boundaries(offer)), st.integers(-3, 70), wrong, st.none(), st.text(max_size=3))
    name = st.one_of(st.sampled_from(names), st.none(), wrong, st.just(""), st.just("bb1234\n"))
    runtime = st.one_of(st.sampled_from(seconds).flatmap(_spellings), st.from_regex(RUNTIME, fullmatch=True),
                        st.none(), wrong, st.just("01:00:00\n"), st.just("1:00"))
    memory = st.one_of(st.sampled_from(megabytes).flatmap(_sizes), st.from_regex(MEMORY, fullmatch=True),
                       st.none(), wrong, st.just("8G\n"), st.just("8 G"))
    modules = st.one_of(st.none(), st.lists(st.sampled_from(["example", "example/2.0", "tools/1.0", "nope/1"]),
                                            max_size=3), wrong, st.just(["bad name"]))
    fields = {"preset": name, "partition": name, "account": name, "reservation": name, "cores": number,
              "nodes": number, "gpus": number, "runtime": runtime, "memory": memory, "modules": modules,
              "Cores": number, "exec_prefix": st.just("id")}

    @st.composite
    def build(draw):
        keys = draw(st.lists(st.sampled_from(["cores", "account", "runtime", "modules", "nodes", "gpus", "memory",
                                              "reservation"]), unique=True, max_size=4))
        main = draw(st.sampled_from([["preset"], ["partition"], [], ["preset", "partition"]]))
        extra = draw(st.sampled_from([[], [], [], ["Cores"], ["exec_prefix"]]))
        return {key: draw(fields[key]) for key in main + keys + extra}
    return build()


def plausible(offer) -> st.SearchStrategy[dict]:
    """Requests that are mostly valid: a preset or partition of the site (allowed or not), and values in and
    just past their ranges, drawn from the site's settings and the cluster's facts (not from the schema)."""
    accounts = st.sampled_from([None, "bb1234", "ab0000", "cc0000"])
    modules = st.one_of(st.none(), st.lists(st.sampled_from(["example", "example/2.0", "tools/1.0"]), max_size=2))

    def runtime(longest):
        return st.integers(MIN_RUNTIME - 1, (longest or 10 * 86400) + 1).flatmap(_spellings) | st.none()

    @st.composite
    def build(draw):
        if draw(st.booleans()):
            name = draw(st.sampled_from(sorted(offer.site_presets)))
            preset = offer.site_presets[name]
            fields = {"cores": st.sampled_from([None, *preset.cores, max(preset.cores) + 1]), "account": accounts,
                      "runtime": runtime(runtime_seconds(preset.max_runtime)), "modules": modules}
            request = {"preset": name}
        else:
            name = draw(st.sampled_from(sorted(offer.facts.partitions)))
            p = offer.facts.partitions[name]
            fields = {"nodes": st.none() | st.integers(0, p.max_nodes + 1),
                      "cores": st.none() | st.integers(0, p.max_cores + 1),
                      "memory": st.none() | st.integers(1, (p.max_memory_mb or 10 ** 6) + 2).flatmap(_sizes),
                      "gpus": st.none() | st.integers(0, p.max_gpus * p.max_nodes + 1),
                      "runtime": runtime(p.max_runtime), "account": accounts, "modules": modules,
                      "reservation": st.sampled_from([None, "", *(r.name for r in MORE_RESERVATIONS), "other"])}
            request = {"partition": name}
        for key in draw(st.lists(st.sampled_from(sorted(fields)), unique=True)):
            request[key] = draw(fields[key])
        return request
    return build()


@pytest.mark.parametrize("name", OFFERS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_request_the_validation_accepts_the_schema_accepts_and_the_rest_it_refuses(name, data):
    offer = OFFERS[name]
    agree(name, data.draw(st.one_of(requests(offer), plausible(offer))))


def _near_misses(offer, request: dict) -> st.SearchStrategy[dict]:
    """``request`` with one thing wrong: an unknown key, a wrong type, or a value just past a limit."""
    facts = offer.facts
    mutations = [st.sampled_from(["Cores", "exec_prefix", "user_name", "partition " + "x"]).map(
                     lambda key: {**request, key: 1})]
    for key in request:
        if key in ("cores", "nodes", "gpus"):
            mutations.append(st.sampled_from(["2", True, 1.5, [1]]).map(lambda v, k=key: {**request, k: v}))
        elif key in ("account", "runtime", "memory", "reservation", "preset", "partition"):
            mutations.append(st.sampled_from([3, True, ["x"], "x\n"]).map(lambda v, k=key: {**request, k: v}))
    limits = facts.partitions.get(request.get("partition")) if facts and "partition" in request else None
    if limits is not None:
        nodes = request.get("nodes") or 1
        mutations += [st.just({**request, "nodes": limits.max_nodes + 1}),
                      st.just({**request, "cores": limits.max_cores + 1}),
                      st.just({**request, "nodes": 0}),
                      st.just({**request, "gpus": limits.max_gpus * nodes + 1}),
                      st.just({**request, "gpus": -1}),
                      _spellings(MIN_RUNTIME - 1).map(lambda t: {**request, "runtime": t})]
        if limits.max_runtime:
            mutations.append(_spellings(limits.max_runtime + 1).map(lambda t: {**request, "runtime": t}))
        if limits.max_memory_mb:
            mutations.append(_sizes(limits.max_memory_mb + 1).filter(
                lambda t: memory_mb(t) > limits.max_memory_mb).map(lambda t: {**request, "memory": t}))
    return st.one_of(mutations)


@pytest.mark.parametrize("name", [n for n in OFFERS if "oneOf" in schema_of(n)])
@SLOW
@given(data=st.data())
def test_near_misses_of_a_valid_request_are_refused_by_both(name, data):
    offer, schema = OFFERS[name], schema_of(name)
    request = data.draw(instances(schema))
    if not request:
        request = {"preset": next(iter(offer.presets))}
    near = data.draw(_near_misses(offer, request))
    assert not agree(name, near), json.dumps(near)


def test_cross_field_rules_memory_per_core_and_a_reservations_accounts_and_gpus_per_node():
    # compute: 3840M per CPU (MaxMemPerCPU), 4 GPUs per node, 4 nodes; open to bb1234 (AllowAccounts)
    for request, ok in [({"partition": "compute", "cores": 2, "memory": "7680M"}, True),
                        ({"partition": "compute", "cores": 2, "memory": "7681M"}, False),
                        ({"partition": "compute", "memory": "7G"}, True),  # the default 2 cores
                        ({"partition": "compute", "memory": "8G"}, False),
                        ({"partition": "compute", "cores": 64, "memory": "240G"}, True),
                        ({"partition": "compute", "gpus": 4}, True),
                        ({"partition": "compute", "gpus": 5}, False),
                        ({"partition": "compute", "gpus": 5, "nodes": 2}, False),  # GPUs per node
                        ({"partition": "compute", "gpus": 4, "nodes": 4}, True)]:
        assert agree("a GPU user", request) is ok, request
    for request, ok in [({"partition": "gpu", "reservation": "project"}, False),  # carol's default: bb1234
                        ({"partition": "gpu", "reservation": "project", "account": "ab0000"}, True),
                        ({"partition": "gpu", "reservation": "not-bob", "account": "bb1234"}, True),
                        ({"partition": "gpu", "reservation": "not-bob", "account": "ab0000"}, False),
                        ({"partition": "gpu", "reservation": "groups-only"}, False)]:
        assert agree("carol with modules", request) is ok, request
    for request, ok in [({"partition": "gpu", "reservation": "project"}, False),  # Slurm said no accounts
                        ({"partition": "gpu", "reservation": "project", "account": "ab0000"}, True),
                        ({"partition": "gpu", "reservation": "not-bob", "account": "zz9999"}, True),
                        ({"partition": "gpu", "reservation": "not-bob"}, False),
                        ({"partition": "gpu", "account": "any.name-1"}, True)]:
        assert agree("accounts unknown", request) is ok, request
    assert agree("accounts unknown, two allowed", {"preset": "shared"}) is False, "fail closed: which account?"
    assert agree("accounts unknown, two allowed", {"preset": "shared", "account": "ab0000"}) is True
    assert agree("accounts unknown, one allowed", {"preset": "shared"}) is True
    assert agree("alice", {"preset": "wide"}) is False, "its first choice, 8 cores x 2500M, does not fit a node"
    assert agree("alice", {"preset": "wide", "cores": 2, "runtime": "12:00:00"}) is True


def test_the_one_difference_json_schema_counts_2_0_as_an_integer():
    """JSON Schema cannot tell 2 from 2.0; the validation refuses 2.0 (the docs say: no fraction)."""
    request = {"preset": "shared", "cores": 2.0}
    assert jsonschema.Draft202012Validator(schema_of("alice")).is_valid(request)
    assert not accepted(OFFERS["alice"], request)


# -- the range patterns ----------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(text=st.from_regex(RUNTIME, fullmatch=True), low=st.integers(0, 200000),
       span=st.one_of(st.none(), st.integers(0, 10 ** 6)), data=st.data())
def test_the_runtime_pattern_matches_exactly_the_runtimes_in_its_range(text, low, span, data):
    high = None if span is None else low + span
    pattern = runtime_pattern(low, high)
    edges = [s for s in (low, low - 1, low + 1, *((high, high + 1) if high is not None else ()))
             if 0 <= s <= LONGEST_RUNTIME]
    near = data.draw(_spellings(data.draw(st.sampled_from(edges))))
    for candidate in (text, near):
        value = runtime_seconds(candidate)
        inside = low <= value and (high is None or value <= high)
        assert (pattern is not None and re.search(pattern, candidate) is not None) == inside, (candidate, low, high)
        assert pattern is None or re.search(pattern, candidate + "\n") is None


@settings(max_examples=300, deadline=None)
@given(text=st.from_regex(MEMORY, fullmatch=True), low=st.integers(1, 3000),
       span=st.one_of(st.none(), st.integers(0, 10 ** 7)), data=st.data())
def test_the_memory_pattern_matches_exactly_the_sizes_in_its_range(text, low, span, data):
    high = None if span is None else low + span
    pattern = memory_pattern(low, high)
    near = data.draw(_sizes(data.draw(st.sampled_from([low, low + 1] + ([high, high + 1] if high else [])))))
    for candidate in (text, near):
        if not MEMORY.fullmatch(candidate):
            continue
        value = memory_mb(candidate)
        assert (re.search(pattern, candidate) is not None) == (low <= value and (high is None or value <= high)), \
            (candidate, low, high)
        assert re.search(pattern, candidate + "\n") is None


def test_the_patterns_at_their_edges():
    assert runtime_pattern(60, 59) is None
    assert re.search(runtime_pattern(60, None), "99-99:59:59") and not re.search(runtime_pattern(60, None), "0:00:59")
    twelve = runtime_pattern(60, 12 * 3600)
    assert [t for t in ("12:00:00", "0-12:00:00", "00-12:00:00", "0:01:00", "11:59:59") if re.search(twelve, t)] == \
        ["12:00:00", "0-12:00:00", "00-12:00:00", "0:01:00", "11:59:59"]
    assert not any(re.search(twelve, t) for t in ("12:00:01", "0:00:59", "1-00:00:00", "13:00:00", "12:00:00\n"))
    mem = memory_pattern(1, 16000)
    assert all(re.search(mem, t) for t in ("16000", "16000M", "000016000", "15G", "16383999K", "1024K"))
    assert not any(re.search(mem, t) for t in ("16001M", "16G", "1023K", "0M", "0000000016000", "16000\n", "1T"))
    assert format_runtime(LONGEST_RUNTIME) == "103-03:59:59", "99-99:59:59"
