"""The priorities file: the packaged one loads, and every kind of mistake is named with its file and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.align import DEFAULT_FILE, PrioritiesError, load_priorities


def edited(tmp_path: Path, old: str, new: str, *, count: int = 1) -> Path:
    """A copy of the packaged file with ``old`` replaced by ``new`` (``count`` times; it must be there)."""
    text = DEFAULT_FILE.read_text(encoding="utf-8")
    assert text.count(old) >= count, old
    path = tmp_path / "priorities.toml"
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    return path


def refused(path: Path) -> str:
    with pytest.raises(PrioritiesError) as info:
        load_priorities(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message  # the file comes first
    return message


def test_the_packaged_file_has_the_eleven_priorities_in_both_languages():
    p = load_priorities()
    assert [x.id for x in p] == ["ict", "mobility", "cps", "cloud", "networking", "health", "security", "energy",
                                 "spaces", "creative", "ecosystem"]
    assert p.strategy_doc == "sofia-ris3.md" and p.umbrellas == {"ict"}
    assert all(x.aspects_en and x.aspects_bg for x in p)
    assert all(re.search("[а-я]", a) for x in p for a in x.aspects_bg)
    assert p.children("ict") == list(range(1, 9))
    assert load_priorities(None) == load_priorities(DEFAULT_FILE)  # equal contents compare equal (cache key)


def test_a_missing_field_is_named(tmp_path):
    path = edited(tmp_path, 'strategy_query = "ICT sub-priorities health and healthy lifestyle"\n', "")
    assert refused(path) == f'{path}: priority 6 ("Health and healthy lifestyle"): field "strategy_query" is missing'


def test_a_field_of_the_wrong_type_is_named(tmp_path):
    path = edited(tmp_path, 'level = "horizontal policy"', "level = 3")
    assert refused(path).endswith('priority 11 ("Strengthening the innovation ecosystem"): '
                                  'field "level" must be a non-empty string')
    path = edited(tmp_path, 'strategy_doc = "sofia-ris3.md"', "strategy_doc = [1]")
    assert refused(path) == f'{path}: field "strategy_doc" must be a non-empty string'
    path = edited(tmp_path, "aspects_en = [\n", "aspects_en = [\n    42,\n")
    assert refused(path).endswith('priority 1 ("Informatics and ICT"): field "aspects_en" must be a non-empty '
                                  'list of strings')


def test_empty_aspects_are_refused(tmp_path):
    text = DEFAULT_FILE.read_text(encoding="utf-8")
    start = text.index("aspects_bg = [", text.index('id = "health"'))
    path = tmp_path / "priorities.toml"
    path.write_text(text[:start] + "aspects_bg = []" + text[text.index("]", start) + 1:], encoding="utf-8")
    assert refused(path) == (f'{path}: priority 6 ("Health and healthy lifestyle"): field "aspects_bg" must be a '
                             'non-empty list of strings')


def test_a_duplicate_id_is_refused_with_both_priorities(tmp_path):
    path = edited(tmp_path, 'id = "cloud"', 'id = "cps"')
    assert refused(path).endswith('priority 4 ("Future cloud technologies"): field "id": "cps" is already the id '
                                  'of priority 3')


def test_malformed_toml_names_the_line(tmp_path):
    path = edited(tmp_path, 'name = "Smart spaces"', 'name = "Smart spaces')
    message = refused(path)
    assert "not valid TOML" in message and "line" in message, message


@pytest.mark.parametrize("old, new, why", [
    ('level = "horizontal policy"', 'level = "horizontal"', 'field "level" must be one of'),
    ('parent = "ict"', 'parent = "creative-x"', 'field "parent": "creative-x" must be the id of a priority'),
    ('parent = "ict"\n', "", 'field "parent" is required for level "ICT sub-priority"'),
    ("aspects_bg = [", "aspect_bg = [", 'unknown field "aspect_bg"'),
    ('id = "ict"', 'id = "Informatics ICT"', 'field "id" must be lower-case letters'),
    ('strategy_doc = "sofia-ris3.md"', 'strategy_doc = "sofia-ris3.md"\nversion = 2', 'unknown field "version"'),
])
def test_other_mistakes_are_named(tmp_path, old, new, why):
    assert why in refused(edited(tmp_path, old, new))


def test_missing_and_undecodable_files(tmp_path):
    assert "cannot read the priorities file" in refused(tmp_path / "nowhere.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(DEFAULT_FILE.read_text(encoding="utf-8").encode("utf-8") + b'\n# caf\xe9\n')
    assert "not UTF-8" in refused(bad)


def test_the_error_is_a_sofia_error_of_kind_config():
    from ingestion.errors import SofiaError

    assert issubclass(PrioritiesError, SofiaError) and issubclass(PrioritiesError, ValueError)
    assert PrioritiesError.kind == "config"


def test_the_setting_names_the_file(tmp_path, monkeypatch):
    from ingestion.config import Settings

    assert Settings().priorities_file is None  # the packaged file
    monkeypatch.setenv("SOFIA_QA_PRIORITIES_FILE", str(tmp_path / "mine.toml"))
    assert Settings.from_env().priorities_file == tmp_path / "mine.toml"


def test_the_cli_reports_a_bad_file_before_loading_any_model(tmp_path, capsys):
    from assistant.cli import main

    path = edited(tmp_path, 'id = "cloud"', 'id = "cps"')
    proposal = tmp_path / "p.txt"
    proposal.write_text("A proposal about cloud computing platforms for the city.", encoding="utf-8")
    assert main(["align", str(proposal), "--priorities", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sofia-qa: error: {path}: priority 4") and '"cps" is already the id' in err


# --------------------------------------------------------------------------- the examples file (tenth round)

def test_the_packaged_examples_load_with_known_priorities():
    p = load_priorities()
    ids = {x.id for x in p}
    assert len(p.examples) >= 300 and len({e.id for e in p.examples}) == len(p.examples)
    assert all(set(e.strong) <= ids and set(e.none) <= ids and not set(e.strong) & set(e.none) for e in p.examples)
    assert {e.id for e in p.examples if "mobility" in e.strong} and all(e.text for e in p.examples)
    assert any(re.search("[а-я]", e.text) for e in p.examples) and any("Sofia" in e.text for e in p.examples)


def with_examples(tmp_path: Path, examples: str) -> Path:
    """A priorities copy whose examples_file names an examples file holding ``examples``."""
    (tmp_path / "my-examples.toml").write_text(examples, encoding="utf-8")
    return edited(tmp_path, 'examples_file = "examples.toml"', 'examples_file = "my-examples.toml"')


GOOD_EXAMPLE = '[[example]]\nid = "x1"\nstrong = ["mobility"]\nnone = ["health"]\ntext = "A parking app for Sofia."\n'


@pytest.mark.parametrize("change, why", [
    (('"mobility"]', '"mobilty"]'), 'example 1 ("x1"): field "strong": unknown priority "mobilty"'),
    (('none = ["health"]', 'none = ["mobility"]'), 'example 1 ("x1"): field "none": "mobility" is also in "strong"'),
    (('strong = ["mobility"]\nnone = ["health"]', 'strong = []\nnone = []'),
     'example 1 ("x1"): fields "strong" and "none" are both empty'),
    (('text = "A parking app for Sofia."', 'txt = "A parking app for Sofia."'),
     'example 1 ("x1"): unknown field "txt"'),
    (('text = "A parking app for Sofia."', 'text = ""'), 'example 1 ("x1"): field "text" must be a non-empty string'),
    (('none = ["health"]', 'none = "health"'), 'example 1 ("x1"): field "none" must be a list of priority ids'),
    (('id = "x1"\n', ''), 'example 1: field "id" is missing'),
])
def test_a_bad_example_is_named_with_its_file_and_field(tmp_path, change, why):
    assert load_priorities(with_examples(tmp_path, GOOD_EXAMPLE)).examples[0].strong == ("mobility",)
    path = with_examples(tmp_path, GOOD_EXAMPLE.replace(*change))
    with pytest.raises(PrioritiesError) as info:
        load_priorities(path)
    assert str(info.value).startswith(f"{tmp_path / 'my-examples.toml'}: {why}"), str(info.value)


def test_a_duplicate_example_id_and_a_missing_examples_file_are_named(tmp_path):
    path = with_examples(tmp_path, GOOD_EXAMPLE + "\n" + GOOD_EXAMPLE)
    with pytest.raises(PrioritiesError, match='example 2 \\("x1"\\): field "id": "x1" is already the id of example 1'):
        load_priorities(path)
    path = edited(tmp_path, 'examples_file = "examples.toml"', 'examples_file = "nowhere.toml"')
    assert refused(path) == (f'{path}: field "examples_file": no file "nowhere.toml" next to it or beside the '
                             'packaged priorities file')
    # a copy of the priorities alone keeps the packaged examples; a copy without the line has none
    assert load_priorities(edited(tmp_path, "# the strategy", "# a copy: the strategy")).examples
    assert load_priorities(edited(tmp_path, 'examples_file = "examples.toml"', "")).examples == ()
