from typing import Literal

import pytest

from ipoke.config import ParamsError, Section, flatten, load_section, parse_section


class Inner(Section):
    width: int = 8


class Params(Section):
    source: Literal["a", "b"] = "a"
    steps: int = 10
    inner: Inner = Inner()


def test_defaults_and_values():
    p = parse_section("s", {"source": "b", "inner": {"width": 3}}, Params)
    assert (p.source, p.steps, p.inner.width) == ("b", 10, 3)


def test_unknown_key_is_named():
    with pytest.raises(ParamsError, match=r"s\.inner\.widht: unknown key"):
        parse_section("s", {"inner": {"widht": 3}}, Params)


def test_wrong_type_is_named():
    with pytest.raises(ParamsError, match=r"s\.steps: .*integer.*'ten'"):
        parse_section("s", {"steps": "ten"}, Params)


def test_bad_literal_is_named():
    with pytest.raises(ParamsError, match=r"s\.source"):
        parse_section("s", {"source": "c"}, Params)


def test_missing_section_and_file(tmp_path):
    f = tmp_path / "params.yaml"
    with pytest.raises(ParamsError, match="not found"):
        load_section("s", Params, f)
    f.write_text("other: {}\n")
    with pytest.raises(ParamsError, match="no 's' section"):
        load_section("s", Params, f)
    f.write_text("s: [1, 2\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_section("s", Params, f)


def test_section_is_immutable():
    p = Params()
    with pytest.raises(Exception, match="frozen"):
        p.steps = 3


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
