"""Drop-in: the announcements service at ``/services/announcements/`` (maintenance windows, news).

Load it as is beside any hub configuration (copy it into your ``jupyterhub_config.d/`` or
``load_subconfig("/path/to/announcements.py")``); it only adds to what is configured:

- the hub-managed service (``python -m dkrzspawner.services.announcements``) on a free port of 127.0.0.1;
- ``access:services!service=announcements`` for every user, so any logged-in user may read;
- hub admins create, change and delete announcements (on the service's page or through its REST API); to let
  others do so, give them a role with the custom scope ``custom:announcements:write`` that this file defines::

      c.JupyterHub.load_roles.append({"name": "announcers", "scopes": ["custom:announcements:write"],
                                      "users": ["operator"]})

- the current announcements on the hub's home and spawn pages (dkrzspawner's page templates, put first in
  ``c.JupyterHub.template_paths``), read from the same database and cached for 10 s.

Announcements are kept in ``dkrz-announcements.sqlite`` in the hub's working directory, or in the database the
SQLAlchemy URL in ``$DKRZ_ANNOUNCEMENTS_DB_URL`` names (set in the hub's environment).
"""

import os

from dkrzspawner import hubconfig
from dkrzspawner.services import announcements
from dkrzspawner.services.banner import CurrentAnnouncements

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads the file)

_db_url = os.environ.get(announcements.DB_ENV) or "sqlite:///" + os.path.abspath("dkrz-announcements.sqlite")

hubconfig.add_managed_service(
    c, "announcements", "dkrzspawner.services.announcements", {announcements.DB_ENV: _db_url},
    # a role's holders of the write scope get it in their OAuth token too
    oauth_client_allowed_scopes=["access:services!service=announcements", announcements.WRITE_SCOPE],
)
hubconfig.define_scope(c, announcements.WRITE_SCOPE, "Create, change and delete the hub's announcements.")
hubconfig.add_template_var(c, "dkrz_announcements", CurrentAnnouncements(_db_url))
hubconfig.use_page_templates(c)
