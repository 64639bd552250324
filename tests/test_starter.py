"""The starter project `readerfirst init` writes: complete, valid, and never overwriting what it did not write."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from pipeline.content.edition import load_edition
from pipeline.delivery.planning import ENV_EXPLORATION, ENV_HOLDOUT_SHARE, ENV_POLICY, ENV_SEED
from pipeline.delivery.preparation import prepare_edition
from pipeline.settings import Settings
from pipeline.starter import (AUDIENCE_FILE, StarterConflict, env_example, next_monday, starter_files,
                              write_starter_project)

TODAY = dt.date(2027, 3, 3)  # a Wednesday


@given(st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 1, 1)))
def test_next_monday_is_the_monday_after_today(today):
    """The next edition's date is a Monday one to seven days after today (a week on, when today is a Monday)."""
    monday = next_monday(today)
    assert monday.weekday() == 0 and 1 <= (monday - today).days <= 7


def test_init_writes_a_project_whose_edition_is_for_next_monday(tmp_path):
    """The project has templates, next Monday's edition (valid with the project's templates), topics, audience, .env.example, README."""
    written = write_starter_project(tmp_path / "news", today=TODAY)
    project = tmp_path / "news"
    names = {p.relative_to(project).as_posix() for p in written}
    assert {"templates/layout.mjml.j2", "templates/sections/lead.mjml.j2", "templates/sections/lead.yaml",
            "templates/sections/sponsor.yaml", "templates/text/sections/pair.txt.j2", "templates/text/layout.txt.j2",
            "editions/topics.yaml", "editions/2027-03-08.yaml", AUDIENCE_FILE.as_posix(), ".env.example",
            "README.md"} <= names
    edition = load_edition(project / "editions" / "2027-03-08.yaml", templates=project / "templates")
    assert edition.id == "2027-03-08" and "week of 8 March" in edition.subject
    # The sample's events move with the edition (3 and 8 days after it), so none is already past.
    starts = [s.event.starts for s in edition.sections if s.kind == "event"]
    assert [str(s)[:10] for s in starts] == ["2027-03-11", "2027-03-16"]
    prepared = prepare_edition(project / "editions" / "2027-03-08.yaml", project / "templates", newsletter_name="ours")
    assert prepared.layout.worst_case_html_bytes > 0
    readme = (project / "README.md").read_text()
    assert readme.startswith("# news: our newsletter") and f"audience import {AUDIENCE_FILE.as_posix()}" in readme


def test_env_example_lists_every_setting_with_its_default():
    """Every READERFIRST_*/SENDGRID_* setting appears once, commented out at its default, under a comment saying what it is."""
    text = env_example()
    listed = dict(re.findall(r"^# ((?:READERFIRST|SENDGRID)_[A-Z_]+)=(.*)$", text, flags=re.M))
    aliases = {field.alias for field in Settings.model_fields.values()}
    assert set(listed) == aliases | {ENV_POLICY, ENV_SEED, ENV_EXPLORATION, ENV_HOLDOUT_SHARE}
    assert listed["READERFIRST_WORKERS"] == "2" and listed["SENDGRID_TIMEOUT"] == "30.0"
    assert listed["READERFIRST_SECRET"] == "" and listed["READERFIRST_TOPIC_GROUPS"] == "{}"
    assert listed[ENV_POLICY] == "thompson" and listed["READERFIRST_SENDGRID_SANDBOX"] == "false"
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^# (READERFIRST|SENDGRID)_", line):
            comment = lines[number - 1]
            assert comment.startswith("# ") and "=" not in comment.split(" ")[1], line
            assert "See the settings table" not in comment, f"{line}: add a comment for it in pipeline/starter.py"


def test_env_example_defaults_are_what_settings_read(monkeypatch):
    """Uncommenting every line with a value gives the same settings as not setting them (project folders aside)."""
    listed = dict(re.findall(r"^# ((?:READERFIRST|SENDGRID)_[A-Z_]+)=(.+)$", env_example(), flags=re.M))
    for name in ("READERFIRST_HOME", "READERFIRST_TEMPLATES", "READERFIRST_TOPICS", "READERFIRST_EDITIONS", ENV_POLICY, ENV_SEED,
                 ENV_EXPLORATION, ENV_HOLDOUT_SHARE):
        listed.pop(name)
    for name in listed:
        monkeypatch.delenv(name, raising=False)
    defaults = Settings().model_dump()
    for name, value in listed.items():
        monkeypatch.setenv(name, value)
    assert Settings().model_dump() == defaults


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path):
    """An existing file init would write stops it, naming the file, before anything is written."""
    project = tmp_path / "news"
    (project / "editions").mkdir(parents=True)
    (project / "editions" / "topics.yaml").write_text("topics: {mine: Mine}\n")
    with pytest.raises(StarterConflict) as refused:
        write_starter_project(project, today=TODAY)
    assert str(project / "editions" / "topics.yaml") in str(refused.value) and "--force" in str(refused.value)
    assert sorted(p.name for p in project.rglob("*")) == ["editions", "topics.yaml"]
    assert (project / "editions" / "topics.yaml").read_text() == "topics: {mine: Mine}\n"


def test_force_overwrites_only_the_files_init_writes(tmp_path):
    """--force rewrites init's own files and leaves the team's other files (an older edition, .env) alone."""
    project = tmp_path / "news"
    write_starter_project(project, today=TODAY)
    (project / "templates" / "layout.mjml.j2").write_text("edited")
    (project / "editions" / "2027-03-01.yaml").write_text("ours")
    (project / ".env").write_text("SENDGRID_API_KEY=SG.x\n")
    write_starter_project(project, today=TODAY, force=True)
    assert (project / "templates" / "layout.mjml.j2").read_text() != "edited"
    assert (project / "editions" / "2027-03-01.yaml").read_text() == "ours"
    assert (project / ".env").read_text() == "SENDGRID_API_KEY=SG.x\n"
    assert not [p for p in project.rglob(".*") if p.name != ".env" and p.name != ".env.example"]


def test_starter_audience_imports(tmp_path, db):
    """The starter audience is a valid audience file on the starter topics."""
    from pipeline.audience.importer import import_audience

    write_starter_project(tmp_path / "news", today=TODAY)
    report = import_audience(db, tmp_path / "news" / AUDIENCE_FILE, "main")
    assert report.created == 20


@hypothesis_settings(max_examples=25, deadline=None)
@given(st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2099, 1, 1)))
def test_starter_edition_is_valid_whatever_the_date(tmp_path_factory, today):
    """On any day init is run, the edition it writes passes validation (dates moved, none invalid)."""
    folder = tmp_path_factory.mktemp("starter")
    files = {f.path.as_posix(): f.text for f in starter_files(today)}
    name = f"editions/{next_monday(today).isoformat()}.yaml"
    (folder / "editions").mkdir()
    (folder / name).write_text(files[name])
    (folder / "editions" / "topics.yaml").write_text(files["editions/topics.yaml"])
    assert load_edition(folder / name).id == next_monday(today).isoformat()
