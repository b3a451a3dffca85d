"""Apply Alembic migrations from code, wherever the package is installed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from alerts.db.session import make_engine

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


def is_current(database_url: str) -> bool:
    """True when the database has every migration applied."""
    heads = set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads()) == heads
    finally:
        engine.dispose()
