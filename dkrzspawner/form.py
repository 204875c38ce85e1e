"""The options form both ways: parse it (:func:`options_from_form`, and spawn URLs: :func:`options_from_query`),
preselect its values (:func:`preselect`) and render it (:func:`context`, :func:`render`; the HTML inside
JupyterHub's ``<form>``).

Rendering uses our own autoescaped Jinja2 environment: a site's folders first, then the packaged ``templates/``;
the packaged templates are also reachable as ``dkrzspawner/<name>``, so a site's ``options_form.html`` can
``{% extends "dkrzspawner/options_form.html" %}`` and override single blocks. The form shows what an
:class:`~dkrzspawner.offer.Offer` holds (its ``presets`` and ``facts``). Pure: data in, text or options out; may
import :mod:`dkrzspawner.options`, :mod:`dkrzspawner.offer` (for annotations) and :mod:`dkrzspawner.units`.
"""

from __future__ import annotations

import datetime
import functools
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jinja2

from .options import JobRequest, OptionsError, Preset, shown, unwrap, validate
from .units import format_runtime, human_memory, human_runtime, memory_mb, runtime_seconds

if TYPE_CHECKING:  # for annotations only
    from .offer import Facts

TEMPLATE = "options_form.html"
TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")



# -- form and URL input ------------------------------------------------------------------------------------
#: form fields of each mode; everything else in a form is passed on, so that validation refuses it
PRESET_FORM_FIELDS = ("preset", "preset_runtime")
ADVANCED_FORM_FIELDS = ("partition", "nodes", "cores", "memory", "gpus", "runtime", "reservation")
INTEGER_FIELDS = ("nodes", "cores", "gpus")
FORM_IGNORED = ("_xsrf",)
#: fields that may be sent several times (a multi-select) or as one comma-separated text
LIST_FIELDS = ("modules",)


def _single(form: dict, key: str):
    values = form[key]
    if not isinstance(values, (list, tuple)):
        return values
    if len(values) != 1:
        raise OptionsError(key, f"The field {shown(key)} must be sent exactly once.")
    return values[0]


def _integer(value):
    """A whole number typed in a form, else the text unchanged (validation then names the field)."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value, re.ASCII):
        return int(value)
    return value


def _text(value):
    return value.strip(" \t") if isinstance(value, str) else value


def _names(values) -> list:
    """A multi-select's values, or comma-separated names in one field, as a list without empty entries."""
    values = values if isinstance(values, (list, tuple)) else [values]
    names = []
    for value in values:
        parts = value.split(",") if isinstance(value, str) else [value]
        names += [_text(part) for part in parts if _text(part) != ""]
    return names


def options_from_form(form: dict) -> dict:
    """The spawn form's fields (each a list of strings) as ``user_options`` with JSON types.

    ``mode`` picks the tab: ``preset`` uses ``preset`` (``name`` or ``name:cores``) and ``preset_runtime``;
    ``advanced`` uses ``partition``, ``nodes``, ``cores``, ``memory``, ``gpus``, ``runtime``, ``reservation`` and
    ``modules`` (several values), dropping the empty ones. ``account`` serves both; empty means the default account.
    """
    values = {key: _text(_single(form, key)) for key in form if key not in (*FORM_IGNORED, *LIST_FIELDS)}
    modules = _names(form.get("modules", []))
    mode = values.pop("mode", None)
    if mode is None:
        mode = "advanced" if "partition" in values and "preset" not in values else "preset"
    if mode not in ("preset", "advanced"):
        raise OptionsError("mode", "Mode must be preset or advanced.")
    account = values.pop("account", "")
    options = {}
    if mode == "preset":
        choice = values.pop("preset", "")
        name, sep, cores = choice.rpartition(":") if isinstance(choice, str) and ":" in choice else (choice, "", "")
        options["preset"] = name
        if sep:
            options["cores"] = _integer(cores)
        runtime = values.pop("preset_runtime", "")
        if runtime != "":
            options["runtime"] = runtime
        for key in ADVANCED_FORM_FIELDS:
            values.pop(key, None)
    else:
        for key in ADVANCED_FORM_FIELDS:
            value = values.pop(key, "")
            if value != "":
                options[key] = _integer(value) if key in INTEGER_FIELDS else value
        if modules:
            options["modules"] = modules
        for key in PRESET_FORM_FIELDS:
            values.pop(key, None)
    if account != "":
        options["account"] = account
    options.update(values)  # anything unknown: validation refuses it by name
    return options


