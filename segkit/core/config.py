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
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import unquote

import yaml

from segkit.core.errors import ConfigError

__all__ = ["DEFAULTS_PACKAGE", "project_root", "bundled_sample_config", "MAX_CONFIG_VALUES", "count_values",
    "short_repr", "deep_merge", "default_config", "load_config", "resolve_path", "TABLE_PREFIX",
    "source_scheme", "source_description", "file_uri_path", "local_path", "resolve_source", "data_source", "section",
    "spark_connect_refusal", "redacted_master"]

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


#: ``data.transactions`` naming a table of the Spark catalog rather than files (``table:catalog.schema.orders``).
TABLE_PREFIX = "table:"
# a URI: a scheme of two or more characters, a colon, a slash (``s3a://``, ``hdfs:///``, ``dbfs:/``, ``file:/``);
# one letter is a Windows drive (``C:/x``), and a colon without a slash is part of a file name (``a:b.csv``)
_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):/")
# the path of a file: URI naming a Windows drive: "/C:/…", "/C:" (RFC 8089, appendix E.2)
_WINDOWS_DRIVE = re.compile(r"/[A-Za-z]:(/|$)")


def source_scheme(value: Any) -> str | None:
    """How a ``data.*`` value names data that is not a local path: ``"table"`` for ``table:…``, the URI's
    scheme in lower case (``"s3a"``, ``"hdfs"``, ``"abfss"``, ``"file"``, …); None for a local path.

    Only text can be a table or a URI: a :class:`~pathlib.Path` is a local path.

    Examples
    --------
    >>> [source_scheme(v) for v in ("table:main.sales.orders", "S3A://lake/o/", "file:///d/o.csv", "dbfs:/mnt/o")]
    ['table', 's3a', 'file', 'dbfs']
    >>> [source_scheme(v) for v in ("orders.csv", "/d/*.parquet", "C:/d/o.csv", "shop:2024.csv", Path("s3a://x"), None)]
    [None, None, None, None, None, None]
    """
    if not isinstance(value, str):
        return None
    if value.startswith(TABLE_PREFIX):
        return "table"
    match = _URI.match(value)
    return match.group(1).lower() if match else None


def source_description(scheme: str) -> str:
    """How messages name a value whose :func:`source_scheme` is ``scheme``.

    Examples
    --------
    >>> source_description("table"), source_description("s3a")
    ('a table of the Spark catalog', 'a URI (s3a:)')
    """
    return "a table of the Spark catalog" if scheme == "table" else f"a URI ({scheme}:)"


def file_uri_path(uri: str) -> Path:
    """The local path a ``file:`` URI names: ``file:///d/o.csv``, ``file:/d/o.csv`` and
    ``file://localhost/d/o.csv`` are ``/d/o.csv`` (percent-escapes decoded; glob characters kept).

    Raises
    ------
    ConfigError
        The URI names another machine (``file://host/…``): a path there is not a file here.

    Examples
    --------
    >>> file_uri_path("file:///data/orders%202024/*.csv"), file_uri_path("file:/data/o.csv")
    (PosixPath('/data/orders 2024/*.csv'), PosixPath('/data/o.csv'))
    >>> str(file_uri_path("file:///C:/shop/o.csv")), str(file_uri_path("file:/d:/o.csv"))
    ('C:/shop/o.csv', 'd:/o.csv')
    """
    rest = uri.split(":", 1)[1]  # not urllib's parse: "?" and "#" are glob or name characters here
    if rest.startswith("//"):
        host, _, path = rest[2:].partition("/")
        if host not in ("", "localhost"):
            raise ConfigError(f"{uri} names a file on the machine {host!r}; a file: URI must name a file of this "
                              "machine (file:///path/to/file). Give the path as the machine running segkit sees it.")
        rest = "/" + path
    path = unquote(rest)
    # a Windows drive is written after the path's slash (file:///C:/d/o.csv): the path is C:/d/o.csv
    return Path(path[1:] if _WINDOWS_DRIVE.match(path) else path)


def local_path(value: str | Path | None) -> Path | None:
    """The local file, folder or glob a ``data.*`` value names (``~`` expanded, a ``file:`` URI's path), or
    None for no value, a table or another URI. Relative paths stay relative (see :func:`resolve_source`).

    Examples
    --------
    >>> local_path("file:///d/o.csv"), local_path("s3a://lake/o/"), local_path("table:orders"), local_path("o.csv")
    (PosixPath('/d/o.csv'), None, None, PosixPath('o.csv'))
    """
    if value is None or value == "":
        return None
    scheme = source_scheme(value)
    if scheme == "file":
        return file_uri_path(str(value))
    return None if scheme else Path(value).expanduser()


def resolve_source(cfg: Mapping, value: str | Path | None) -> str | Path | None:
    """A ``data.*`` value as a reader takes it: a table (``table:…``) or a URI (``s3a://…``) as written,
    a ``file:`` URI as its local path, a local path resolved against the config's folder (:func:`resolve_path`).

    Examples
    --------
    >>> cfg = {"_base_dir": "/shop"}
    >>> [resolve_source(cfg, v) for v in ("table:main.sales.orders", "s3a://lake/o/", "file:///d/o.csv", "o.csv")]
    ['table:main.sales.orders', 's3a://lake/o/', PosixPath('/d/o.csv'), PosixPath('/shop/o.csv')]
    """
    scheme = source_scheme(value)
    if scheme == "file":
        return local_path(value)
    return str(value) if scheme else resolve_path(cfg, value)


