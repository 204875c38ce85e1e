"""Drop-in: dkrzspawner's hub page templates, for sites.

Copy this file into your ``jupyterhub_config.d/`` or load it from ``jupyterhub_config.py`` with
``load_subconfig("/path/to/pages.py")``. It puts dkrzspawner's templates first in
``c.JupyterHub.template_paths`` (keeping any folders you set), which gives:

- ``spawn.html``: a refused request's message is shown above the form, and the form is the one of the named
  server the request was for (JupyterHub 6.1 shows neither correctly);
- ``spawn_pending.html``: Slurm's estimated start, and a "Stop Server" button that stops the server the page
  is about (6.1's button stops the default server);
- ``home.html``: each server's Slurm job, its state, walltime left, and how the last job ended.

The same in one line: ``c.JupyterHub.template_paths = [dkrzspawner.templates_path()]``.
Your own templates can extend ours: ``{% extends "templates/spawn.html" %}`` is JupyterHub's page,
our blocks (``dkrz_error``, ``dkrz_form``) are documented at the top of each template.
"""

from dkrzspawner.hubconfig import use_page_templates

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads the file)

use_page_templates(c)
