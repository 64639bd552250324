"""Where templates, editions and topics come from: the setting, then the current project, then the packaged defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.project import (find_project, packaged_defaults, packaged_file, project_editions, project_templates,
                              project_topics)
from pipeline.settings import Settings
from tests.conftest import ROOT


def _project(folder: Path, *, templates: bool = True, topics: bool = True) -> Path:
    """A minimal project folder: a layout template and/or a topics file."""
    if templates:
        (folder / "templates").mkdir(parents=True)
        (folder / "templates" / "layout.mjml.j2").write_text("<mjml></mjml>")
    if topics:
        (folder / "editions").mkdir(parents=True)
        (folder / "editions" / "topics.yaml").write_text("topics: {ours: Ours}\n")
    return folder


def test_packaged_defaults_of_a_checkout_are_its_top_level_folders():
    """In an editable install (this checkout) the packaged defaults are the repository's own folders, one copy in git."""
    assert packaged_defaults() == ROOT
    assert packaged_file("editions", "topics.yaml") == ROOT / "editions" / "topics.yaml"
    assert not (ROOT / "pipeline" / "bundled").exists()


def test_project_is_found_from_a_nested_working_directory(tmp_path, monkeypatch):
    """A command run in a subfolder of a project finds the project, as git finds its repository."""
    project = _project(tmp_path / "news")
    nested = project / "editions" / "drafts"
    nested.mkdir()
    monkeypatch.chdir(nested)
    assert find_project() == project.resolve()
    assert project_templates() == project.resolve() / "templates"
    assert project_topics() == project.resolve() / "editions" / "topics.yaml"
    assert project_editions() == project.resolve() / "editions"


def test_outside_any_project_the_packaged_defaults_are_used(tmp_path, monkeypatch):
    """With no project above the working directory, templates, editions and topics are the packaged ones."""
    monkeypatch.chdir(tmp_path)
    assert find_project() is None
    assert project_templates() == packaged_defaults() / "templates"
    assert project_editions() == packaged_defaults() / "editions"
    assert project_topics() == packaged_defaults() / "editions" / "topics.yaml"


def test_a_project_with_only_templates_keeps_the_packaged_topics(tmp_path, monkeypatch):
    """Each file falls back on its own: a project that has templates but no topics file gets the packaged topics."""
    project = _project(tmp_path / "news", topics=False)
    monkeypatch.chdir(project)
    assert project_templates() == project.resolve() / "templates"
    assert project_topics() == packaged_defaults() / "editions" / "topics.yaml"


@pytest.mark.parametrize("variable, field", [("READERFIRST_TEMPLATES", "templates_dir"),
                                             ("READERFIRST_TOPICS", "topics_file")])
def test_the_setting_wins_over_the_project(tmp_path, monkeypatch, variable, field):
    """READERFIRST_TEMPLATES and READERFIRST_TOPICS come before the project the working directory is in."""
    project = _project(tmp_path / "news")
    monkeypatch.chdir(project)
    chosen = tmp_path / "elsewhere"
    monkeypatch.setenv(variable, str(chosen))
    assert getattr(Settings(), field) == chosen
    monkeypatch.delenv(variable)
    assert getattr(Settings(), field) in (project.resolve() / "templates", project.resolve() / "editions" / "topics.yaml")


def test_web_service_offers_the_projects_topics(tmp_path, monkeypatch, db):
    """The preference centre lists the topics of the project it runs in, not the packaged ones."""
    from pipeline.web import create_app

    monkeypatch.chdir(_project(tmp_path / "news"))
    app = create_app(Settings(), db)
    assert app.state.web.taxonomy.labels == {"ours": "Ours"}
