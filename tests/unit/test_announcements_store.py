"""announcement_store.py: validation of what admins submit, and the SQL store (SQLite file)."""

from __future__ import annotations

import datetime
import os

import pytest

from dkrzspawner.services.announcement_store import MAX_TEXT, InvalidAnnouncement, Store, parse

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def valid(**changes):
    return {"text": "Maintenance on Monday", "level": "warning", "start": "2026-11-29T08:00:00+01:00",
            "end": "2026-11-30T18:00:00Z", **changes}


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'a.sqlite'}")


def test_valid_input_is_kept_in_utc():
    item = parse(valid())
    assert item.start == datetime.datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
    assert item.end == datetime.datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
    assert item.level.value == "warning"


def test_times_without_zone_are_utc_and_text_is_stripped():
    item = parse(valid(start="2026-11-29T08:00", text="  hello  "))
    assert item.start == datetime.datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    assert item.text == "hello"


@pytest.mark.parametrize("changes, message", [
    ({"text": "x" * (MAX_TEXT + 1)}, f"text: must be at most {MAX_TEXT} characters."),
    ({"text": "   "}, "text: String should have at least 1 character."),
    ({"level": "panic"}, "level: must be one of info, warning, critical."),
    ({"start": "tomorrow"}, "start: must be an ISO 8601 date and time, e.g. 2026-12-01T08:00:00+01:00."),
    ({"end": 1700000000}, "end: must be an ISO 8601 date and time as text, e.g. 2026-12-01T08:00:00+01:00."),
    ({"end": "2026-11-29T07:00:00Z"}, "announcement: end must be after start."),
    ({"colour": "red"}, "colour: is not a field of an announcement."),
])
def test_bad_input_is_refused_with_a_sentence_naming_the_field(changes, message):
    with pytest.raises(InvalidAnnouncement) as refused:
        parse(valid(**changes))
    assert str(refused.value) == message


def test_missing_fields_and_non_objects_are_refused():
    with pytest.raises(InvalidAnnouncement, match="start: Field required. end: Field required."):
        parse({"text": "hi"})
    with pytest.raises(InvalidAnnouncement, match="must be a JSON object"):
        parse(["text"])


def test_markup_is_stored_as_plain_text(store):
    item = store.add(parse(valid(text="<script>alert(1)</script> <b>bold</b>")), author="admin")
    assert store.all()[0]["text"] == "<script>alert(1)</script> <b>bold</b>" == item["text"]


def test_current_means_start_at_or_before_now_and_end_after(store):
    store.add(parse(valid(text="past", start="2026-11-01T00:00Z", end="2026-11-29T12:00Z")))
    store.add(parse(valid(text="now", start="2026-11-29T12:00Z", end="2026-11-29T13:00Z")))
    store.add(parse(valid(text="future", start="2026-11-29T12:00:01Z", end="2026-12-01T00:00Z")))
    assert [item["text"] for item in store.current(NOW)] == ["now"]
    assert len(store.all()) == 3


def test_the_most_severe_comes_first(store):
    for level in ("info", "critical", "warning"):
        store.add(parse(valid(text=level, level=level, start="2026-11-29T00:00Z")))
    assert [item["level"] for item in store.current(NOW)] == ["critical", "warning", "info"]


def test_replace_and_delete(store):
    ident = store.add(parse(valid()), author="admin")["id"]
    changed = store.replace(ident, parse(valid(text="changed", level="info")), author="root")
    assert (changed["text"], changed["level"], changed["author"]) == ("changed", "info", "root")
    assert store.replace(ident + 1, parse(valid())) is None
    assert store.delete(ident) and not store.delete(ident)
    assert store.all() == []


def test_announcements_survive_a_new_store_on_the_same_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.sqlite'}"
    Store(url).add(parse(valid()), author="admin")
    (item,) = Store(url).all()
    assert item["text"] == "Maintenance on Monday" and item["start"] == "2026-11-29T07:00:00+00:00"
    assert item["author"] == "admin"


def test_the_database_file_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        Store(f"sqlite:///{tmp_path}/announcements.sqlite")
    finally:
        os.umask(old)
    assert (tmp_path / "announcements.sqlite").stat().st_mode & 0o777 == 0o600
