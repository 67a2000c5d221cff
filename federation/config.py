"""One configuration loader: `yinqi.toml` plus `YINQI_*` environment variables.

Precedence (highest first): environment variable, `yinqi.toml` (path in `YINQI_CONFIG`, else
`./yinqi.toml` when present), built-in default. Sections of the TOML file belong to the package
that reads them (`[chain]`, `[iot]`, `[bank]`, ...); `section()` hands one over as a dict.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from federation.errors import ConfigError

DEFAULT_DATA_DIR = ".yinqi"

# Every table and key yinqi.toml may hold: a misspelled one is an error, not silently ignored.
# A package that reads a new setting adds it here.
KNOWN_SETTINGS: dict[str, frozenset[str]] = {
    "yinqi": frozenset({"data_dir", "db_url"}),
    "bank": frozenset({"credit_policy"}),
    "chain": frozenset({"rpc", "persist", "mnemonic"}),
    # what an auditor trusts: the bank's AnchorRegistry, its anchoring account(s), the endpoint
    "audit": frozenset({"registry", "anchorer", "anchorers", "rpc"}),
}


@cache
def _load_file(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with open(path, "rb") as fh:
            document = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found (set by YINQI_CONFIG)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the configuration as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    _check_known(path, document)
    return document


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_known(path: str, document: dict[str, Any]) -> None:
    """Refuse tables and keys yinqi does not read, naming the closest known one."""
    for table, values in document.items():
        if table not in KNOWN_SETTINGS:
            raise ConfigError(
                f"{path}: unknown table [{table}]{_suggest(table, KNOWN_SETTINGS)}; known: {', '.join(sorted(KNOWN_SETTINGS))}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: [{table}] must be a table")
        for key in values:
            if key not in KNOWN_SETTINGS[table]:
                raise ConfigError(
                    f"{path}: [{table}] has unknown key '{key}'{_suggest(key, KNOWN_SETTINGS[table])}; "
                    f"known: {', '.join(sorted(KNOWN_SETTINGS[table]))}"
                )


def config_path() -> str | None:
    """The configuration file in force, or None when there is none."""
    explicit = os.environ.get("YINQI_CONFIG")
    if explicit:
        return explicit
    return "yinqi.toml" if Path("yinqi.toml").is_file() else None


def section(name: str) -> dict[str, Any]:
    """The `[name]` table of the configuration file ({} when absent)."""
    value = _load_file(config_path()).get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{config_path()}: [{name}] must be a table")
    return value


def setting(key: str, default: Any = None, *, section_name: str = "yinqi") -> Any:
    """A single setting: `YINQI_<KEY>` env var, else `[section] key` in the file, else default."""
    env = os.environ.get(f"YINQI_{key.upper()}")
    if env is not None:
        return env
    return section(section_name).get(key, default)


def data_dir() -> Path:
    """Where yinqi keeps its state (SQLite files, chain state, outboxes). Created on demand."""
    path = Path(setting("data_dir", DEFAULT_DATA_DIR)).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_url(name: str) -> str:
    """The SQLAlchemy URL of the database: `YINQI_DB_URL`, else a SQLite file in the data dir."""
    url = setting("db_url")
    if url:
        return str(url)
    return f"sqlite:///{data_dir() / (name + '.db')}"
