"""QSettings in one place: organisation "NCSN Studio", application "ncsn-studio" (INI format everywhere,
so tests can redirect it with QSettings.setPath)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from PySide6.QtCore import QSettings

ORGANIZATION = "NCSN Studio"
APPLICATION = "ncsn-studio"
MAX_RECENT = 10


def settings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def get_list(key: str) -> List[str]:
    value = settings().value(key, [])
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value]


def push_recent(key: str, item: str, limit: int = MAX_RECENT) -> List[str]:
    """Move `item` to the front of the list stored under `key` (no duplicates, at most `limit`)."""
    items = [item] + [v for v in get_list(key) if v != item]
    items = items[:limit]
    settings().setValue(key, items)
    return items


def remove_from_list(key: str, item: str) -> None:
    settings().setValue(key, [v for v in get_list(key) if v != item])


def recent_checkpoints() -> List[str]:
    return [p for p in get_list("recent/checkpoints") if Path(p).exists()]


def add_recent_checkpoint(path: str) -> None:
    push_recent("recent/checkpoints", str(Path(path).resolve()))


def recent_runs() -> List[str]:
    return get_list("recent/runs")


def add_recent_run(path: str) -> None:
    push_recent("recent/runs", str(Path(path).resolve()))


def value(key: str, default=None, type_: Optional[type] = None):
    s = settings()
    if type_ is None:
        return s.value(key, default)
    v = s.value(key, default)
    try:
        if type_ is bool and isinstance(v, str):
            return v.lower() in ("1", "true", "yes")
        return type_(v)
    except (TypeError, ValueError):
        return default


def set_value(key: str, v) -> None:
    settings().setValue(key, v)


def runs_root() -> Path:
    """Where new training runs go (preference 'prefs/runs_root'; default ./runs)."""
    return Path(str(value("prefs/runs_root", str(Path.cwd() / "runs"))))


def reset() -> None:
    s = settings()
    s.clear()
    s.sync()