def data_source(cfg: Mapping, table: str, engine_kind: str, origin: str | None = None) -> str | Path | None:
    """``data.<table>`` of ``cfg`` as :func:`resolve_source` gives it, refused where it cannot be read.

    A table (``table:…``) or a URI (``s3a://``, ``hdfs://``, ``abfss://``, ``gs://``, ``file://``, …) is read
    only by Apache Spark (``engine.kind: spark``), for every input table (the order lines, which stay on the
    executors, and the customers and campaign tables, which Spark reads and collects to the driver:
    :func:`segkit.data.spark_audit.load_spark_table`); a ``file:`` URI is given as the local path it names
    (a file, a folder or a glob).

    Parameters
    ----------
    cfg : mapping
        A loaded config (:func:`load_config`).
    table : {"transactions", "customers", "campaign"}
        The input table.
    engine_kind : str
        ``engine.kind`` (``auto``, ``pandas``, ``duckdb``, ``spark``).
    origin : str, optional
        Where the value came from, for messages (default ``data.<table>``).

    Raises
    ------
    ConfigError
        A table or URI with an engine other than Spark (saying which key, what was given and what to do), or
        a table name that is empty or padded with spaces.

    Examples
    --------
    >>> cfg = {"_base_dir": "/shop", "data": {"transactions": "s3a://lake/orders/"}}
    >>> data_source(cfg, "transactions", "spark")
    's3a://lake/orders/'
    >>> data_source({"data": {"customers": "table:crm.customers"}}, "customers", "spark")
    'table:crm.customers'
    >>> data_source({"data": {"campaign": "table:crm.sends"}}, "campaign", "pandas")
    Traceback (most recent call last):
    ...
    segkit.core.errors.ConfigError: data.campaign = 'table:crm.sends' is a table of the Spark catalog, which segkit reads only with engine.kind: spark, but engine.kind is pandas. Set engine.kind: spark (README, "Running on a Spark cluster") to read it with Apache Spark, or copy the data here and give its local path.
    >>> data_source(cfg, "transactions", "duckdb")
    Traceback (most recent call last):
    ...
    segkit.core.errors.ConfigError: data.transactions = 's3a://lake/orders/' is a URI (s3a:), which segkit reads only with engine.kind: spark, but engine.kind is duckdb. Set engine.kind: spark (README, "Running on a Spark cluster") to read it with Apache Spark, or copy the data here and give its local path.
    """
    value = (cfg.get("data") or {}).get(table)
    scheme = source_scheme(value)
    where = origin or f"data.{table}"
    if scheme is None:
        return resolve_path(cfg, value)
    try:
        local = file_uri_path(str(value)) if scheme == "file" else None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    name = str(value)[len(TABLE_PREFIX):]
    if scheme == "table" and not name.strip():
        raise ConfigError(f"{where} = {value!r} names no table: write table:<name>, e.g. table:main.sales.orders.")
    if scheme == "table" and name != name.strip():
        raise ConfigError(f"{where} = {value!r}: a table name does not start or end with a space; write "
                          f"{TABLE_PREFIX}{name.strip()}.")
    what = source_description(scheme)
    if engine_kind != "spark":
        instead = f"give the path itself ({local})" if local else "copy the data here and give its local path"
        raise ConfigError(f"{where} = {value!r} is {what}, which segkit reads only with engine.kind: spark, but "
                          f"engine.kind is {engine_kind}. Set engine.kind: spark (README, \"Running on a Spark "
                          f"cluster\") to read it with Apache Spark, or {instead}.")
    if local is not None:  # a local file (or folder, glob), read as its path
        return local
    return str(value)


def section(cfg: Mapping, name: str) -> dict:
    """A config section, or a clear error if it is missing."""
    try:
        return cfg[name]
    except KeyError:
        raise ConfigError(f"The configuration has no '{name}' section.") from None


def spark_connect_refusal(master: str, keys: Iterable[str]) -> str | None:
    """Why ``engine.spark.conf`` cannot hold ``keys`` on ``master``: a Spark Connect client (``sc://``) sets only
    runtime ``spark.sql.*`` settings, the server fixed every other one when it started (and would ignore it);
    None when nothing is refused. One wording for the config check and the session.

    Examples
    --------
    >>> spark_connect_refusal("sc://h:15002", ["spark.sql.shuffle.partitions", "spark.executor.memory"])[:77]
    'engine.spark.conf: spark.executor.memory cannot be set from a Spark Connect c'
    >>> spark_connect_refusal("local[2]", ["spark.executor.memory"]) is None
    True
    """
    fixed = sorted(str(key) for key in keys if not str(key).startswith("spark.sql."))
    if not str(master).strip().startswith("sc://") or not fixed:
        return None
    return (f"engine.spark.conf: {', '.join(fixed)} cannot be set from a Spark Connect client "
            f"({redacted_master(str(master).strip())}): "
            "the server fixed it when it started. Set it on the Connect server (spark-submit --conf or its "
            "spark-defaults.conf) and remove it here; only runtime spark.sql.* settings can be set per session")


#: A secret parameter of a Spark Connect address (``;token=…``, ``;…secret…=``, ``;…password…=``) and its value.
_SECRET_PARAMETER = re.compile(r"(;[^;=/]*(?:token|secret|password)[^;=/]*=)[^;\s'\"]*", re.IGNORECASE)


def redacted_master(text: str) -> str:
    """``text`` (a Spark master, or a message naming one) with the values of a Spark Connect address's secret
    parameters (``;token=…``: Databricks' personal access token; any ``…secret…`` or ``…password…``) replaced by
    ``<redacted>``, so that ``run.json``, messages and the terminal never show a credential.

    Examples
    --------
    >>> redacted_master("sc://host:443/;token=dapi123;x-databricks-cluster-id=0123-456")
    'sc://host:443/;token=<redacted>;x-databricks-cluster-id=0123-456'
    >>> redacted_master("local[2]")
    'local[2]'
    """
    return _SECRET_PARAMETER.sub(r"\1<redacted>", str(text))
