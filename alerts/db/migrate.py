"""Apply Alembic migrations from code, wherever the package is installed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    """An Alembic config for `database_url`, found beside the sources or in the working dir."""
    for root in (_SOURCE_ROOT, Path.cwd()):
        ini = root / "alembic.ini"
        if ini.is_file() and (root / "alembic").is_dir():
            config = Config(str(ini))
            config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
            return config
    raise FileNotFoundError("alembic.ini and alembic/ not found beside the sources or in the cwd")


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at `database_url` to `revision`."""
    command.upgrade(alembic_config(database_url), revision)