def options_from_query(query: dict) -> dict:
    """Spawn-URL arguments (JupyterHub strips the ``opt-`` prefix) as ``user_options``.

    Keys are the ``user_options`` keys (``?opt-preset=shared&opt-cores=2``); empty values are dropped and
    ``nodes``, ``cores`` and ``gpus`` become numbers. A URL with ``mode`` is read like the form.
    """
    if "mode" in query:
        return options_from_form(query)
    options = {}
    for key in query:
        if key in LIST_FIELDS:
            if _names(query[key]):
                options[key] = _names(query[key])
            continue
        value = _text(_single(query, key))
        if value == "":
            continue
        options[key] = _integer(value) if key in INTEGER_FIELDS else value
    return options


# -- what the form preselects ------------------------------------------------------------------------------
def preselect(last_options, presets: dict[str, Preset], facts: Facts | None) -> dict:
    """The form's starting values: the server's last options, re-validated, each refused field falling back
    to its default. Returns ``mode``, ``preset``, ``cores`` (per preset), ``preset_runtime``, ``account``,
    and the advanced fields as the texts to show (``partition``, ``nodes``, ``cores_advanced``, ...)."""
    options = dict(last_options) if isinstance(last_options, dict) else {}
    try:
        options = dict(unwrap(options))
    except OptionsError:
        options = {}
    remembered = bool(options)
    for _ in range(len(options) + 1):
        if not options:
            break
        try:
            validate(options, presets, facts=facts)
            break
        except OptionsError as error:
            if error.field in options and error.field not in ("preset", "partition"):
                options.pop(error.field)
            else:
                options = {}
    advanced = "partition" in options and "preset" not in options
    first = next(iter(presets))
    chosen = options.get("preset", first) if not advanced else first
    cores = {key: preset.cores[0] for key, preset in presets.items()}
    if not advanced and "cores" in options:
        cores[chosen] = options["cores"]
    visible = facts.visible() if facts is not None else []
    access = facts.access if facts is not None else None
    default_account = getattr(access, "default_account", None) or ""

    def text(key):
        value = options.get(key) if advanced else None
        return "" if value is None else str(value)

    return {
        "mode": "advanced" if advanced else "preset",
        "remembered": remembered and bool(options),
        "preset": chosen,
        "cores": cores,
        "preset_runtime": "" if advanced else str(options.get("runtime") or ""),
        "account": options.get("account") or default_account,
        "partition": options.get("partition") if advanced else (visible[0].name if visible else ""),
        "nodes": text("nodes"),
        "cores_advanced": text("cores"),
        "memory": text("memory"),
        "gpus": text("gpus"),
        "runtime": text("runtime"),
        "reservation": text("reservation"),
        "modules": list(options.get("modules") or []) if advanced else [],
    }


# -- rendering -------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def environment(extra_paths: tuple[str, ...] = ()) -> jinja2.Environment:
    """The form's template environment (cached per list of site folders)."""
    package = jinja2.FileSystemLoader(TEMPLATES_DIR)
    loaders = [jinja2.FileSystemLoader(list(extra_paths))] if extra_paths else []
    loaders += [package, jinja2.PrefixLoader({"dkrzspawner": package})]
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(memory=human_memory, runtime=human_runtime, hours=core_hours_text)
    return env


