"""The REST handlers of the JupyterLab extension (``dkrzspawner/api/...`` under the server's base URL; the
contract: ``docs/admin/lab.rst``). Thin: each parses its request, calls one function of :mod:`.jobinfo`,
:mod:`.allocations`, :mod:`.choices`, :mod:`.hubapi` or :mod:`dkrzspawner.kernels.templates`, and writes JSON. Errors are
``{"message": ..., "field": ...}`` with their status. Authenticated like every jupyter_server API. Imports tornado
and jupyter_server (never JupyterHub)."""

from __future__ import annotations

import json

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from ..slurm import SlurmError
from . import hubapi

# The handlers import the kernels' modules (pydantic, the offer, the provisioner) on their first call, not when the
# server loads the extension: the server answers the hub sooner (docs/admin/jobstart.rst).

#: the settings key under which the extension keeps its :class:`~dkrzspawner.lab.Lab`
SETTINGS_KEY = "dkrzspawner_lab"
#: what a kernel's body may hold (POST and PUT)
KERNEL_FIELDS = {"template", "name", "display_name", "options", "environment"}
#: what an environment's body may hold
ENVIRONMENT_FIELDS = {"path", "name", "display_name"}


class LabHandler(APIHandler):
    """The extension's handlers' common part: its state, JSON bodies and errors in the contract's shape."""

    @property
    def lab(self):
        return self.settings[SETTINGS_KEY]

    def refuse(self, status: int, message: str, field: str | None = None) -> None:
        self.set_status(status)
        self.finish(json.dumps({"message": message, "field": field}))

    def body(self, allowed: set[str]) -> dict | None:
        """The JSON object of a kernel or environment request, or None after a 400 (not an object, or an unknown
        key, by name) or a 403 (the site switched the templates off: ``c.DKRZLab.templates``)."""
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            self.refuse(400, "The request's body must be a JSON object.")
            return None
        if not isinstance(data, dict):
            self.refuse(400, "The request's body must be a JSON object.")
            return None
        if not self.lab.config.templates:
            self.refuse(403, "This site has switched kernel templates off in JupyterLab; dkrz-kernel in a "
                             "terminal makes kernels too.")
            return None
        unknown = sorted(set(data) - allowed)
        if unknown:
            self.refuse(400, f"Unknown field {unknown[0]!r}; known are {', '.join(sorted(allowed))}.", unknown[0])
            return None
        return data


class ConfigHandler(LabHandler):
    @tornado.web.authenticated
    def get(self):
        self.finish(json.dumps(self.lab.config.as_json()))


class JobHandler(LabHandler):
    @tornado.web.authenticated
    async def get(self):
        job = await self.lab.job.describe()
        if job["in_job"]:
            job["extendable"] = await self.lab.hub.may_extend()
        self.finish(json.dumps(job))


class ExtendHandler(LabHandler):
    """``POST dkrzspawner/api/job/extend`` with ``{"add": "HH:MM:SS"}``: the hub extends this server's job (its
    limits, its sentences), asked with this server's own token."""

    @tornado.web.authenticated
    async def post(self):
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict) or set(data) != {"add"} or not isinstance(data["add"], str):
            return self.refuse(400, 'The request must be {"add": "HH:MM:SS"}: the time to add.', "add")
        if not await self.lab.hub.may_extend():
            return self.refuse(403, "This hub does not let JupyterLab extend servers.", "add")
        try:
            extended = await self.lab.hub.extend(data["add"])
        except hubapi.HubRefused as exc:
            return self.refuse(exc.status, str(exc), "add")
        self.lab.job.forget()
        self.finish(json.dumps(extended))


class AllocationsHandler(LabHandler):
    @tornado.web.authenticated
    async def get(self):
        from . import allocations
        self.finish(json.dumps(await allocations.listing(self.kernel_manager, self.lab.runner)))


class AllocationHandler(LabHandler):
    @tornado.web.authenticated
    async def delete(self, job_id: str):
        from . import allocations
        try:
            await allocations.cancel_allocation(self.kernel_manager, self.lab.runner, job_id)
        except allocations.NotOurs:
            return self.refuse(404, f"Job {job_id} is no allocation of this server's kernels.", "job_id")
        except SlurmError as exc:
            return self.refuse(502, f"Slurm did not cancel job {job_id}: {exc.reason}", "job_id")
        self.set_status(204)
        self.finish()


