"""Every setting is documented: in its help text and in the README's configuration table."""

from __future__ import annotations

import re

import pytest

from store.settings import PROJECT_ROOT, AccessSettings, Settings


def _env_name(name: str, field) -> str:
    alias = field.validation_alias
    return alias if isinstance(alias, str) else f"GRIDONE_{name.upper()}"


@pytest.mark.parametrize(
    ("cls", "name"),
    [(cls, name) for cls in (Settings, AccessSettings) for name in cls.model_fields],
)
def test_setting_is_documented(cls: type, name: str) -> None:
    field = cls.model_fields[name]
    assert field.description and len(field.description) > 20, name
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"^\| `{_env_name(name, field)}` \|", readme, re.M), (
        f"{_env_name(name, field)} is missing from the README's configuration table"
    )


def test_settings_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/x")
    monkeypatch.setenv("GRIDONE_LANGUAGE", "en")
    monkeypatch.setenv("GRIDONE_MAP_MAX_ZOOM", "17")
    s = Settings()
    assert (s.database_url, s.language, s.map_max_zoom) == ("postgresql://u:p@db:5432/x", "en", 17)
    monkeypatch.setenv("GRIDONE_LANGUAGE", "fr")
    with pytest.raises(ValueError, match="language"):
        Settings()
