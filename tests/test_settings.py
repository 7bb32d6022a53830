"""One source of settings: defaults live only in the JSON schema (docs/architecture.md)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from sae_specialists.core import settings as st
from sae_specialists.core.errors import ConfigError

MINIMAL = {"model": {"name": "m"}, "saes": {"r": {"path": "p{layer}"}}, "layers": [0], "texts": "t"}
SCHEMA = yaml.safe_load(st.schema_path().read_text())
SECTIONS = [
    name
    for name, spec in SCHEMA["properties"].items()
    if spec.get("type") == "object" and spec.get("default") == {}
]


def schema_defaults(properties: dict, prefix: str = "") -> dict:
    """Every leaf default of a section, nested objects flattened as ``outer_inner``."""
    out = {}
    for name, spec in properties.items():
        if spec.get("type") == "object" and "properties" in spec:
            out.update(schema_defaults(spec["properties"], f"{prefix}{name}_"))
        elif "default" in spec:
            out[f"{prefix}{name}"] = spec["default"]
    return out


def plain(value):
    return list(value) if isinstance(value, tuple) else value


def test_the_schema_has_sections_with_defaults():
    assert {"extraction", "analysis", "dashboards", "methodology"} <= set(SECTIONS)


@pytest.mark.parametrize("section", SECTIONS)
def test_an_absent_section_gets_exactly_the_schema_defaults(section):
    settings = st.load_settings(dict(MINIMAL), st.schema_path())
    got = getattr(settings, section)
    expected = schema_defaults(SCHEMA["properties"][section]["properties"])
    assert expected, section
    assert {name: plain(getattr(got, name)) for name in expected} == expected
    # the dataclass holds the section's keys and nothing else
    assert {f.name for f in dataclasses.fields(got)} == set(expected)


@pytest.mark.parametrize("section", SECTIONS)
def test_section_dataclasses_carry_no_python_defaults(section):
    settings = st.load_settings(dict(MINIMAL), st.schema_path())
    fields = dataclasses.fields(getattr(settings, section))
    assert [f.name for f in fields if f.default is not dataclasses.MISSING] == []
    assert [f.name for f in fields if f.default_factory is not dataclasses.MISSING] == []


def test_settings_are_frozen_and_validation_leaves_the_config_alone():
    config = {**MINIMAL, "analysis": {"threshold": 3}}
    settings = st.load_settings(config, st.schema_path())
    assert config == {**MINIMAL, "analysis": {"threshold": 3}}  # defaults filled in a copy
    assert settings.analysis.threshold == 3.0 and settings.analysis.candidates == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.analysis.threshold = 1.0


def test_a_bad_value_names_its_key():
    with pytest.raises(ConfigError, match=r"analysis\.candidates"):
        st.load_settings({**MINIMAL, "analysis": {"candidates": 0}}, st.schema_path())
