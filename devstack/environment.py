"""The environment the stack runs with: the real one, filled in from `.env`."""

from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values


def read_environment(real_env: Mapping[str, str], dotenv_path: Path) -> dict[str, str]:
    """Return `real_env` plus the variables of `dotenv_path` it does not already set.

    The real environment always wins, so `MONGODB_URI=... make run` works whatever
    `.env` says. A missing `.env` is fine; keys with no value (`FOO` alone) are ignored.
    """
    from_file = dotenv_values(dotenv_path) if dotenv_path.is_file() else {}
    merged = {key: value for key, value in from_file.items() if value is not None}
    merged.update(real_env)
    return merged
