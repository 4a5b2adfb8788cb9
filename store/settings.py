"""The project's one settings object, read from the environment.

Every setting has a name, a type, a default and a help text; ``README.md`` lists them all
(``tests/test_settings.py`` fails when one is undocumented). Load it once with
:func:`get_settings` and pass it explicitly; nothing else in the code reads ``os.environ``
for configuration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The checkout's root folder (the parent of ``store/``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Configuration of Grid One-Map, each field from the environment variable named in
    ``validation_alias`` (or ``GRIDONE_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="GRIDONE_", extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description=(
            "SQLAlchemy/libpq URL of the PostGIS database, e.g. "
            "postgresql://user:pass@host:5432/gridone. Unset: the project runs its own "
            "PostGIS cluster in .local/pg inside the checkout."
        ),
    )
    app_database_url: str | None = Field(
        default=None,
        validation_alias="GRIDONE_APP_DATABASE_URL",
        description=(
            "URL the dashboard connects with, as the role gridone_app (owns nothing, bypasses "
            "no row-level security); its password from `python -m store users app-password`. "
            "Unset: the URL that command saved in .local/app.json (scripts/setup.sh does it)."
        ),
    )
    local_pg_dir: Path = Field(
        default=PROJECT_ROOT / ".local" / "pg",
        description="Folder of the embedded PostGIS cluster used when DATABASE_URL is unset.",
    )
    pg_bin_dir: Path | None = Field(
        default=None,
        description=(
            "Folder holding initdb and pg_ctl for the embedded cluster. Unset: the newest "
            "/usr/lib/postgresql/<version>/bin that has PostGIS."
        ),
    )
    timezone: str = Field(
        default="Asia/Shanghai",
        description="Time zone for reading timestamps without one and for day boundaries.",
    )
    language: Literal["zh", "en"] = Field(
        default="zh", description="Language of the dashboard: zh (简体中文) or en."
    )
    tile_url: str | None = Field(
        default=None,
        description=(
            "Basemap tile URL template ({z}/{x}/{y}), e.g. an intranet tile server or Tianditu "
            "with its key. Unset: no basemap, a plain background under the vector layers."
        ),
    )
    tile_attribution: str = Field(
        default="", description="Attribution text shown for the basemap given by TILE_URL."
    )
    map_max_zoom: int = Field(
        default=18, ge=1, le=22, description="Highest zoom level the map allows."
    )
    demo_seed: int = Field(
        default=20261120, description="Seed of the demo data generator: same seed, same data."
    )
    demo_scale: Literal["street", "district"] = Field(
        default="street",
        description=(
            "Size of the generated demo: street (9 communities, 41 grids) or district "
            "(12 streets, ~1,500 grids, 1,000,000 incidents; for benchmarks)."
        ),
    )


#: Where ``python -m store users app-password --save`` keeps the dashboard's URL (mode 600).
APP_URL_FILE = PROJECT_ROOT / ".local" / "app.json"
#: Where ``python -m store users demo-logins`` keeps the demo users' passwords (mode 600).
DEMO_LOGINS_FILE = PROJECT_ROOT / ".local" / "demo-logins.txt"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the settings from the environment once per process."""
    return Settings()


class AccessSettings(BaseSettings):
    """Logins, sessions and the audit trail (issue 7), each from ``GRIDONE_<FIELD>``.

    The lock-out and session timeouts (``login_max_failures``, ``login_lockout_minutes``,
    ``session_idle_minutes``, ``session_max_hours``) are not passed to the login: since
    migration 0011 ``python -m store migrate`` writes those set in the environment into
    the database's owner-only ``gridone_login_policy`` (``python -m store users policy``
    changes it), which ``gridone_login`` reads itself.

    Apart from :class:`Settings` because only the access functions need them
    (:func:`store.access.log_in` and the user functions take it explicitly); listed
    in the README's configuration table like the others (tests/test_settings.py)."""

    model_config = SettingsConfigDict(env_prefix="GRIDONE_", extra="ignore", frozen=True)

    login_max_failures: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Failed logins in a row after which an account is locked (登录失败锁定次数).",
    )
    login_lockout_minutes: int = Field(
        default=15,
        ge=1,
        le=24 * 60,
        description="How long a locked account stays locked, in minutes (锁定时长).",
    )
    session_idle_minutes: int = Field(
        default=30,
        ge=1,
        le=24 * 60,
        description="A session unused this many minutes is ended; the user logs in again.",
    )
    session_max_hours: int = Field(
        default=12,
        ge=1,
        le=24 * 7,
        description="A session ends this many hours after login even when in use.",
    )
    password_min_length: int = Field(
        default=10,
        ge=8,
        le=128,
        description="Shortest password accepted; it must also mix letters and digits.",
    )
    password_bcrypt_cost: int = Field(
        default=12,
        ge=10,
        le=16,
        description=(
            "bcrypt cost (log2 rounds) of new password hashes, made in the database by "
            "pgcrypto (`python -m store users add/passwd`); 12 takes about 0.3 s per check. "
            "Existing hashes keep their cost until the password is set again."
        ),
    )
    audit_retention_days: int = Field(
        default=180,
        ge=180,
        description=(
            "Audit log rows older than this are purged by `python -m store users purge-audit`; "
            "at least 180 days (six months, MLPS 2.0 level 3)."
        ),
    )


@lru_cache(maxsize=1)
def get_access_settings() -> AccessSettings:
    """Read the access settings from the environment once per process."""
    return AccessSettings()
