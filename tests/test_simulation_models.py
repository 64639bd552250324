"""Reader models: the shipped files load, and every validation names FILE:LINE: field=value: reason."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.simulation.models import InvalidReaderModel, ReaderModel, load_reader_model, reader_model_yaml
from pipeline.simulation.readers import SimulatedAudience

MODELS = Path(__file__).resolve().parent.parent / "audiences" / "reader-models"

GOOD = """\
name: test
topics:
  climate: 3
  ai: 1
preferences:
  concentration: 0.5
engagement:
  open_rate: 0.4
  click_rate: 0.2
unsubscribe:
  base: 0.001
  poorly_served: 0.02
"""


def write(folder: Path, text: str) -> Path:
    """Write a reader model file and return its path."""
    path = folder / "model.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path) -> list:
    """The problems load_reader_model reports for `path` (it must refuse the file)."""
    with pytest.raises(InvalidReaderModel) as caught:
        load_reader_model(path)
    return caught.value.problems


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of the first line of `path` containing `needle`."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if needle in line)


@pytest.mark.parametrize("name", sorted(p.name for p in MODELS.glob("*.yaml")))
def test_every_shipped_model_loads(name):
    """Each model in audiences/reader-models/ is valid, with popularity shares summing to 1."""
    model = load_reader_model(MODELS / name)
    assert isinstance(model, ReaderModel)
    assert abs(sum(model.topics.values()) - 1.0) < 1e-9
    assert model.edition.candidates >= model.edition.sections_per_reader


def test_the_shipped_models_cover_the_cases_of_the_readme():
    """The four documented audiences ship, and the drifting one drifts within eight editions."""
    names = {p.stem for p in MODELS.glob("*.yaml")}
    assert {"focused", "broad", "drifting", "niche-topics"} <= names
    drift = load_reader_model(MODELS / "drifting.yaml").drift
    assert drift is not None and 2 <= drift.at_edition <= 8


def test_a_minimal_model_gets_the_documented_defaults(tmp_path):
    """Fields left out take the defaults the README lists."""
    model = load_reader_model(write(tmp_path, GOOD))
    assert model.topics == {"climate": 0.75, "ai": 0.25}
    assert model.engagement.position_decay == 0.85
    assert model.edition.sections_per_reader == 5 and model.drift is None


@pytest.mark.parametrize("old, new, field, value", [
    ("  open_rate: 0.4", "  open_rate: 1.4", "engagement.open_rate", "1.4"),
    ("  click_rate: 0.2", "  click_rate: lots", "engagement.click_rate", "lots"),
    ("  concentration: 0.5", "  concentration: 0", "preferences.concentration", "0"),
    ("  ai: 1", "  ai: -1", "topics.ai", "-1"),
    ("  ai: 1", "  Not A Slug: 1", "topics", "Not A Slug"),
    ("  poorly_served: 0.02", "  poorly_served: 0.0001", "unsubscribe.poorly_served", "0.0001"),
])
def test_a_bad_value_is_reported_with_file_line_field_and_value(tmp_path, old, new, field, value):
    """A wrong value is named with its file, its own line, its dotted field and the value."""
    path = write(tmp_path, GOOD.replace(old, new))
    problems = problems_of(path)
    assert [p.field for p in problems] == [field], [str(p) for p in problems]
    problem = problems[0]
    assert problem.file == str(path)
    assert problem.line == line_of(path, new.strip())
    assert str(problem).startswith(f"{path}:{problem.line}: {field}={value}: ")


def test_unknown_fields_are_refused_with_their_line(tmp_path):
    """A misspelt field (here `clik_rate`) is an error naming the fields the block takes."""
    path = write(tmp_path, GOOD.replace("  click_rate: 0.2", "  clik_rate: 0.2"))
    problem = problems_of(path)[0]
    assert problem.field == "engagement.clik_rate"
    assert problem.line == line_of(path, "clik_rate")
    assert "click_rate" in problem.reason


def test_every_problem_is_reported_at_once(tmp_path):
    """Three mistakes give three problems, in one error that is also a PipelineError and a ValueError."""
    path = write(tmp_path, GOOD.replace("0.4", "2").replace("0.5", "-1") + "drift: {share: 0.2, at_edition: 1}\n")
    with pytest.raises(PipelineError) as caught:
        load_reader_model(path)
    assert isinstance(caught.value, ValueError)
    assert [p.field for p in caught.value.problems] == ["preferences.concentration", "engagement.open_rate",
                                                        "drift.at_edition"]
    assert "3 problems in reader model" in str(caught.value)


def test_missing_file_and_bad_yaml_are_reported(tmp_path):
    """A missing file and a file that is not YAML each give one problem naming the file."""
    assert "file not found" in problems_of(tmp_path / "nope.yaml")[0].reason
    path = write(tmp_path, "topics: [unclosed\n")
    problem = problems_of(path)[0]
    assert problem.file == str(path) and "not valid YAML" in problem.reason


def test_too_few_topics_is_refused(tmp_path):
    """A model needs at least two topics: with one there is nothing to personalise."""
    path = write(tmp_path, "topics: {climate: 1}\n")
    assert problems_of(path)[0].field == "topics"


def test_a_model_written_back_loads_the_same(tmp_path):
    """reader_model_yaml writes a file that loads to the same model (bar its path)."""
    model = load_reader_model(MODELS / "drifting.yaml")
    copy = tmp_path / "copy.yaml"
    copy.write_text(reader_model_yaml(model), encoding="utf-8")
    again = load_reader_model(copy)
    assert again.drift == model.drift and again.engagement == model.engagement
    assert again.topics.keys() == model.topics.keys()
    assert all(abs(again.topics[t] - model.topics[t]) < 1e-6 for t in model.topics)


def test_hidden_preferences_are_deterministic_per_seed_and_address():
    """The same (model, seed, address) gives the same reader in a new audience; another seed does not."""
    model = load_reader_model(MODELS / "focused.yaml")
    first = SimulatedAudience(model, seed=3).reader("Ada.Okafor.1@example.com")
    again = SimulatedAudience(model, seed=3).reader("ada.okafor.1@example.com")
    other = SimulatedAudience(model, seed=4).reader("ada.okafor.1@example.com")
    assert first == again
    assert first.preferences_before != other.preferences_before


def test_concentration_controls_how_focused_readers_are():
    """Readers of a low-concentration model give their favourite topic a far larger share than broad ones do."""
    focused = SimulatedAudience(load_reader_model(MODELS / "focused.yaml"), seed=1)
    broad = SimulatedAudience(load_reader_model(MODELS / "broad.yaml"), seed=1)
    emails = [f"reader{i}@example.com" for i in range(400)]

    def mean_top(audience: SimulatedAudience) -> float:
        return sum(max(audience.reader(e).preferences_before.values()) for e in emails) / len(emails)

    assert mean_top(focused) > 0.6
    assert mean_top(broad) < 0.35


def test_wrong_declarations_and_needs_are_read_and_written_back(tmp_path):
    """`declared.wrong_share` and the `needs` block load with their defaults and survive reader_model_yaml."""
    path = write(tmp_path, GOOD + "declared: {share: 0.5, topics: 1, wrong_share: 0.3}\nneeds: {share: 0.2}\n")
    model = load_reader_model(path)
    assert model.declared.wrong_share == 0.3
    assert (model.needs.share, model.needs.lasts, model.needs.strength) == (0.2, 3, 2.0)
    copy = tmp_path / "copy.yaml"
    copy.write_text(reader_model_yaml(model), encoding="utf-8")
    assert load_reader_model(copy).needs == model.needs
    assert load_reader_model(copy).declared == model.declared


@pytest.mark.parametrize("extra, field", [
    ("needs: {share: 0.2, lasts: 0}\n", "needs.lasts"),
    ("needs: {share: 0.2, strength: 0}\n", "needs.strength"),
    ("needs: {lasts: 2}\n", "needs.share"),
    ("declared: {wrong_share: 1.5}\n", "declared.wrong_share"),
])
def test_bad_needs_and_wrong_shares_are_reported_by_field(tmp_path, extra, field):
    """A need lasting no edition, a need of no strength, a need without a share, a share above 1: each is refused by name."""
    assert [p.field for p in problems_of(write(tmp_path, GOOD + extra))] == [field]


def test_wrong_declarations_name_topics_that_are_not_the_readers_favourites():
    """With wrong_share 1 no declaring reader names their favourite; with 0 every one does."""
    model = load_reader_model(MODELS / "changing.yaml")
    emails = [f"reader{i}@example.com" for i in range(400)]
    for share, names_favourite in ((1.0, False), (0.0, True)):
        changed = dataclasses.replace(model, declared=dataclasses.replace(model.declared, wrong_share=share))
        audience = SimulatedAudience(changed, seed=2)
        declaring = [audience.reader(e) for e in emails if audience.reader(e).declared]
        assert len(declaring) > 150
        for reader in declaring:
            top = max(reader.preferences_before, key=reader.preferences_before.get)
            assert (top in reader.declared) is names_favourite
