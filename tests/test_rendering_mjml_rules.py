"""The Python MJML validator: shipped templates pass, every broken template is refused at its line,
and its verdict agrees with the reference `mjml` in strict mode."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.content.ask import with_default_ask
from pipeline.content.edition import load_edition
from pipeline.errors import InvalidTemplates, TemplateError
from pipeline.rendering.layout import EditionLayout
from pipeline.rendering.mjml_rules import mjml_problems
from pipeline.rendering.mjml_types import value_problem
from pipeline.rendering.templates import TemplateSet
from tests.conftest import EDITION, ROOT, TEMPLATES
from tests.tools import mjml_binary

BROKEN = ROOT / "tests" / "fixtures" / "mjml-broken"
CASES = yaml.safe_load((BROKEN / "cases.yaml").read_text())
EDITIONS = sorted((ROOT / "editions").glob("*.yaml"))
EDITIONS = [path for path in EDITIONS if path.name != "topics.yaml"]


def _broken_folder(base: Path, case: str) -> Path:
    """A copy of the shipped templates with one template replaced by the broken one of `case`."""
    folder = base / case
    if not folder.exists():
        shutil.copytree(TEMPLATES, folder)
        shutil.copy(BROKEN / f"{case}.mjml.j2", folder / CASES[case]["replaces"])
    return folder


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> dict[str, str]:
    """The MJML document (every section) of each shipped edition and of the sample edition on each broken case."""
    base = tmp_path_factory.mktemp("mjml-broken")
    found = {f"edition {path.name}": EditionLayout.mjml_source(with_default_ask(load_edition(path)), TemplateSet(TEMPLATES))
             for path in EDITIONS}
    for case in CASES:
        found[case] = EditionLayout.mjml_source(load_edition(EDITION), TemplateSet(_broken_folder(base, case)))
    return found


def test_corpus_has_a_case_for_every_file():
    """Every broken template under tests/fixtures/mjml-broken is listed in cases.yaml, and the corpus is large."""
    files = {path.name.removesuffix(".mjml.j2") for path in BROKEN.glob("*.mjml.j2")}
    assert files == set(CASES) and len(files) >= 15


@pytest.mark.parametrize("edition", EDITIONS, ids=lambda path: path.name)
def test_shipped_templates_are_valid_mjml(edition, documents):
    """Each shipped edition rendered with the shipped templates, every section kind included, has no problem."""
    layout = EditionLayout(with_default_ask(load_edition(edition)), TemplateSet(TEMPLATES))  # the ask is added at send
    assert {s.kind for s in layout.edition.sections} == {p.stem.removesuffix(".mjml")
                                                         for p in (TEMPLATES / "sections").glob("*.mjml.j2")}
    assert mjml_problems(documents[f"edition {edition.name}"]) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_template_is_refused_at_its_line(case, tmp_path):
    """Rendering an edition with a broken template raises one line per problem, naming the template's own line first."""
    folder = _broken_folder(tmp_path, case)
    with pytest.raises(InvalidTemplates) as caught:
        EditionLayout(load_edition(EDITION), TemplateSet(folder))
    header, *problems = str(caught.value).splitlines()
    assert header.endswith("in the MJML of the templates; nothing was sent:")
    assert problems[0].strip().startswith(f"{folder}/{CASES[case]['first']}"), problems
    # A partial used by several sections is reported once, not once per section.
    assert len(problems) == len(set(problems))


@pytest.mark.mjml_reference
def test_verdicts_agree_with_reference_mjml_strict(documents, tmp_path):
    """Our verdict on the reference's own rules equals `mjml --validate strict` on every document, and the
    markup mistakes the reference repairs silently are still refused by ours."""
    names = {name: tmp_path / f"doc{index}.mjml" for index, name in enumerate(documents)}
    for name, path in names.items():
        path.write_text(documents[name])
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([mjml_binary(), *map(str, names.values()), "--config.validationLevel=strict",
                             "-o", f"{out}/"], capture_output=True, text=True, timeout=300)
    for name, path in names.items():
        reference_refuses = not (out / f"{path.stem}.html").exists()
        problems = mjml_problems(documents[name])
        assert any(p.reference for p in problems) == reference_refuses, (name, problems, result.stderr[-2000:])
        if name.startswith("edition "):
            assert not reference_refuses and not problems
        else:
            assert problems, name
            assert ("refuses" if reference_refuses else "accepts") == CASES[name]["reference"], name


