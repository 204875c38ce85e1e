"""Each user's recent jobs (the last :data:`KEEP`), kept in the hub's own database: what the home page's "Recent
servers" and ``GET /hub/api/dkrzspawner/recent`` list, "Start again" fills the form from, and a new named
server's form starts from.

One row per job in a table of our own, ``dkrzspawner_recent_jobs``, in the hub's database, written through the
hub's own database session (so SQLite sees one writer, and a MySQL or PostgreSQL hub works alike). Why not a JSON
list in a JupyterHub column: ``orm.User.state`` is JupyterHub's legacy spawner state (it moves it into the
default server's state and clears it), a server's own ``state`` is deleted with the server, and a read-modify-write
of one JSON value loses an entry when two servers end at once. Rows are inserted and updated one by one, each in
its own commit, and the cap deletes only rows older than the newest :data:`KEEP`; the rows belong to the user
(``ON DELETE CASCADE``), not to a server, so removing a server keeps them, and deleting the user removes them.
The table is created on first use; nothing of JupyterHub's own tables changes.

Plain data and SQLAlchemy Core only; imports :mod:`dkrzspawner.units`, never JupyterHub.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from urllib.parse import quote, urlencode

import sqlalchemy as sa

from .units import human_runtime

#: how many jobs per user are kept
KEEP = 20
#: the ends that are no failure: their output is not kept
CLEAN_ENDS = ("COMPLETED", "CANCELLED")

METADATA = sa.MetaData()
#: JupyterHub's ``users`` table, named here only for the foreign key (never created by us)
_USERS = sa.Table("users", METADATA, sa.Column("id", sa.Integer, primary_key=True))
TABLE = sa.Table(
    "dkrzspawner_recent_jobs", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("job_id", sa.Unicode(32), nullable=False),
    sa.Column("server", sa.Unicode(255), nullable=False, default=""),
    sa.Column("user_options", sa.UnicodeText, nullable=False, default="{}"),
    sa.Column("summary", sa.UnicodeText, nullable=False, default=""),
    sa.Column("cores", sa.Integer, nullable=False, default=1),
    sa.Column("submitted", sa.Unicode(40)),
    sa.Column("started", sa.Unicode(40)),
    sa.Column("ended", sa.Unicode(40)),
    sa.Column("state", sa.Unicode(40)),
    sa.Column("end_reason", sa.UnicodeText),
    sa.Column("core_hours", sa.Float),
    sa.Column("output_tail", sa.UnicodeText),
    sa.UniqueConstraint("user_id", "job_id", name="dkrzspawner_recent_jobs_user_job"),
)


def now() -> str:
    """The current time as the entries keep it: ISO 8601 with its UTC offset (``2026-12-02T01:30:00+00:00``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def describe(request) -> str:
    """A :class:`~dkrzspawner.options.JobRequest` in words, its resources as :attr:`~dkrzspawner.options.JobRequest.shape`
    says them: ``preset shared: 2 cores, 5 GB memory, runtime 12 h, account bb1234`` or ``partition gpu: 2 nodes,
    each 4 cores, 8 GB memory, 1 GPU, runtime 2 h, account default``."""
    head = f"preset {request.preset}" if request.preset else f"partition {request.partition}"
    parts = [request.shape, f"runtime {human_runtime(request.runtime_seconds)}",
             f"account {request.account or 'default'}"]
    if request.reservation:
        parts.append(f"reservation {request.reservation}")
    return f"{head}: " + ", ".join(parts)


def core_hours(cores: int, elapsed_seconds: float | None) -> float | None:
    """Core-hours used: cores x elapsed hours, rounded to 0.01; None when the elapsed time is not known."""
    if elapsed_seconds is None:
        return None
    return round(cores * max(elapsed_seconds, 0) / 3600, 2)


def elapsed_between(started: str | None, ended: str | None) -> float | None:
    """Seconds between two of the entries' times (None if either is missing)."""
    if not started or not ended:
        return None
    return (datetime.datetime.fromisoformat(ended) - datetime.datetime.fromisoformat(started)).total_seconds()


def start_again_url(base_url: str, user: str, server: str, user_options: dict) -> str:
    """The spawn page of ``server`` (``""``: the default one) filled in with ``user_options``: a spawn link
    (``/hub/spawn/alice/analysis?opt-preset=shared&opt-cores=2``), which only fills in the form; the user confirms
    with Start, and the options are validated as any request."""
    path = base_url.rstrip("/") + "/spawn/" + quote(user, safe="") + (f"/{quote(server, safe='')}" if server else "")
    query = []
    for key, value in user_options.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            query.append((f"opt-{key}", str(item)))
    return path + ("?" + urlencode(query) if query else "")


@dataclasses.dataclass
class RecentJob:
    """One job of the user, as the API returns it (:meth:`as_dict`)."""

    job_id: str
    server: str
    user_options: dict
    summary: str
    cores: int = 1
    submitted: str | None = None
    started: str | None = None
    ended: str | None = None
    state: str | None = None
    end_reason: str | None = None
    core_hours: float | None = None
    output_tail: str | None = None

    @property
    def failed(self) -> bool:
        """Whether it ended other than by the server exiting or being cancelled (its output tail is kept)."""
        return bool(self.state) and self.state not in CLEAN_ENDS

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _entry(row) -> RecentJob:
    try:
        options = json.loads(row.user_options or "{}")
    except ValueError:
        options = {}
    return RecentJob(job_id=row.job_id, server=row.server, user_options=options if isinstance(options, dict) else {},
                     summary=row.summary, cores=row.cores, submitted=row.submitted, started=row.started,
                     ended=row.ended, state=row.state, end_reason=row.end_reason, core_hours=row.core_hours,
                     output_tail=row.output_tail)


class RecentJobs:
    """The recent jobs in the database of ``session`` (JupyterHub's ``db``, a SQLAlchemy session); every method
    commits its own change. ``keep``: how many jobs per user are kept."""

    def __init__(self, session, keep: int = KEEP):
        self.session, self.keep = session, keep
        TABLE.create(session.connection(), checkfirst=True)
        session.commit()

    def submitted(self, user_id: int, job: RecentJob) -> None:
        """A job was submitted: add it (or, for a job id already listed, replace it), then drop the oldest beyond
        ``keep`` of this user."""
        values = job.as_dict()
        values["user_options"] = json.dumps(job.user_options)
        self.session.execute(sa.delete(TABLE).where(TABLE.c.user_id == user_id, TABLE.c.job_id == job.job_id))
        self.session.execute(sa.insert(TABLE).values(user_id=user_id, **values))
        old = self.session.execute(sa.select(TABLE.c.id).where(TABLE.c.user_id == user_id)
                                   .order_by(TABLE.c.id.desc()).offset(self.keep)).scalars().all()
        if old:  # ids read first: MySQL allows no LIMIT in an IN subquery
            self.session.execute(sa.delete(TABLE).where(TABLE.c.id.in_(old)))
        self.session.commit()

    def update(self, user_id: int, job_id: str, **fields) -> None:
        """Set ``fields`` (``started``, ``ended``, ``state``, ``end_reason``, ``core_hours``, ``output_tail``) of a
        listed job; a job no longer listed is left alone."""
        self.session.execute(sa.update(TABLE).where(TABLE.c.user_id == user_id, TABLE.c.job_id == job_id)
                             .values(**fields))
        self.session.commit()

    def get(self, user_id: int, job_id: str) -> RecentJob | None:
        row = self.session.execute(sa.select(TABLE).where(TABLE.c.user_id == user_id,
                                                          TABLE.c.job_id == job_id)).first()
        return _entry(row) if row is not None else None

    def list(self, user_id: int) -> list[RecentJob]:
        """The user's jobs, newest first."""
        rows = self.session.execute(sa.select(TABLE).where(TABLE.c.user_id == user_id)
                                    .order_by(TABLE.c.id.desc()).limit(self.keep)).all()
        return [_entry(row) for row in rows]

    def last_options(self, user_id: int) -> dict | None:
        """The ``user_options`` of the user's most recent job (any server), or None."""
        jobs = self.list(user_id)
        return jobs[0].user_options if jobs else None
