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
