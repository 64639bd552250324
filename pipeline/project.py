"""Where a newsletter project's templates, editions, topics and audience files are found.

A team's project is a folder made by `readerfirst init` (or this repository's checkout): it
holds `templates/`, `editions/` (with `topics.yaml`) and `audiences/`. It is found from the
working directory upwards, as git finds its repository. What a project does not hold comes
from the packaged defaults: the same folders, which the wheel carries as `pipeline/bundled/`
(copied there at build time by `setup.py`, so git keeps one copy of each file), and which an
editable install reads straight from the checkout.

Resolution order, for each of templates, editions and topics: the setting
(`READERFIRST_TEMPLATES`, `READERFIRST_TOPICS`), then the current project, then the packaged defaults.
"""

from __future__ import annotations

import stat
from pathlib import Path

__all__ = [
    "BUNDLED_DIR",
    "CHECKOUT_DIR",
    "SAMPLE_EDITION_NAME",
    "find_project",
    "packaged_defaults",
    "packaged_file",
    "project_templates",
    "project_editions",
    "project_topics",
    "theme_fallbacks",
    "THEMES_FOLDER",
]

_PACKAGE_DIR = Path(__file__).resolve().parent
# Only a built wheel has this folder; in git the defaults are the checkout's top-level folders.
BUNDLED_DIR = _PACKAGE_DIR / "bundled"
CHECKOUT_DIR = _PACKAGE_DIR.parent
SAMPLE_EDITION_NAME = "2026-12-07.yaml"
THEMES_FOLDER = "themes"  # <templates>/themes/<name>/: a theme overriding some of the set

# Either file makes a folder a project: a team may keep only its templates, or only its editions.
_PROJECT_MARKERS = (Path("templates") / "layout.mjml.j2", Path("editions") / "topics.yaml")


def packaged_defaults() -> Path:
    """The folder holding the packaged `templates/`, `editions/` and `audiences/`.

    `pipeline/bundled/` in an installed wheel; the checkout itself in an editable install.
    """
    return BUNDLED_DIR if BUNDLED_DIR.is_dir() else CHECKOUT_DIR


def packaged_file(*parts: str) -> Path:
    """A packaged default by its path in the repository, e.g. `packaged_file("audiences", "sample.csv")`."""
    return packaged_defaults().joinpath(*parts)


def _writable_by_anyone(folder: Path) -> bool:
    try:
        return bool(folder.stat().st_mode & stat.S_IWOTH)
    except OSError:
        return True  # a folder we cannot even look at is no project of ours


def _is_project(folder: Path) -> bool:
    for marker in _PROJECT_MARKERS:
        found = folder / marker
        # In a folder anyone can write to (/tmp), anyone could have planted templates/: never take it as a
        # project, or a command run in /tmp/work would send newsletters through a stranger's template.
        if found.is_file() and not _writable_by_anyone(folder) and not _writable_by_anyone(found.parent):
            return True
    return False


def find_project(start: Path | None = None) -> Path | None:
    """The nearest folder, from `start` (default: the working directory) upwards, that is a project.

    A folder every user may write to (such as /tmp), or whose templates/ or editions/ every user
    may write to, is never a project: its files could be anyone's.
    """
    try:
        here = (start or Path.cwd()).resolve()
    except OSError:  # the working directory was deleted under us: there is no project to find
        return None
    for folder in (here, *here.parents):
        if _is_project(folder):
            return folder
    return None


def _resolved(relative: Path, start: Path | None) -> Path:
    project = find_project(start)
    if project is not None and (project / relative).exists() and not _writable_by_anyone(project / relative.parts[0]):
        return project / relative
    return packaged_defaults() / relative


def project_templates(start: Path | None = None) -> Path:
    """The template folder when READERFIRST_TEMPLATES is unset: the project's, else the packaged one."""
    return _resolved(Path("templates"), start)


def project_editions(start: Path | None = None) -> Path:
    """The editions folder: the project's `editions/`, else the packaged one (with the sample edition)."""
    return _resolved(Path("editions"), start)


def project_topics(start: Path | None = None) -> Path:
    """The topics file when READERFIRST_TOPICS is unset: the project's `editions/topics.yaml`, else the packaged one."""
    return _resolved(Path("editions") / "topics.yaml", start)


def theme_fallbacks(folder: Path) -> tuple[Path, ...]:
    """Where a template (or a kind's schema) missing from `folder` is found: for a theme
    (`<templates>/themes/<name>/`) its own templates folder, then the packaged default set;
    nothing for a folder of its own."""
    folder = Path(folder)
    if folder.parent.name != THEMES_FOLDER:
        return ()
    chain = [folder.parent.parent]
    default = packaged_file("templates")
    if default.resolve() != chain[0].resolve():
        chain.append(default)
    return tuple(f for f in chain if (f / "layout.mjml.j2").is_file())