def core_hours_text(value: float) -> str:
    """``12 core-hours``, ``0.5 core-hours``, ``1 core-hour``."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return text + (" core-hour" if text == "1" else " core-hours")


def end_text(runtime: int, now: datetime.datetime | None = None) -> str:
    """When a server with ``runtime`` seconds, started ``now``, would end: ``17:45 today``, ``09:00 tomorrow``,
    ``12:00 on 2026-12-09`` (the hub's clock; the form's script puts the browser's in its place)."""
    now = now or datetime.datetime.now()
    end = now + datetime.timedelta(seconds=runtime)
    days = (end.date() - now.date()).days
    day = "today" if days == 0 else "tomorrow" if days == 1 else f"on {end:%Y-%m-%d}"
    return f"{end:%H:%M} {day}"


@dataclass(frozen=True)
class Choice:
    value: str  # the form value: "preset:cores"
    id: str
    cores: int
    memory_mb: int
    core_hours: float
    checked: bool


@dataclass(frozen=True)
class PresetView:
    key: str
    display_name: str
    description: str
    partition: str
    choices: tuple[Choice, ...]
    runtime: int  # seconds
    max_runtime: int  # seconds, after the partition's limit
    available: bool
    free: str


@dataclass(frozen=True)
class PartitionView:
    name: str
    display_name: str
    description: str
    hint: str
    state: str
    offered: bool  # selectable in the advanced tab
    idle_cores: int
    total_cores: int
    free_gpus: int
    total_gpus: int
    max_nodes: int
    max_cores: int
    max_memory_mb: int
    max_gpus: int
    max_runtime: int | None
    default_runtime: int
    default_cores: int
    memory_per_core_mb: int
    accounts: tuple[str, ...]
    modules: tuple[str, ...] = ()  # loaded for every job here

    @property
    def limits(self) -> str:
        """One line: what a job in this partition may ask for."""
        parts = [f"up to {self.max_nodes} node{'s' if self.max_nodes > 1 else ''}",
                 f"{self.max_cores} cores and {human_memory(self.max_memory_mb)} per node"]
        if self.max_gpus:
            parts.append(f"{self.max_gpus} GPU{'s' if self.max_gpus > 1 else ''} per node")
        parts.append(f"runtime up to {human_runtime(self.max_runtime)}")
        return f"{self.display_name}: " + ", ".join(parts) + "."

    def as_data(self) -> dict:
        return {"max_nodes": self.max_nodes, "max_cores": self.max_cores, "max_memory_mb": self.max_memory_mb,
                "max_gpus": self.max_gpus, "max_runtime": self.max_runtime, "default_runtime": self.default_runtime,
                "default_cores": self.default_cores, "memory_per_core_mb": self.memory_per_core_mb,
                "limits": self.limits, "accounts": list(self.accounts)}


def _accounts_for(facts: Facts | None, limits) -> tuple[str, ...]:
    access = facts.access if facts is not None else None
    if access is None:
        return ()
    return tuple(a for a in access.accounts_for(limits.name) if limits.allows_account(a))


def partition_views(facts: Facts | None, presets: dict[str, Preset]) -> list[PartitionView]:
    """Every partition the form mentions: the offered ones (default first), then those only presets use."""
    if facts is None or facts.partitions is None:
        return []
    used = {preset.partition for preset in presets.values()}
    offered = {p.name for p in facts.visible()} if facts.advanced else set()
    ordered = facts.visible() + [p for p in facts.partitions.values() if p.hidden and p.name in used]
    return [
        PartitionView(
            name=p.name, display_name=p.display_name, description=p.description, hint=p.hint, state=p.state,
            offered=p.name in offered, idle_cores=p.idle_cores, total_cores=p.total_cores, free_gpus=p.free_gpus,
            total_gpus=p.total_gpus, max_nodes=p.max_nodes, max_cores=p.max_cores, max_memory_mb=p.max_memory_mb,
            max_gpus=p.max_gpus, max_runtime=p.max_runtime, default_runtime=p.default_runtime,
            default_cores=p.default_cores, memory_per_core_mb=p.memory_per_core_mb, accounts=_accounts_for(facts, p),
            modules=p.modules,
        )
        for p in ordered if p.name in offered or p.name in used
    ]


def preset_views(presets: dict[str, Preset], facts: Facts | None, selected: dict) -> list[PresetView]:
    views = []
    partitions = facts.partitions if facts is not None else None
    for key, preset in presets.items():
        limits = partitions.get(preset.partition) if partitions is not None else None
        runtime, longest = runtime_seconds(preset.runtime), runtime_seconds(preset.max_runtime)
        if limits is not None and limits.max_runtime is not None:
            longest = min(longest, limits.max_runtime)
            runtime = min(runtime, longest)
        per_core = memory_mb(preset.memory_per_core)
        chosen = selected["cores"].get(key)
        choices = tuple(
            Choice(value=f"{key}:{cores}", id=f"dkrz-preset-{key}-{cores}", cores=cores, memory_mb=cores * per_core,
                   core_hours=JobRequest(partition=preset.partition, cores=cores, memory_mb=cores * per_core,
                                         runtime_seconds=runtime).core_hours,
                   checked=selected["mode"] == "preset" and selected["preset"] == key and chosen == cores)
            for cores in preset.cores
        )
        free = ""
        if limits is not None:
            free = f"{limits.idle_cores} of {limits.total_cores} cores free"
        views.append(PresetView(key=key, display_name=preset.display_name, description=preset.description,
                                partition=preset.partition, choices=choices, runtime=runtime, max_runtime=longest,
                                available=partitions is None or limits is not None, free=free))
    if not any(c.checked for view in views for c in view.choices):  # advanced mode: still one preset preselected
        first = views[0]
        default = selected["cores"].get(first.key, first.choices[0].cores)
        views[0] = PresetView(**{**first.__dict__, "choices": tuple(
            Choice(**{**c.__dict__, "checked": c.cores == default}) for c in first.choices)})
    return views


def context(*, presets: dict[str, Preset], facts: Facts | None, selected: dict, server_name: str = "",
            refresh_seconds: float = 60.0, budgets: dict[str, dict] | None = None, maintenance: str = "") -> dict:
    """Everything the template needs; plain data, so tests and sites can inspect it.

    ``budgets``: per account, the accounts service's figures (``left_core_hours``, ``limit_core_hours``, ...).
    ``maintenance``: the site's message while new servers are refused ('' otherwise).
    """
    partitions = partition_views(facts, presets)
    offered = [p for p in partitions if p.offered]
    access = facts.access if facts is not None else None
    accounts = tuple(access.accounts) if access is not None else ()
    current = next((p for p in offered if p.name == selected["partition"]), offered[0] if offered else None)
    reservations = []
    if facts is not None and facts.reservations:
        account = selected.get("account") or None
        reservations = [r for r in facts.reservations
                        if r.allows(facts.user, account) or any(r.allows(facts.user, a) for a in accounts)]
    views = preset_views(presets, facts, selected)
    cost = {"preset": 0.0, "advanced": 0.0}
    ends = {"preset": "", "advanced": ""}
    checked = next(((v, c) for v in views for c in v.choices if c.checked), None)
    if checked:
        view, choice = checked
        runtime = runtime_seconds(selected["preset_runtime"]) if selected["preset_runtime"] else view.runtime
        cost["preset"] = JobRequest(partition=view.partition, cores=choice.cores, memory_mb=choice.memory_mb,
                                    runtime_seconds=runtime).core_hours
        ends["preset"] = end_text(runtime)
    if current is not None:
        nodes = int(selected["nodes"] or 1)
        cores = int(selected["cores_advanced"] or current.default_cores)
        runtime = runtime_seconds(selected["runtime"]) if selected["runtime"] else current.default_runtime
        cost["advanced"] = advanced_cost(current, nodes, cores, runtime)
        ends["advanced"] = end_text(runtime)
    data = {
        "presets": {v.key: {"runtime": v.runtime, "max_runtime": v.max_runtime, "partition": v.partition}
                    for v in views},
        "partitions": {p.name: p.as_data() for p in offered},
        "refresh_seconds": refresh_seconds,
        "budgets": budgets or {},
    }
    return {
        "server_name": server_name,
        "maintenance": maintenance,
        "presets": views,
        "partitions": partitions,
        "offered": offered,
        "current_partition": current,
        "advanced": bool(facts is not None and facts.advanced and offered),
        "accounts": accounts,
        "default_account": getattr(access, "default_account", None) or "",
        "reservations": reservations,
        "has_gpus": any(p.max_gpus for p in offered),
        "modules": list(facts.modules or ()) if facts is not None else [],
        "gpu_partitions": [p.name for p in offered if p.max_gpus],
        "selected": selected,
        "cost": cost,
        "ends": ends,
        "budget": budget_view(budgets or {}, selected.get("account") or getattr(access, "default_account", None)
                              or (accounts[0] if accounts else ""), cost[selected["mode"]]),
        "slurm_errors": list(facts.errors) if facts is not None else [],
        "as_of": getattr(facts, "as_of", "") if facts is not None else "",
        "data": data,
        "format_runtime": format_runtime,
    }


def advanced_cost(partition: PartitionView, nodes: int, cores: int, runtime: int) -> float:
    """Core-hours of an advanced request of ``nodes`` nodes with ``cores`` cores each for ``runtime`` seconds:
    :attr:`~dkrzspawner.options.JobRequest.core_hours`, the one definition (the form's script mirrors it)."""
    return JobRequest(partition=partition.name, nodes=nodes, cores=cores,
                      memory_mb=cores * partition.memory_per_core_mb, runtime_seconds=runtime).core_hours


def budget_view(budgets: dict[str, dict], account: str, cost: float) -> dict | None:
    """The chosen account's budget for the form: ``account``, ``left`` (core-hours or None: no limit) and
    ``over`` (the request would use more than is left); None without budget figures for it."""
    figures = budgets.get(account)
    if figures is None:
        return None
    left = figures.get("left_core_hours")
    return {"account": account, "left": left, "limit": figures.get("limit_core_hours"),
            "over": left is not None and cost > left}


def render(ctx: dict, *, template: str = TEMPLATE, extra_paths=()) -> str:
    """The form's HTML."""
    return environment(tuple(extra_paths)).get_template(template).render(**ctx)
