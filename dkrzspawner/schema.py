"""The JSON Schema (draft 2020-12) of the ``user_options`` one user may send: built from their :class:`Offer`.

What lives here: :func:`options_schema`, which turns an :class:`~dkrzspawner.offer.Offer` (the site's presets
and partitions x the cluster's facts x the user's group policy, the very object :meth:`Offer.validate
<dkrzspawner.offer.Offer.validate>` checks against) into a schema that accepts exactly the requests the validation
accepts: one branch per preset and per partition the user may use, with their choices, limits, defaults and
accounts, and the rules that join two fields (memory per core, a reservation's accounts) as
``if``/``then``. The hub serves it at ``GET /hub/api/dkrzspawner/options-schema``
(:mod:`dkrzspawner.handlers`). The one thing JSON Schema cannot say: it counts ``2.0`` as an integer, the
validation does not (send whole numbers without a fraction). Server counts and maintenance are not part of a
request's shape; they are checked when the server starts.

Pure: reads the offer it is given, runs no command; imports :mod:`dkrzspawner.options`,
:mod:`dkrzspawner.patterns`, :mod:`dkrzspawner.units` and :mod:`dkrzspawner.offer` (for annotations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .options import ADVANCED_WORDS, FIELD_WORDS, MAX_MODULES, MIN_RUNTIME, OptionsError
from .patterns import anchored, memory_pattern, runtime_pattern
from .units import MODULE, NAME, format_memory, format_runtime, human_memory, memory_mb, runtime_seconds

if TYPE_CHECKING:  # for annotations only
    from .offer import Facts, Offer, PartitionLimits

DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: no value at all (JSON Schema's false schema, written as an object so every reader takes it)
NOTHING: dict = {"not": {}}


def options_schema(offer: Offer) -> dict:
    """The schema of the ``user_options`` this offer accepts (``offer`` with the cluster's facts: without them
    only the presets' shapes are known)."""
    facts = offer.facts
    branches = [branch for branch in (_preset_branch(name, preset, offer) for name, preset in offer.presets.items())
                if branch is not None]
    first = next(iter(offer.presets))
    if any(b["properties"]["preset"]["const"] == first and b["required"] == ["preset"] for b in branches):
        # {} is the first preset with its defaults (options.request_from)
        branches.append({"title": f"The defaults (preset {first})", "type": "object", "maxProperties": 0})
    if facts is not None and facts.advanced and facts.partitions is not None:
        branches += [branch for branch in (_partition_branch(limits, facts, offer) for limits in facts.visible())
                     if branch is not None]
    user = facts.user if facts is not None else ""
    schema = {
        "$schema": DIALECT,
        "title": "user_options" + (f" for {user}" if user else ""),
        "description": "What this user may send as user_options to POST /hub/api/users/NAME/servers/SERVER: one "
                       "preset or one partition (an advanced request) with its options. Whole numbers are sent "
                       "without a fraction (2, not 2.0). Server counts and maintenance are checked at the start.",
        "type": "object",
    }
    if facts is not None and facts.errors:
        schema["$comment"] = "Slurm did not answer everything, so less is offered: " + "; ".join(facts.errors)
    if branches:
        schema["oneOf"] = branches
    else:
        schema.update(NOTHING)
        schema["description"] += " Nothing can be started right now: " + _refusal(offer)
    return schema


def _refusal(offer: Offer) -> str:
    try:
        offer.validate({})
    except OptionsError as exc:
        return str(exc)
    return "no preset or partition is usable."


# -- the parts -----------------------------------------------------------------------------------------------
def _nullable(kinds: str, **keywords) -> dict:
    return {"type": [kinds, "null"], **keywords}


def _enum(values, null: bool) -> dict:
    values = list(dict.fromkeys(values))
    return {"enum": values + [None]} if null else {"enum": values}


def _text(pattern: str) -> dict:
    return {"type": "string", "pattern": pattern}


def _runtime(words: str, low: int, high: int | None, default: int, where: str) -> tuple[dict, bool] | None:
    """The runtime's schema and whether it may be left out, or None when no runtime can be asked for."""
    pattern = runtime_pattern(low, high)
    if pattern is None:
        return None
    upper = format_runtime(high) if high is not None else "any length"
    schema = _nullable("string", pattern=pattern, title=words,
                       description=f"[D-]HH:MM:SS, from {format_runtime(low)} to {upper} {where}.")
    optional = low <= default and (high is None or default <= high)
    if optional:
        schema["default"] = format_runtime(default)
    else:
        schema["type"] = "string"
    return schema, optional


def _modules(facts: Facts | None) -> dict:
    """The modules a user may add: those the cluster offers (each a module name), at most MAX_MODULES; without
    the cluster's facts, any module names."""
    if facts is None:
        offered, items = True, _text(anchored(MODULE.pattern))
    else:
        offered = [name for name in (facts.modules or ()) if MODULE.fullmatch(name)]
        items = {"enum": offered}
    schema = _nullable("array", title=FIELD_WORDS["modules"], maxItems=MAX_MODULES if offered else 0,
                       description="Environment modules to load, of those the cluster offers.")
    if offered:
        schema["items"] = items
    return schema


class _Accounts:
    """The accounts a request may name in one partition, and what leaving the account out charges.

    ``names`` None: any Slurm name (Slurm did not say which accounts the user has, and the policy names none);
    ``default``: the account a request without one is charged to (None: none chosen, Slurm's default);
    ``optional``: whether the account may be left out."""

    def __init__(self, offer: Offer, limits: PartitionLimits | None, partition: str):
        facts, allowance = offer.facts, offer.allowance
        access = facts.access if facts is not None else None
        if access is None:
            self.names = None if allowance.accounts is None else tuple(sorted(allowance.accounts))
            self.default = None
            self.optional = allowance.accounts is None or len(allowance.accounts) == 1
            return
        mine = tuple(access.accounts)
        self.names = tuple(a for a in access.accounts_for(partition) if limits is None or limits.allows_account(a)) \
            if mine else ()
        self.default = access.default_account if access.default_account in self.names else \
            (self.names[0] if self.names else None)
        self.optional = bool(self.names)

    @property
    def usable(self) -> bool:
        return self.names is None or bool(self.names)

    def schema(self, words: str) -> dict:
        if self.names is None:
            schema = _nullable("string", pattern=anchored(NAME.pattern))
        else:
            schema = {"type": ["string", "null"], **_enum(self.names, self.optional)}
        if not self.optional:
            schema["type"] = "string"
        schema.update(title=words, description="The Slurm account to charge.")
        if self.default:
            schema["default"] = self.default
        return schema


def _branch(title: str, description: str, properties: dict, required: list[str], rules: list[dict]) -> dict:
    branch = {"title": title, "type": "object", "properties": properties, "required": required,
              "additionalProperties": False}
    if description:
        branch["description"] = description
    if rules:
        branch["allOf"] = rules
    return branch


def _when(key: str, value, otherwise_default: bool = False) -> dict:
    """``if`` the request has ``key`` = ``value`` (``otherwise_default``: or leaves it out / null)."""
    if otherwise_default:
        return {"properties": {key: {"enum": [value, None]}}}
    return {"properties": {key: {"const": value}}, "required": [key]}


# -- a preset --------------------------------------------------------------------------------------------------
def _preset_branch(name: str, preset, offer: Offer) -> dict | None:
    facts = offer.facts
    limits = None
    if facts is not None and facts.partitions is not None:
        limits = facts.partitions.get(preset.partition)
        if limits is None:
            return None
    per_core = memory_mb(preset.memory_per_core)
    cores = [c for c in preset.cores if limits is None or (
        c <= limits.max_cores and not (limits.max_memory_mb and c * per_core > limits.max_memory_mb))]
    longest = runtime_seconds(preset.max_runtime)
    if limits is not None and limits.max_runtime is not None:
        longest = min(longest, limits.max_runtime)
    runtime = _runtime(FIELD_WORDS["runtime"], MIN_RUNTIME, longest, runtime_seconds(preset.runtime),
                       f"for preset {name}")
    accounts = _Accounts(offer, limits, preset.partition)
    if not cores or runtime is None or not accounts.usable:
        return None
    required = ["preset"]
    cores_optional = preset.cores[0] in cores
    cores_schema = {"type": ["integer", "null"] if cores_optional else "integer",
                    **_enum(cores, cores_optional), "title": FIELD_WORDS["cores"],
                    "description": f"{format_memory(per_core)} of memory per core."}
    if cores_optional:
        cores_schema["default"] = preset.cores[0]
    else:
        required.append("cores")
    if not runtime[1]:
        required.append("runtime")
    if not accounts.optional:
        required.append("account")
    properties = {"preset": {"const": name, "title": FIELD_WORDS["preset"]}, "cores": cores_schema,
                  "account": accounts.schema(FIELD_WORDS["account"]), "runtime": runtime[0],
                  "modules": _modules(facts)}
    return _branch(preset.display_name, preset.description, properties, required, [])


# -- a partition (an advanced request) -------------------------------------------------------------------------
def _partition_branch(limits: PartitionLimits, facts: Facts, offer: Offer) -> dict | None:
    name = limits.name
    accounts = _Accounts(offer, limits, name)
    where = f"in partition {name}"
    runtime = _runtime(ADVANCED_WORDS["runtime"], MIN_RUNTIME, limits.max_runtime, limits.default_runtime, where)
    if (not limits.up or not accounts.usable or runtime is None or limits.max_nodes < 1 or limits.max_cores < 1
            or not 1 <= limits.default_cores <= limits.max_cores):
        return None
    required = ["partition"] + (["runtime"] if not runtime[1] else []) + ([] if accounts.optional else ["account"])
    rules: list[dict] = []
    properties = {
        "partition": {"const": name, "title": ADVANCED_WORDS["partition"]},
        "account": accounts.schema(ADVANCED_WORDS["account"]),
        "nodes": _nullable("integer", minimum=1, maximum=limits.max_nodes, default=1, title=ADVANCED_WORDS["nodes"]),
        "cores": _nullable("integer", minimum=1, maximum=limits.max_cores, default=limits.default_cores,
                           title=ADVANCED_WORDS["cores"], description="Cores per node."),
        "memory": _memory(limits, limits.max_cores),
        "gpus": _nullable("integer", minimum=0, maximum=limits.max_gpus, default=0,
                          title=ADVANCED_WORDS["gpus"], description=f"GPUs per node, at most {limits.max_gpus}."
                          if limits.max_gpus else "This partition has none."),
        "runtime": runtime[0],
        "reservation": {"anyOf": [{"type": "null"}, {"const": ""}], "title": ADVANCED_WORDS["reservation"],
                        "description": "A Slurm reservation open to you; empty: none."},
        "modules": _modules(facts),
    }
    rules += _memory_per_core(limits)
    properties["reservation"]["anyOf"] += _reservations(facts, accounts, rules)
    return _branch(limits.display_name, limits.description, properties, required, rules)


def _memory(limits: PartitionLimits, cores: int) -> dict:
    """Memory per node for ``cores`` cores: at most the partition's memory, and its memory per core."""
    high = _memory_limit(limits, cores)
    shown = f"at most {format_memory(high)} ({human_memory(high)})" if high else "any size"
    pattern = memory_pattern(1, high or None)
    return _nullable("string", pattern=pattern, title=ADVANCED_WORDS["memory"],
                     description=f"Memory per node in Slurm's units (500M, 8G), {shown}; left out: "
                                 f"{format_memory(limits.memory_per_core_mb)} per core.")


def _memory_limit(limits: PartitionLimits, cores: int) -> int:
    """The most memory a request of ``cores`` cores may ask for, in MB (0: no limit)."""
    found = [m for m in (limits.max_memory_mb, cores * (limits.max_memory_per_core_mb or 0)) if m]
    return min(found) if found else 0


def _memory_per_core(limits: PartitionLimits) -> list[dict]:
    """``if cores is N then memory ...`` for each number of cores allowed less memory than the most cores."""
    widest = _memory_limit(limits, limits.max_cores)
    rules = []
    for cores in range(1, limits.max_cores + 1):
        if _memory_limit(limits, cores) != widest:
            rules.append({"if": _when("cores", cores, cores == limits.default_cores),
                          "then": {"properties": {"memory": _memory(limits, cores)}}})
    return rules


def _reservations(facts: Facts, accounts: _Accounts, rules: list[dict]) -> list[dict]:
    """The reservations a request may name (and, in ``rules``, the accounts each then needs), as
    :meth:`~dkrzspawner.cluster.Reservation.allows` says for this user and each account they may name."""
    if facts.reservations is None:  # Slurm did not say: any name, Slurm decides
        return [_text(anchored(NAME.pattern))]
    usable = []
    for reservation in {r.name: r for r in facts.reservations}.values():
        if not NAME.fullmatch(reservation.name):
            continue
        without = accounts.optional and reservation.allows(facts.user, accounts.default)
        if accounts.names is None:  # any account name: those the reservation lists, or all others
            listed = sorted(reservation.accounts or ())
            named = [a for a in listed if reservation.allows(facts.user, a)]
            others = reservation.allows(facts.user, _unlisted(listed))
            if not (named or others or without):
                continue
            if others and len(named) == len(listed) and without:
                usable.append(reservation.name)
                continue
            account = {} if without else {"type": "string"}
            if others:
                refused = [a for a in listed if a not in named]
                if refused:
                    account["not"] = {"enum": refused}
            else:
                account.update(_enum(named, without))
        else:
            named = [a for a in accounts.names if reservation.allows(facts.user, a)]
            if not (named or without):
                continue
            if named == list(accounts.names) and without == accounts.optional:
                usable.append(reservation.name)
                continue
            account = _enum(named, without)
        usable.append(reservation.name)
        then = {"properties": {"account": account}}
        if not without:
            then["required"] = ["account"]
        rules.append({"if": _when("reservation", reservation.name), "then": then})
    return [{"enum": usable}] if usable else []


def _unlisted(names: list[str]) -> str:
    """A Slurm name that is not one of ``names``."""
    return "x" + max(names, key=len, default="") + "x"
