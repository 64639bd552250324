"""Starter projects under attack: links planted to make init write elsewhere, files it must not clobber, planted projects."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from pipeline.project import find_project, packaged_defaults, project_templates
from pipeline.starter import StarterConflict, starter_files, write_starter_project

TODAY = dt.date(2027, 3, 3)
TARGETS = [f.path for f in starter_files(TODAY)]


def test_linked_folder_inside_the_project_is_refused_even_with_force(tmp_path):
    """A templates/ that is a link to another folder makes init refuse, with or without --force, and nothing is written there."""
    victim = tmp_path / "victim"
    victim.mkdir()
    project = tmp_path / "news"
    project.mkdir()
    (project / "templates").symlink_to(victim, target_is_directory=True)
    for force in (False, True):
        with pytest.raises(StarterConflict, match="link"):
            write_starter_project(project, today=TODAY, force=force)
    assert list(victim.iterdir()) == [] and sorted(p.name for p in project.iterdir()) == ["templates"]


def test_folder_argument_that_is_a_file_is_refused(tmp_path):
    """`init FILE` says the path is not a folder and leaves the file as it was."""
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    with pytest.raises(StarterConflict, match="not a folder"):
        write_starter_project(existing, today=TODAY, force=True)
    assert existing.read_text() == "mine"


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(planted=st.dictionaries(st.sampled_from(TARGETS), st.sampled_from(["file", "link"]), max_size=6),
       force=st.booleans())
def test_planted_files_and_links_are_never_written_through(tmp_path_factory, planted, force):
    """Whatever mix of existing files and links to an outside file is in the way, the outside file never changes and
    init either writes all of its files or none."""
    base = tmp_path_factory.mktemp("init")
    victim = base / "victim.txt"
    victim.write_text("do not touch")
    project = base / "news"
    for path, kind in planted.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        if kind == "file":
            (project / path).write_text("team's own")
        else:
            (project / path).symlink_to(victim)
    before = {p: (p.is_symlink(), p.read_text()) for p in project.rglob("*") if p.is_file()} if project.exists() else {}
    try:
        write_starter_project(project, today=TODAY, force=force)
    except StarterConflict:
        refused = True
    else:
        refused = False
    assert victim.read_text() == "do not touch"
    has_link = "link" in planted.values()
    assert refused == (has_link or (bool(planted) and not force))
    after = {p: (p.is_symlink(), p.read_text()) for p in project.rglob("*") if p.is_file()} if project.exists() else {}
    if refused:
        assert after == before
    else:
        assert all((project / path).is_file() and not (project / path).is_symlink() for path in TARGETS)
        assert all((project / path).read_text() != "team's own" for path in planted)


def test_world_writable_folder_is_never_a_project(tmp_path, monkeypatch):
    """templates/ planted in a folder anyone may write to (like /tmp) is ignored by a command run below it."""
    shared = tmp_path / "shared"
    (shared / "templates").mkdir(parents=True)
    (shared / "templates" / "layout.mjml.j2").write_text("<mjml>planted</mjml>")
    shared.chmod(0o1777)  # like /tmp: sticky and writable by everyone
    work = shared / "work"
    work.mkdir(mode=0o755)
    work.chmod(0o755)
    monkeypatch.chdir(work)
    assert find_project() is None and project_templates() == packaged_defaults() / "templates"
    shared.chmod(0o755)
    assert find_project() == shared.resolve()


def test_world_writable_templates_folder_is_not_used(tmp_path, monkeypatch):
    """A project whose templates/ anyone may write to gets the packaged templates, not whatever is in there."""
    write_starter_project(tmp_path / "news", today=TODAY)
    (tmp_path / "news").chmod(0o755)
    (tmp_path / "news" / "templates").chmod(0o777)
    monkeypatch.chdir(tmp_path / "news")
    assert find_project() == (tmp_path / "news").resolve()  # editions/ still makes it a project
    assert project_templates() == packaged_defaults() / "templates"