class TemplatesHandler(LabHandler):
    @tornado.web.authenticated
    def get(self):
        from ..kernels import templates
        self.finish(json.dumps({"templates": templates.template_list()}))


class OfferHandler(LabHandler):
    @tornado.web.authenticated
    async def get(self):
        from . import choices
        self.finish(json.dumps(await choices.offered(self.lab.runner)))


def kernel_json(kernel: dict) -> dict:
    """One of :func:`~dkrzspawner.kernels.templates.installed` as the REST API lists it."""
    return {"name": kernel["name"], "display_name": kernel["display_name"], "template": kernel["template"],
            "options": kernel["config"], "environment": kernel["environment"], "slurm": kernel["slurm"]}


class KernelsHandler(LabHandler):
    @tornado.web.authenticated
    def get(self):
        from ..kernels import templates
        self.finish(json.dumps({"kernels": [kernel_json(kernel) for kernel in templates.installed()]}))

    @tornado.web.authenticated
    async def post(self):
        await self.write_kernel(None)

    async def write_kernel(self, name: str | None):
        """Create (``name`` None: the body's) or replace kernel ``name``, validated like ``dkrz-kernel``."""
        from ..kernels import templates
        data = self.body(KERNEL_FIELDS)
        if data is None:
            return
        if name is not None and data.get("name", name) != name:
            return self.refuse(400, f"Name cannot change in an edit (kernel {name}); create a new kernel "
                                    "instead.", "name")
        try:
            written = await templates.create_kernel(
                data.get("template"), name or data.get("name"), options=data.get("options", {}),
                display_name=data.get("display_name") or None, environment=data.get("environment") or None,
                force=name is not None, runner=self.lab.runner)
        except templates.KernelRefused as exc:
            return self.refuse(400, str(exc), exc.field)
        self.set_status(200 if name else 201)
        self.finish(json.dumps({"name": written.name, "display_name": written.display_name,
                                "notes": written.notes}))


class KernelHandler(KernelsHandler):
    @tornado.web.authenticated
    async def put(self, name: str):
        from ..kernels import templates
        if name not in {kernel["name"] for kernel in templates.installed()}:
            return self.refuse(404, f"You have no kernel named {name}.", "name")
        await self.write_kernel(name)

    @tornado.web.authenticated
    def delete(self, name: str):
        from ..kernels import templates
        if not self.lab.config.templates:
            return self.refuse(403, "This site has switched kernel templates off in JupyterLab.")
        try:
            templates.remove_kernel(name)
        except templates.KernelRefused as exc:
            return self.refuse(404, str(exc), exc.field)
        self.set_status(204)
        self.finish()


class EnvironmentsHandler(LabHandler):
    @tornado.web.authenticated
    async def post(self):
        from ..kernels import templates
        data = self.body(ENVIRONMENT_FIELDS)
        if data is None:
            return
        try:
            written = await templates.register_env(data.get("path"), name=data.get("name") or None,
                                                   display_name=data.get("display_name") or None)
        except templates.KernelRefused as exc:
            return self.refuse(400, str(exc), exc.field)
        self.set_status(201)
        self.finish(json.dumps({"name": written.name, "display_name": written.display_name,
                                "notes": written.notes}))


def routes(base_url: str) -> list[tuple]:
    """The extension's URL patterns under ``base_url``."""
    api = url_path_join(base_url, "dkrzspawner", "api")
    return [
        (url_path_join(api, "config"), ConfigHandler),
        (url_path_join(api, "job"), JobHandler),
        (url_path_join(api, "job", "extend"), ExtendHandler),
        (url_path_join(api, "allocations"), AllocationsHandler),
        (url_path_join(api, "allocations", r"([0-9]+)"), AllocationHandler),
        (url_path_join(api, "templates"), TemplatesHandler),
        (url_path_join(api, "offer"), OfferHandler),
        (url_path_join(api, "kernels"), KernelsHandler),
        (url_path_join(api, "kernels", r"([^/]+)"), KernelHandler),
        (url_path_join(api, "environments"), EnvironmentsHandler),
    ]
