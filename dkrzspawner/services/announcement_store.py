"""Announcements: what an admin may write (pydantic) and where it is kept (SQLAlchemy, SQLite by default).

Text is stored exactly as written, as plain text; every page escapes it when rendering. Times are stored in UTC.
Knows no web framework: the service and the hub's pages both use it.
"""

from __future__ import annotations

import datetime
import enum
import os

import pydantic
import sqlalchemy as sa
from sqlalchemy import orm

#: the longest announcement text, in characters
MAX_TEXT = 1000

UTC = datetime.timezone.utc


class Level(str, enum.Enum):
    """How important an announcement is; pages style it accordingly."""

    info = "info"
    warning = "warning"
    critical = "critical"


class AnnouncementIn(pydantic.BaseModel):
    """An announcement as an admin submits it (JSON or form): validated before anything is stored."""

    model_config = pydantic.ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str = pydantic.Field(min_length=1, max_length=MAX_TEXT)
    level: Level = Level.info
    start: datetime.datetime
    end: datetime.datetime

    @pydantic.field_validator("start", "end", mode="before")
    @classmethod
    def _iso_text(cls, value):
        if not isinstance(value, str):
            raise ValueError("must be an ISO 8601 date and time as text, e.g. 2026-12-01T08:00:00+01:00")
        try:
            return datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("must be an ISO 8601 date and time, e.g. 2026-12-01T08:00:00+01:00") from None

    @pydantic.field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime.datetime) -> datetime.datetime:
        """Times without a zone are UTC; all are kept in UTC."""
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @pydantic.model_validator(mode="after")
    def _end_after_start(self):
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class InvalidAnnouncement(ValueError):
    """Refused input, with one sentence per problem naming the field."""


def parse(data) -> AnnouncementIn:
    """Validate submitted data; raise :class:`InvalidAnnouncement` with a readable message."""
    if not isinstance(data, dict):
        raise InvalidAnnouncement("The body must be a JSON object with text, level, start and end.")
    try:
        return AnnouncementIn.model_validate(data)
    except pydantic.ValidationError as exc:
        raise InvalidAnnouncement(" ".join(_sentence(error) for error in exc.errors())) from None


def _sentence(error) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "announcement"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "string_too_long":
        message = f"must be at most {MAX_TEXT} characters"
    elif error["type"] == "extra_forbidden":
        message = "is not a field of an announcement"
    elif error["type"] == "enum":
        message = "must be one of " + ", ".join(level.value for level in Level)
    return f"{field}: {message}."


class _Base(orm.DeclarativeBase):
    pass


class Announcement(_Base):
    """One stored announcement."""

    __tablename__ = "announcements"

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    text: orm.Mapped[str] = orm.mapped_column(sa.Text)
    level: orm.Mapped[str] = orm.mapped_column(sa.String(16))
    start: orm.Mapped[datetime.datetime] = orm.mapped_column(sa.DateTime)  # UTC, naive in the database
    end: orm.Mapped[datetime.datetime] = orm.mapped_column(sa.DateTime)
    author: orm.Mapped[str] = orm.mapped_column(sa.String(255), default="")

    def as_dict(self) -> dict:
        """The JSON form: ISO times with zone."""
        return {"id": self.id, "text": self.text, "level": self.level, "start": _aware(self.start).isoformat(),
                "end": _aware(self.end).isoformat(), "author": self.author}


def _aware(value: datetime.datetime) -> datetime.datetime:
    return value.replace(tzinfo=UTC)


def _naive(value: datetime.datetime) -> datetime.datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def now() -> datetime.datetime:
    """The current time in UTC."""
    return datetime.datetime.now(UTC)


def _private_sqlite_file(url: str) -> None:
    """A SQLite database file is created 0600 (the process's umask may be 022): only the service reads it."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    try:
        os.close(os.open(parsed.database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass


class Store:
    """Announcements in a SQL database (any SQLAlchemy URL; ``sqlite:///path`` by default)."""

    def __init__(self, url: str):
        _private_sqlite_file(url)
        self.engine = sa.create_engine(url)
        _Base.metadata.create_all(self.engine)
        self._session = orm.sessionmaker(self.engine, expire_on_commit=False)

    def add(self, item: AnnouncementIn, author: str = "") -> dict:
        """Store a new announcement; return it with its id."""
        with self._session.begin() as session:
            row = Announcement(text=item.text, level=item.level.value, start=_naive(item.start),
                               end=_naive(item.end), author=author)
            session.add(row)
            session.flush()
            return row.as_dict()

    def replace(self, ident: int, item: AnnouncementIn, author: str = "") -> dict | None:
        """Overwrite announcement ``ident``; None if there is none."""
        with self._session.begin() as session:
            row = session.get(Announcement, ident)
            if row is None:
                return None
            row.text, row.level, row.author = item.text, item.level.value, author
            row.start, row.end = _naive(item.start), _naive(item.end)
            return row.as_dict()

    def delete(self, ident: int) -> bool:
        """Remove announcement ``ident``; False if there was none."""
        with self._session.begin() as session:
            row = session.get(Announcement, ident)
            if row is None:
                return False
            session.delete(row)
            return True

    def all(self) -> list[dict]:
        """Every announcement, past and future included, the latest start first."""
        return self._query(sa.select(Announcement))

    def current(self, at: datetime.datetime | None = None) -> list[dict]:
        """Those shown right now (start <= now < end), the most severe first, then the latest start."""
        moment = _naive(at or now())
        found = self._query(sa.select(Announcement).where(Announcement.start <= moment, Announcement.end > moment))
        severity = {level.value: rank for rank, level in enumerate(reversed(Level))}
        return sorted(found, key=lambda item: severity.get(item["level"], len(severity)))

    def _query(self, statement) -> list[dict]:
        with self._session() as session:
            rows = session.scalars(statement.order_by(Announcement.start.desc(), Announcement.id.desc()))
            return [row.as_dict() for row in rows]
