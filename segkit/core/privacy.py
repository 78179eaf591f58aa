"""Privacy for shared reports: pseudonymised customer ids and small-cell suppression.

Where ids are real and where they are pseudonyms: the analyst's own notebooks in JupyterLab
(interactive mode, ``reports/interactive/``) and the local artifacts (``customer_segments.csv``, the
Parquet files) keep the real ids, so a customer can be looked up; everything a ``segkit run`` makes
to be shared — the executed notebooks, their HTML reports and ``index.html`` — shows pseudonyms
(with ``privacy.pseudonymize_ids``, the default). Tables are displayed through
:func:`shareable_table`, which pseudonymises when it is told the table is for sharing; the report
export then replaces any raw id left in the HTML (``segkit.report.export.IdRedactor``).

Examples
--------
>>> pseudonymize_ids(pd.Series(["A1", "A1", "B2"]), salt="s").tolist()
['c-1fb5d75d8a', 'c-1fb5d75d8a', 'c-fccebb2417']
>>> t = pd.DataFrame({"segment": ["x", "y", "z"], "customers": [50, 6, 4]})
>>> suppress_small_groups(t, "customers", min_cell_size=10, label_column="segment")["segment"].tolist()
['x', 'Other (2 groups under 10)']
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from segkit.core.config import project_root

__all__ = ["ID_COLUMNS", "SALT_ENV", "salt_file", "salt_for", "pseudonymize_ids", "suppress_small_groups",
    "shareable_table"]

ID_COLUMNS: tuple[str, ...] = ("customer_id",)
SALT_ENV = "SEGKIT_SALT"


def salt_file() -> Path:
    """The project's secret salt file (``.segkit/salt``, git-ignored)."""
    return project_root() / ".segkit" / "salt"


def salt_for(config: Mapping) -> str:
    """The secret salt of the pseudonyms.

    In order: the ``SEGKIT_SALT`` environment variable; ``privacy.salt`` of the config; a random
    secret kept in ``.segkit/salt`` of the project, created on first use. The salt is never
    written into a run folder, so a shared report cannot be de-pseudonymised by hashing candidate
    ids (customer ids are often sequential).
    """
    env = os.environ.get(SALT_ENV)
    if env:
        return env
    configured = (config.get("privacy") or {}).get("salt")
    if configured:
        return str(configured)
    path = salt_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(16))
    return path.read_text().strip()


def pseudonymize_ids(ids: pd.Series, salt: str) -> pd.Series:
    """Replace ids by stable salted hashes (``c-`` + 10 hex digits of SHA-256(salt + id)).

    The same id and salt always give the same pseudonym, so reports of two runs can be compared;
    without the salt the pseudonym cannot be reversed by hashing candidate ids.
    """
    def one(value: object) -> object:
        if pd.isna(value):
            return value
        return "c-" + hashlib.sha256(f"{salt}\x1f{value}".encode()).hexdigest()[:10]

    return ids.map(one).astype("string")


def suppress_small_groups(
    table: pd.DataFrame,
    count_column: str,
    min_cell_size: int,
    label_column: str | None = None,
) -> pd.DataFrame:
    """Merge rows with fewer than ``min_cell_size`` customers into one "Other" row.

    Counts (and other integer columns) of the merged rows are summed; other numeric columns
    become NaN (their mix cannot be recovered honestly). If the merged row itself is still under
    the threshold it is dropped. ``label_column`` (default: the index) carries the "Other" label.
    """
    if min_cell_size <= 1 or table.empty:
        return table
    small = table[count_column] < min_cell_size
    if not small.any():
        return table
    keep, merged = table[~small], table[small]
    if merged[count_column].sum() < min_cell_size:
        return keep
    label = f"Other ({int(small.sum())} groups under {min_cell_size})"
    row = {}
    for col in table.columns:
        if col == label_column:
            row[col] = label
        elif pd.api.types.is_integer_dtype(table[col]) and not pd.api.types.is_bool_dtype(table[col]):
            row[col] = merged[col].sum()
        elif pd.api.types.is_numeric_dtype(table[col]):
            row[col] = np.nan
        else:
            row[col] = pd.NA
    other = pd.DataFrame([row], columns=table.columns)
    if label_column is None:
        other.index = [label]
    out = pd.concat([keep, other.astype({c: keep[c].dtype for c in keep.columns if pd.api.types.is_integer_dtype(keep[c])}, errors="ignore")])
    return out if label_column is None else out.reset_index(drop=True)


def shareable_table(
    table: pd.DataFrame,
    config: dict,
    count_column: str | None = None,
    label_column: str | None = None,
    shared: bool = True,
) -> pd.DataFrame:
    """What may be shown: small groups merged; in what is shared, ids pseudonymised (per config).

    Parameters
    ----------
    table : DataFrame
        A table about to be displayed.
    config : dict
        The run configuration (``privacy`` section: ``pseudonymize_ids``, ``salt`` (see
        :func:`salt_for`),
        ``min_cell_size``).
    count_column : str, optional
        Column with the number of customers per row; given, small rows are merged.
    label_column : str, optional
        Column naming the group (default: the index).
    shared : bool
        The table is for a shared output (a ``segkit run``'s notebooks and reports): ids are
        pseudonymised when ``privacy.pseudonymize_ids`` is on. False for the analyst's own
        notebook in JupyterLab: real ids, so that a customer can be looked up.

    Examples
    --------
    >>> t = pd.DataFrame({"customer_id": ["C1"], "customers": [12]})
    >>> shareable_table(t, {"privacy": {"salt": "s"}})["customer_id"].str.startswith("c-").tolist()
    [True]
    >>> shareable_table(t, {"privacy": {"salt": "s"}}, shared=False)["customer_id"].tolist()
    ['C1']
    """
    privacy = config.get("privacy") or {}
    out = table.copy()
    if shared and privacy.get("pseudonymize_ids", True):
        salt = salt_for(config)
        for col in ID_COLUMNS:
            if col in out.columns:
                out[col] = pseudonymize_ids(out[col], salt)
        if out.index.name in ID_COLUMNS:
            out.index = pd.Index(pseudonymize_ids(out.index.to_series(), salt), name=out.index.name)
    if count_column is not None:
        out = suppress_small_groups(out, count_column, int(privacy.get("min_cell_size", 10)), label_column)
    return out
