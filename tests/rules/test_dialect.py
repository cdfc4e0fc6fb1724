"""Firebase's JSON dialect for rules documents: comments outside strings, literal newlines in
strings, and errors that say where."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thingstash.rules.dialect import parse_document
from thingstash.rules.model import RulesError

from .test_expressions import yardstick


def test_comments_go_and_strings_keep_what_looks_like_comments() -> None:
    text = """{
      // a line comment
      "rules": { /* a block
                   comment */
        ".read": "auth.uid == 'a//b' && '/*' != '*/'",
        "url": "http://example.com/*x*/"
      }
    }"""
    assert parse_document(text) == {
        "rules": {".read": "auth.uid == 'a//b' && '/*' != '*/'", "url": "http://example.com/*x*/"}
    }


def test_strings_may_span_lines_and_hold_tabs() -> None:
    text = '{"rules": {".validate": "\n\tnewData.exists()\n\t&& true\n"}}'
    assert parse_document(text) == {"rules": {".validate": "\n\tnewData.exists()\n\t&& true\n"}}


def test_escaped_quotes_do_not_end_a_string() -> None:
    assert parse_document('{"a": "say \\"//hi\\"" // note\n}') == {"a": 'say "//hi"'}


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ('{\n  "rules": {\n    ".read": true,,\n  }\n}', "line 3, column 19"),
        ('{\n  "a": 1 /* never closed\n}', "line 2, column 10"),
        ("", "line 1, column 1"),
        ('{"a": tru}', "line 1, column 7"),
    ],
)
def test_bad_documents_name_line_and_column(text: str, place: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_document(text)
    assert caught.value.place == place


def test_the_yardsticks_commented_documents_parse() -> None:
    lines = (yardstick() / "tg-cli.jsonl").read_text().splitlines()
    texts = [
        step["rules_text"]
        for case in map(json.loads, lines)
        for step in case["steps"]
        if "rules_text" in step
    ]
    assert texts
    for text in texts:
        rules = parse_document(text)["rules"]
        date = rules["posts"]["$post"]["date"][".validate"]
        assert "data.parent().exists() === false" in date and "\n" in date
        assert rules["flight-routes"]["$from"]["$to"][".validate"] == "$from !== $to"


@given(st.text(alphabet='{}[]":,/*\\ \nab1e-.tru', max_size=80) | st.text(max_size=80))
def test_any_text_raises_only_rules_errors(text: str) -> None:
    try:
        parse_document(text)
    except RulesError:
        pass


def test_huge_numbers_are_a_rules_error() -> None:
    with pytest.raises(RulesError):
        parse_document('{"a": ' + "9" * 5000 + "}")