@pytest.mark.mjml_reference
def test_element_table_matches_the_installed_reference():
    """pipeline/rendering/mjml_table.py is exactly what tools/mjml_table.py generates from the pinned npm mjml."""
    mjml_binary()  # skips locally, fails in CI, when the reference is not installed
    spec = importlib.util.spec_from_file_location("mjml_table_tool", ROOT / "tools" / "mjml_table.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.render(tool.export()) == (ROOT / "pipeline" / "rendering" / "mjml_table.py").read_text()


def test_mjml_python_failure_still_names_template_and_line(tmp_path):
    """Raw HTML that the reference accepts but mjml-python cannot read still fails with the template and line."""
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    partial = folder / "sections" / "event.mjml.j2"
    partial.write_text(partial.read_text().replace('<mj-text padding="6px 12px">{{ section.body_html }}',
                                                   '<mj-text padding="6px 12px"><p>{{ section.body_html }}'))
    assert mjml_problems(EditionLayout.mjml_source(load_edition(EDITION), TemplateSet(folder))) == []
    with pytest.raises(TemplateError, match=r"MJML compile failed .*sections/event\.mjml\.j2: rendered line \d+"):
        EditionLayout(load_edition(EDITION), TemplateSet(folder))


@pytest.mark.parametrize(("spec", "value", "valid"), [
    ("unit(px,%){1,4}", "16px 12px", True),
    ("unit(px,%){1,4}", "0", True),
    ("unit(px,%){1,4}", "1px 2px 3px 4px 5px", False),
    ("unit(px)", "19pt", False),
    ("unit(px,%,)", "1.5", True),
    ("unitWithNegative(px,em)", "-1px", True),
    ("unit(px)", "-1px", False),
    ("unit(px,auto)", "auto", True),
    ("color", "#0b5cad", True),
    ("color", "#FFF", True),
    ("color", "#fffbe", False),
    ("color", "Red", False),
    ("color", "rgba(0, 0, 0, 0.5)", True),
    ("enum(left,center,right)", "middle", False),
    ("enum(full-width,false,)", "", True),
    ("boolean", "true", True),
    ("boolean", "yes", False),
    ("integer", "3", True),
    ("integer", "none", False),
])
def test_attribute_types_follow_the_reference(spec, value, valid):
    """Attribute values are judged as the reference judges them (lower-case colour names, 1-4 lengths...)."""
    assert (value_problem(spec, value) is None) == valid


def test_problems_report_did_you_mean_and_every_repair():
    """A misspelt attribute gets a suggestion; an unclosed tag and stray text are each one problem."""
    document = ("<mjml><mj-body><mj-section><mj-column>\n<mj-text font-sise=\"2px\">a</mj-text>\nstray\n"
                "</mj-section></mj-body></mjml>")
    problems = [(p.line, p.field, p.value, p.reason) for p in mjml_problems(document)]
    assert problems == [
        (1, "element", "mj-column", "not closed before </mj-section>, which closes it"),
        (2, "mj-text attribute", "font-sise", "unknown attribute (did you mean font-size?)"),
        (3, "text", "stray", "directly inside mj-column, where the reference drops it; text belongs in mj-text"),
    ]


def test_defaults_in_mj_attributes_need_no_required_attribute():
    """An mj-image in mj-attributes only sets defaults, so only a real mj-image without src is reported."""
    document = ('<mjml><mj-head><mj-attributes><mj-image padding="0" /></mj-attributes></mj-head>'
                "<mj-body><mj-section><mj-column>\n<mj-image /></mj-column></mj-section></mj-body></mjml>")
    assert [(p.line, p.field, p.reference) for p in mjml_problems(document)] == [(2, "mj-image src", False)]
