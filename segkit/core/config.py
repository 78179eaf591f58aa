"""YAML configuration: defaults shipped with segkit, overridden by a user file.

Defaults live in ``segkit/defaults/``: ``config.yml`` holds the core sections (``run``,
``data``, ``columns``, ``io``, ``privacy``) and every other ``<section>.yml`` there becomes the
section of that name (``rfm``, ``lifecycle``, ...). A user config overrides any key (deep merge).

Examples
--------
>>> cfg = load_config()
>>> cfg["run"]["seed"]
42
>>> cfg = load_config(overrides={"run": {"seed": 7}})
>>> cfg["run"]["seed"]
7
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from segkit.core.errors import ConfigError

__all__ = ["DEFAULTS_PACKAGE", "project_root", "bundled_sample_config", "MAX_CONFIG_VALUES", "count_values",
    "short_repr", "deep_merge", "default_config", "load_config", "resolve_path", "section"]

DEFAULTS_PACKAGE = "segkit.defaults"


def project_root() -> Path:
    """The folder holding ``pyproject.toml`` of segkit (the package is installed editable)."""
    return Path(__file__).resolve().parents[2]


def bundled_sample_config() -> Path | None:
    """``data/configs/sample.yml``: the config used when none is given (the bundled sample with
    its documented design, e.g. the campaigns' planned control share). None if absent."""
    path = project_root() / "data" / "configs" / "sample.yml"
    return path if path.exists() else None


def _read_yaml(path: Path | Any, label: str) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"Config file {label} does not exist. Check the path given to --config.") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"Config file {label} is not valid YAML{where}: {getattr(exc, 'problem', exc)}. "
            "Check indentation (spaces, not tabs) and quoting."
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {label} must be a mapping of sections (run:, data:, ...), "
                          f"not a {type(data).__name__}.")
    if count_values(data, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
        raise ConfigError(
            f"Config file {label} holds more than {MAX_CONFIG_VALUES:,} values once its YAML aliases (*name) are "
            "expanded; a segkit config holds a few hundred. Write the values out instead of nesting aliases of "
            "anchored lists.")
    return data


#: Values (keys, items, scalars) a config file may hold with its YAML aliases expanded: a guard
#: against an alias bomb, whose expansion would take minutes and gigabytes in any message.
MAX_CONFIG_VALUES = 100_000


def count_values(data: Any, limit: int) -> int:
    """Number of values in ``data`` with shared (aliased) parts counted each time, stopping once
    past ``limit`` (so the cost is bounded whatever the expansion).

    Examples
    --------
    >>> lol = ["lol"] * 10
    >>> count_values({"a": [lol] * 10}, limit=1000)
    113
    >>> count_values({"a": [[lol] * 10] * 10}, limit=50)
    51
    """
    count, stack = 0, [data]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, Mapping):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set)):
            stack += item
    return count


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, without building the whole repr.

    Examples
    --------
    >>> short_repr([["lol"] * 9] * 9, limit=40)
    "[['lol', 'lol', 'lol', ...], ['lol', 'l…"
    >>> short_repr("../x")
    "'../x'"
    """
    import reprlib

    shortener = reprlib.Repr()
    shortener.maxlevel, shortener.maxlist, shortener.maxtuple, shortener.maxdict = 3, 3, 3, 3
    shortener.maxstring = shortener.maxother = max(10, limit // 2)
    text = shortener.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Return ``base`` updated recursively by ``override`` (neither is modified).

    Examples
    --------
    >>> deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}})
    {'a': {'b': 1, 'c': 3}}
    """
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def default_config() -> dict:
    """All shipped defaults, merged into one dict (paths relative to the project root)."""
    folder = resources.files(DEFAULTS_PACKAGE)
    cfg = _read_yaml(folder / "config.yml", "segkit/defaults/config.yml")
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yml") and entry.name != "config.yml":
            section = entry.name[: -len(".yml")]
            cfg[section] = _read_yaml(entry, f"segkit/defaults/{entry.name}")
    cfg["_base_dir"] = str(project_root())
    cfg["_source"] = None
    return cfg


def load_config(path: str | Path | None = None, overrides: Mapping | None = None) -> dict:
    """Load the defaults, then the user's YAML file, then ``overrides`` (e.g. CLI flags).

    Parameters
    ----------
    path : str or Path, optional
        User YAML file. Relative paths inside it are resolved against its folder.
    overrides : mapping, optional
        Nested values applied last (``{"run": {"as_of": "2024-01-01"}}``).

    Returns
    -------
    dict
        The merged configuration; ``cfg["_base_dir"]`` is the folder relative paths resolve in.

    Raises
    ------
    ConfigError
        Missing file, invalid YAML, or an unknown top-level section.
    """
    cfg = default_config()
    if path is not None:
        path = Path(path)
        user = _read_yaml(path, str(path))
        unknown = sorted(set(user) - set(cfg))
        if unknown:
            raise ConfigError(
                f"Config file {path}: unknown section(s) {', '.join(map(repr, unknown))}. "
                f"Known sections: {', '.join(sorted(k for k in cfg if not k.startswith('_')))}."
            )
        # A user config that names its own data must not silently inherit the bundled sample's
        # optional files: absent optional inputs mean "not provided".
        if "data" in user and isinstance(user["data"], Mapping):
            user = dict(user)
            user["data"] = {"transactions": None, "customers": None, "campaign": None, **user["data"]}
        cfg = deep_merge(cfg, user)
        cfg["_base_dir"] = str(path.resolve().parent)
        cfg["_source"] = str(path.resolve())
    if overrides:
        cfg = deep_merge(cfg, overrides)
    return cfg


def resolve_path(cfg: Mapping, value: str | Path | None) -> Path | None:
    """Resolve a path from the config against the config's folder (absolute paths kept)."""
    if value is None or value == "":
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(cfg["_base_dir"]) / p


def section(cfg: Mapping, name: str) -> dict:
    """A config section, or a clear error if it is missing."""
    try:
        return cfg[name]
    except KeyError:
        raise ConfigError(f"The configuration has no '{name}' section.") from None
