"""A stand-in for dkrzspawner's jupyter_server extension, for the frontend's browser test only (never shipped):
the REST contract of the Lab extension with canned answers, so the TypeScript half is tested without Slurm.

Its state lives in this process: the kernels it "creates" are written as plain local kernelspecs into the
server's data dir (so the launcher shows them after refreshSpecs), the allocations are two made-up ones.
DKRZ_STUB_SECONDS_LEFT sets the server job's walltime left (a short one shows the notification);
DKRZ_STUB_OFF names the parts the "site" switched off (comma-separated keys of GET api/config)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

PRESETS = [{"name": "shared", "display_name": "Shared, small", "description": "", "partition": "shared",
            "cores": [1, 2, 4], "memory_per_core": "1000M", "runtime": "02:00:00", "max_runtime": "12:00:00"}]
PARTITIONS = [{"name": "shared", "display_name": "shared", "max_nodes": 1, "max_cores": 2, "max_memory_mb": 5000,
               "max_gpus": 0, "max_runtime": 43200, "default_runtime": "01:00:00"}]
TEMPLATES = [{"name": "python-slurm", "display_name": "Python via Slurm", "needs_environment": False,
              "description": "IPython in an allocation of its own on a compute node."},
             {"name": "conda-slurm", "display_name": "Conda via Slurm", "needs_environment": True,
              "description": "A conda environment of yours on a compute node."},
             {"name": "long-shared", "display_name": "Long on shared", "needs_environment": False,
              "description": "A site's own template.", "options": {"partition": "shared", "cores": 2,
                                                                  "runtime": "03:00:00"}}]
STATE = {
    "ends": time.time() + int(os.environ.get("DKRZ_STUB_SECONDS_LEFT", "20000")),
    "allocations": [
        {"job_id": "456", "state": "PENDING", "reason": "waiting for free cores on the partition",
         "estimated_start": "2026-12-02T05:40:00", "start_text": "expected to start at 05:40 (in 12 min)",
         "node": "", "seconds_left": None,
         "kernels": [{"id": "k1", "name": "mpi", "display_name": "MPI (Slurm)"}]},
        {"job_id": "457", "state": "RUNNING", "reason": "", "estimated_start": "", "start_text": "",
         "node": "vm", "seconds_left": 3400,
         "kernels": [{"id": "k2", "name": "py", "display_name": "Python (Slurm)"}]},
    ],
    "kernels": {},
}


class Base(APIHandler):
    def refuse(self, field, message, status=400):
        self.set_status(status)
        self.finish(json.dumps({"field": field, "message": message}))


class Config(Base):
    @web.authenticated
    def get(self):
        off = set(filter(None, os.environ.get("DKRZ_STUB_OFF", "").split(",")))
        parts = {part: part not in off for part in ("templates", "statusbar", "panel")}
        self.finish({**parts, "notify_minutes": [15, 5]})


class Job(Base):
    @web.authenticated
    def get(self):
        self.finish({"job_id": "123", "state": "RUNNING", "partition": "shared", "account": "bb1234", "node": "vm",
                     "cores": 2, "memory": "5000M", "gpus": 0, "started": "2026-12-01T22:00:00",
                     "ends": "2026-12-02T04:00:00", "seconds_left": max(0, int(STATE["ends"] - time.time())),
                     "in_job": True})


class Allocations(Base):
    @web.authenticated
    def get(self):
        self.finish({"allocations": STATE["allocations"]})


class Allocation(Base):
    @web.authenticated
    def delete(self, job_id):
        before = len(STATE["allocations"])
        STATE["allocations"] = [a for a in STATE["allocations"] if a["job_id"] != job_id]
        if len(STATE["allocations"]) == before:
            return self.refuse(None, f"Job {job_id} is no allocation of this server's kernels.", 404)
        self.set_status(204)
        self.finish()


class Templates(Base):
    @web.authenticated
    def get(self):
        self.finish({"templates": TEMPLATES})


class Offer(Base):
    @web.authenticated
    def get(self):
        self.finish({"presets": PRESETS, "partitions": PARTITIONS, "advanced": True, "accounts": ["bb1234"],
                     "default_account": "bb1234", "reservations": ["maint"],
                     "modules": ["gcc/12.2.0", "openmpi/4.1.5", "python3/2023.01", "netcdf/4.9.2"],
                     "environments": [{"path": "/home/alice/miniconda3/envs/x", "kind": "conda", "name": "x"}],
                     "errors": []})


def _kernel_dir(name):
    return Path(jupyter_data_dir()) / "kernels" / name


class Kernels(Base):
    @web.authenticated
    def get(self):
        self.finish({"kernels": list(STATE["kernels"].values())})

    @web.authenticated
    def post(self):
        self.save(self.get_json_body(), new=True)

    def save(self, body, new):
        options = body.get("options", {})
        if not body.get("name"):
            return self.refuse("name", "Name is required.")
        if new and body["name"] in STATE["kernels"]:
            return self.refuse("name", f"A kernel named {body['name']} exists already.")
        if "preset" in options and options.get("cores", 1) not in PRESETS[0]["cores"]:
            return self.refuse("cores", "Cores must be one of 1, 2, 4 for preset shared.")
        kernel = {"name": body["name"], "display_name": body.get("display_name") or body["name"],
                  "template": body["template"], "options": options, "environment": body.get("environment"),
                  "slurm": True}
        STATE["kernels"][body["name"]] = kernel
        where = _kernel_dir(body["name"])
        where.mkdir(parents=True, exist_ok=True)
        (where / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": kernel["display_name"], "language": "python"}))
        self.set_status(201 if new else 200)
        self.finish({"name": kernel["name"], "display_name": kernel["display_name"]})


class Kernel(Kernels):
    @web.authenticated
    def put(self, name):
        if name not in STATE["kernels"]:
            return self.refuse(None, f"No kernel {name}.", 404)
        self.save({**self.get_json_body(), "name": name}, new=False)

    @web.authenticated
    def delete(self, name):
        if STATE["kernels"].pop(name, None) is None:
            return self.refuse(None, f"No kernel {name}.", 404)
        shutil.rmtree(_kernel_dir(name), ignore_errors=True)
        self.set_status(204)
        self.finish()


class Environments(Base):
    @web.authenticated
    def post(self):
        body = self.get_json_body()
        if not str(body.get("path", "")).startswith("/"):
            return self.refuse("path", "Path must be an absolute path to a conda environment or virtualenv.")
        self.set_status(201)
        self.finish({"name": body.get("name"), "display_name": body.get("display_name")})


def _jupyter_server_extension_points():
    return [{"module": "dkrz_lab_stub"}]


def _load_jupyter_server_extension(serverapp):
    base = url_path_join(serverapp.web_app.settings["base_url"], "dkrzspawner", "api")
    serverapp.web_app.add_handlers(".*$", [
        (url_path_join(base, "config"), Config), (url_path_join(base, "job"), Job),
        (url_path_join(base, "allocations"), Allocations), (url_path_join(base, r"allocations/([^/]+)"), Allocation),
        (url_path_join(base, "templates"), Templates), (url_path_join(base, "offer"), Offer),
        (url_path_join(base, "kernels"), Kernels), (url_path_join(base, r"kernels/([^/]+)"), Kernel),
        (url_path_join(base, "environments"), Environments),
    ])
