"""What the campaign evaluation reads of its per-recipient rows, as partial sums that merge exactly.

:func:`evaluation_parts` turns prepared campaign rows (:func:`segkit.campaign.prepare.prepare_campaign`'s
columns plus one label column per segment dimension) into an :class:`EvaluationParts`: the cell sums of
every dimension (:func:`segkit.campaign.metrics.cell_sums`), the rows, the distinct customers, the unknown
retention flags and each campaign's first send time. Parts of disjoint rows merge
(:meth:`EvaluationParts.merge`) into the parts of all the rows, bit for bit, so the one-machine evaluation
applies :func:`evaluation_parts` to the whole table and Spark to each partition
(:mod:`segkit.steps.spark_campaign`); :func:`segkit.campaign.evaluate.evaluate_parts` reads only the merged
parts (bounded: campaigns × segments × arms per dimension).

The distinct customers add up only when every customer's rows are in one part (Spark partitions the rows
by ``customer_id``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from segkit.campaign.metrics import CELL_KEYS, EXACT_COLUMNS, cell_sums, empty_cell_sums, merge_cell_sums
from segkit.campaign.prepare import segment_column

__all__ = ["EvaluationParts", "evaluation_parts", "NO_DIMENSION"]

#: The dimension under which every recipient is in the segment "All customers".
NO_DIMENSION = "none"


def _empty_firsts() -> pd.DataFrame:
    return pd.DataFrame({"campaign_id": pd.Series([], dtype=str), "sent_at": pd.Series([], dtype="datetime64[ns]")})


@dataclass
class EvaluationParts:
    """The evaluation's sums over a part of the prepared campaign rows (:func:`evaluation_parts`).

    Attributes
    ----------
    cells : DataFrame
        ``segment_by`` (a dimension, or ``"none"``) and :func:`segkit.campaign.metrics.cell_sums`' columns.
    rows : int
        Campaign rows (customer × campaign assignments).
    customers : int
        Distinct customers (additive when each customer's rows are in one part).
    retention_unknown : int
        Rows whose retention flag is unknown (NaN).
    first_sent : DataFrame
        ``campaign_id, sent_at``: each campaign's earliest send time in the part (NaT when none).
    """

    cells: pd.DataFrame = field(default_factory=lambda: empty_cell_sums().assign(segment_by=pd.Series([], dtype=str)))
    rows: int = 0
    customers: int = 0
    retention_unknown: int = 0
    first_sent: pd.DataFrame = field(default_factory=_empty_firsts)

    @classmethod
    def merge(cls, parts: Sequence["EvaluationParts"]) -> "EvaluationParts":
        """The parts of all the rows of ``parts`` (disjoint rows; customers disjoint for ``customers``).

        Examples
        --------
        >>> from segkit.campaign import prepare_campaign
        >>> prep = prepare_campaign(pd.DataFrame({"campaign_id": "c", "customer_id": list("abcd"),
        ...     "arm": ["email", "control"] * 2, "revenue": [0.1, 0.2, 0.3, 0.0]}))
        >>> whole = evaluation_parts(prep, [])
        >>> merged = EvaluationParts.merge([evaluation_parts(prep.iloc[:3], []), evaluation_parts(prep.iloc[3:], [])])
        >>> merged == whole
        True
        """
        frames = [p.cells for p in parts if len(p.cells)]
        cells = [merge_cell_sums([f[f["segment_by"] == dim] for f in frames]).assign(segment_by=dim)
                 for dim in sorted({d for f in frames for d in f["segment_by"]})]
        firsts = [p.first_sent for p in parts if len(p.first_sent)]
        first = (pd.concat(firsts, ignore_index=True).groupby("campaign_id", sort=True)["sent_at"].min().reset_index()
                 if firsts else _empty_firsts())
        return cls(cells=pd.concat(cells, ignore_index=True) if cells else cls().cells,
                   rows=sum(p.rows for p in parts), customers=sum(p.customers for p in parts),
                   retention_unknown=sum(p.retention_unknown for p in parts),
                   first_sent=first.astype({"campaign_id": str}))

    def cells_of(self, dimension: str) -> pd.DataFrame:
        """The cell sums of one dimension (``"none"``: everybody in "All customers")."""
        return self.cells[(self.cells["segment_by"] == dimension).to_numpy()].drop(columns="segment_by").reset_index(
            drop=True)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EvaluationParts):
            return NotImplemented
        return (self.to_json() == other.to_json())

    def to_json(self) -> str:
        """The parts as JSON text (exact sums as whole numbers; send times as ISO text): what a Spark
        partition sends to the driver (:meth:`from_json`)."""
        cells = self.cells.sort_values(["segment_by", *CELL_KEYS], kind="mergesort")
        first = self.first_sent.sort_values("campaign_id", kind="mergesort")
        return json.dumps({
            "cells": {c: [int(v) if c not in (*CELL_KEYS, "segment_by") else str(v) for v in cells[c]]
                      for c in cells.columns},
            "rows": int(self.rows), "customers": int(self.customers), "retention_unknown": int(self.retention_unknown),
            "first_sent": {"campaign_id": [str(v) for v in first["campaign_id"]],
                           "sent_at": [None if pd.isna(v) else pd.Timestamp(v).isoformat() for v in first["sent_at"]]}},
            sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "EvaluationParts":
        """The parts written by :meth:`to_json`."""
        data = json.loads(text)
        template = cls().cells
        cells = pd.DataFrame({c: pd.Series(data["cells"].get(c, []), dtype=object) for c in template.columns})
        cells = cells.astype({c: template[c].dtype for c in template.columns if c not in EXACT_COLUMNS})
        first = pd.DataFrame({"campaign_id": pd.Series(data["first_sent"]["campaign_id"], dtype=str),
                              "sent_at": pd.to_datetime(pd.Series(data["first_sent"]["sent_at"], dtype=object))
                              .astype("datetime64[ns]")})
        return cls(cells=cells, rows=data["rows"], customers=data["customers"],
                   retention_unknown=data["retention_unknown"], first_sent=first)


def evaluation_parts(rows: pd.DataFrame, dimensions: Sequence[str]) -> EvaluationParts:
    """The evaluation's sums over ``rows``: prepared campaign rows (:func:`segkit.campaign.prepare.prepare_campaign`,
    with ``retained``) and, for each of ``dimensions``, a column of that name with each row's segment label
    (:func:`segkit.campaign.prepare.segment_labels`). The dimension ``"none"`` (everybody in "All customers")
    is always added.

    Examples
    --------
    >>> from segkit.campaign import prepare_campaign
    >>> prep = prepare_campaign(pd.DataFrame({"campaign_id": "c", "customer_id": list("abc"),
    ...     "arm": ["email", "email", "control"], "converted": [1, 0, 0]})).assign(tier=["x", "y", "x"])
    >>> parts = evaluation_parts(prep, ["tier"])
    >>> parts.cells[["segment_by", "segment", "arm", "customers"]]
      segment_by        segment      arm  customers
    0       tier              x  control          1
    1       tier              x    email          1
    2       tier              y    email          1
    3       none  All customers  control          1
    4       none  All customers    email          2
    >>> parts.rows, parts.customers
    (3, 3)
    """
    cells = []
    for dim in dict.fromkeys([*dimensions, NO_DIMENSION]):
        labels = rows[dim].to_numpy(dtype=object) if dim != NO_DIMENSION else None
        frame = rows.assign(segment=segment_column(labels, len(rows)))
        cells.append(cell_sums(frame).assign(segment_by=dim))
    sent = (pd.to_datetime(rows["sent_at"], errors="coerce") if "sent_at" in rows.columns
            else pd.Series(pd.NaT, index=rows.index, dtype="datetime64[ns]"))
    if isinstance(sent.dtype, pd.DatetimeTZDtype):  # the local send time (its day cuts the segments), not UTC's
        sent = sent.dt.tz_localize(None)
    first = sent.groupby(rows["campaign_id"].astype(str).to_numpy(), sort=True).min()
    first = pd.DataFrame({"campaign_id": first.index.astype(str), "sent_at": first.to_numpy(dtype="datetime64[ns]")})
    retained = rows["retained"].to_numpy(dtype=float) if "retained" in rows.columns else np.zeros(0)
    return EvaluationParts(cells=pd.concat(cells, ignore_index=True), rows=len(rows),
                           customers=int(rows["customer_id"].nunique()),
                           retention_unknown=int(np.isnan(retained).sum()), first_sent=first)
