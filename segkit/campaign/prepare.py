"""Input preparation of the campaign evaluation: each recipient's segment as of the send, the
retention flag after it, and the campaign rows as a tidy frame of flags and segment codes.

Segments use only order lines dated strictly before a campaign's day of sending
(:func:`send_dates`); the send histories and the retention flags are queries of the relational
core (:mod:`segkit.data.relational`), run on :class:`segkit.data.engine.OrderLines` (a frame in
memory or the clean files).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from segkit.campaign.settings import ALL_SEGMENTS, FLAG_COLUMNS, SEGMENT_DIMENSIONS, UNLABELLED
from segkit.core.errors import ConfigError, DataError, format_rows
from segkit.core.schema import BOOLEAN_FALSE, BOOLEAN_TRUE
from segkit.data.engine import OrderLines
from segkit.data.orders import RFMWarning
from segkit.data.relational import OrderLineTables
from segkit.features import customer_table
from segkit.lifecycle import purchase_history
from segkit.rfm import RFMScorer, to_five_point

__all__ = [
    "segment_labels", "retention_flags", "NO_PURCHASE", "send_dates", "send_table", "rfm_segments_as_of",
    "rfm_segments", "send_scorer", "rfm_segments_scored", "lifecycle_stages_as_of", "lifecycle_stages",
    "lifecycle_stages_staged", "segments_at_send", "segment_column", "prepare_campaign", "CampaignFacts",
    "CampaignProblem", "campaign_facts", "check_campaign_table", "first_sends", "CAMPAIGN_CHECKS", "KEY_COLUMNS",
    "send_labels", "send_table_of", "cluster_names",
]


# ============================================================================ input preparation
#: The key columns every campaign row needs (text, compared stripped).
KEY_COLUMNS: tuple[str, ...] = ("campaign_id", "customer_id", "arm")
#: The checks of the campaign rows, in the order they are reported (:meth:`CampaignFacts.error`): an
#: empty key, a customer twice in a campaign, a flag that is not yes/no, an amount that is not a number.
CAMPAIGN_CHECKS: tuple[tuple[str, str], ...] = (
    *(("empty", column) for column in KEY_COLUMNS), ("repeated", "customer_id"),
    *(("flag", column) for column in FLAG_COLUMNS), ("number", "revenue"), ("number", "cost"))
#: Offending rows a message names (:func:`segkit.core.errors.format_rows`' limit).
SHOWN_ROWS = 5


def _flag_values(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A flag column as floats 1/0/NaN, and where it holds something else (neither a flag nor empty)."""
    if pd.api.types.is_bool_dtype(values):
        out = values.astype("boolean").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        return out, np.zeros(len(out), dtype=bool)
    if pd.api.types.is_numeric_dtype(values):
        out = values.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        bad = ~np.isnan(out) & ~np.isin(out, (0.0, 1.0))
    else:
        text = values.astype("string").str.strip().str.lower()
        out = np.where(text.isin(BOOLEAN_TRUE).fillna(False).to_numpy(dtype=bool), 1.0,
                       np.where(text.isin(BOOLEAN_FALSE).fillna(False).to_numpy(dtype=bool), 0.0, np.nan))
        bad = (text.notna() & (text != "")).to_numpy(dtype=bool) & np.isnan(out)
    return out, bad


def _numeric_values(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """An amount column as floats (NaN = empty), and where it holds something that is not a number."""
    out = pd.to_numeric(values, errors="coerce").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    return out, np.isnan(out) & values.notna().to_numpy(dtype=bool)


@dataclass(frozen=True)
class CampaignProblem:
    """Rows that fail one check of :data:`CAMPAIGN_CHECKS`: the first of them (0-based row numbers of the whole
    campaign file, ascending, at most :data:`SHOWN_ROWS`), how many fail, and what the message quotes of the
    first (a cell's value, or the repeated customer and campaign)."""

    rows: tuple[int, ...]
    total: int
    example: str


def _merge_problems(problems: Sequence[CampaignProblem]) -> CampaignProblem:
    first = min(problems, key=lambda p: p.rows[0])
    rows = tuple(sorted(r for p in problems for r in p.rows)[:SHOWN_ROWS])
    return CampaignProblem(rows, sum(p.total for p in problems), first.example)


@dataclass
class CampaignFacts:
    """What the campaign rows tell before they are prepared (:func:`campaign_facts`); the facts of disjoint
    parts of the rows merge (:meth:`merge`) into those of all of them, so that Spark checks the rows per
    partition (every customer's rows in one) and reports what the one-machine check reports.

    Attributes
    ----------
    rows : int
        Campaign rows.
    problems : dict of int to CampaignProblem
        Index of a failed check in :data:`CAMPAIGN_CHECKS` -> its rows.
    revenue_recorded : dict of str to bool
        Campaign (stripped id) -> whether some row has a non-zero, valid amount: a campaign without one does not
        record revenue (:func:`prepare_campaign`).
    first_sent : dict of str to Timestamp or None
        Campaign -> its earliest ``sent_at`` (None when it has none; :func:`first_sends`).
    """

    rows: int = 0
    problems: dict[int, CampaignProblem] = field(default_factory=dict)
    revenue_recorded: dict[str, bool] = field(default_factory=dict)
    first_sent: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def merge(cls, parts: Sequence["CampaignFacts"]) -> "CampaignFacts":
        """The facts of all the rows of ``parts`` (disjoint rows; a customer's rows of a campaign in one part)."""
        problems: dict[int, list[CampaignProblem]] = {}
        recorded: dict[str, bool] = {}
        first: dict[str, Any] = {}
        for part in parts:
            for check, problem in part.problems.items():
                problems.setdefault(check, []).append(problem)
            for campaign_id, flag in part.revenue_recorded.items():
                recorded[campaign_id] = recorded.get(campaign_id, False) or flag
            for campaign_id, sent in part.first_sent.items():
                known = [t for t in (first.get(campaign_id), sent) if t is not None and not pd.isna(t)]
                first[campaign_id] = min(known) if known else None
        return cls(rows=sum(p.rows for p in parts),
                   problems={c: _merge_problems(found) for c, found in sorted(problems.items())},
                   revenue_recorded=dict(sorted(recorded.items())), first_sent=dict(sorted(first.items())))

    def error(self, source: str) -> DataError | None:
        """The DataError of the first failed check (in the order of :data:`CAMPAIGN_CHECKS`), or None."""
        if not self.problems:
            return None
        check = min(self.problems)
        kind, column = CAMPAIGN_CHECKS[check]
        problem = self.problems[check]
        at = format_rows(problem.rows, total=problem.total)
        if kind == "empty":
            return DataError(f"{source}: column '{column}' is empty at {at}. Every campaign row needs a campaign, a "
                             "customer and an arm: fill or drop these rows.")
        if kind == "repeated":
            return DataError(f"{source}: {problem.example} ({at}). Keep one row per customer and campaign (a customer "
                             "belongs to one arm).")
        if kind == "flag":
            return DataError(f"{source}: column '{column}' has values that are not yes/no flags at {at} "
                             f"(e.g. {problem.example}). Use true/false, 1/0 or yes/no (empty = not observed).")
        return DataError(f"{source}: column '{column}' has values that are not numbers at {at} "
                         f"(e.g. {problem.example}). Fix these cells (amounts without currency signs).")

    def first_sends(self) -> pd.Series:
        """:func:`first_sends` of all the rows (by campaign, sorted)."""
        return pd.to_datetime(pd.Series(list(self.first_sent.values()), index=list(self.first_sent), dtype=object,
                                        name="sent_at"))

    def to_json(self) -> str:
        """The facts as JSON text (what a Spark partition sends to the driver: :meth:`from_json`)."""
        return json.dumps({
            "rows": int(self.rows),
            "problems": {str(c): [list(p.rows), int(p.total), p.example] for c, p in self.problems.items()},
            "revenue_recorded": {k: bool(v) for k, v in self.revenue_recorded.items()},
            "first_sent": {k: None if v is None or pd.isna(v) else pd.Timestamp(v).isoformat()
                           for k, v in self.first_sent.items()}}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CampaignFacts":
        """The facts written by :meth:`to_json`."""
        data = json.loads(text)
        return cls(rows=int(data["rows"]),
                   problems={int(c): CampaignProblem(tuple(rows), int(total), example)
                             for c, (rows, total, example) in data["problems"].items()},
                   revenue_recorded=dict(data["revenue_recorded"]),
                   first_sent={k: None if v is None else pd.Timestamp(v) for k, v in data["first_sent"].items()})


def _campaign_values(frame: pd.DataFrame, numbers: np.ndarray | None = None) -> tuple[dict[str, Any], CampaignFacts]:
    """The columns :func:`prepare_campaign` reads, as codes and floats, and the rows' :class:`CampaignFacts`
    (``numbers``: each row's 0-based number in the whole file; default its position in ``frame``)."""
    numbers = np.arange(len(frame), dtype=np.int64) if numbers is None else np.asarray(numbers, dtype=np.int64)
    problems: dict[int, CampaignProblem] = {}

    def note(kind: str, column: str, bad: np.ndarray, example: Any) -> None:
        if bad.any():
            at = np.flatnonzero(bad)
            at = at[np.argsort(numbers[at], kind="stable")]
            problems[CAMPAIGN_CHECKS.index((kind, column))] = CampaignProblem(
                tuple(int(n) for n in numbers[at[:SHOWN_ROWS]]), len(at), example(int(at[0])))

    values: dict[str, Any] = {}
    for column in KEY_COLUMNS:
        values[column] = _key_codes(frame[column])
        note("empty", column, values[column][0] < 0, lambda i: "")
    (campaigns, campaign_names), (customers, customer_names) = values["campaign_id"], values["customer_id"]
    keyed = (campaigns >= 0) & (customers >= 0)
    key = np.where(keyed, campaigns * (int(customers.max(initial=0)) + 1) + customers, -1 - np.arange(len(frame)))
    note("repeated", "customer_id", pd.Series(key).duplicated(keep=False).to_numpy() & keyed,
         lambda i: f"customer {str(customer_names[customers[i]])!r} appears more than once in campaign "
                   f"{str(campaign_names[campaigns[i]])!r}")
    for column in FLAG_COLUMNS:
        if column in frame.columns:
            values[column], bad = _flag_values(frame[column])
            note("flag", column, bad, lambda i, c=column: repr(frame[c].iloc[i]))
    for column in ("revenue", "cost"):
        if column in frame.columns:
            values[column], bad = _numeric_values(frame[column])
            note("number", column, bad, lambda i, c=column: repr(frame[c].iloc[i]))
    revenue = values.get("revenue", np.full(len(frame), np.nan))
    valid = np.where(revenue < 0, 0.0, np.nan_to_num(revenue))
    named = campaigns >= 0
    names = pd.Series(campaign_names, dtype=object)
    recorded = pd.Series(valid[named] != 0).groupby(campaigns[named], sort=True).any()
    sent = first_sends(frame)
    facts = CampaignFacts(rows=len(frame), problems=dict(sorted(problems.items())),
                          revenue_recorded={str(names[c]): bool(v) for c, v in recorded.items()},
                          first_sent={str(k): None if pd.isna(v) else pd.Timestamp(v) for k, v in sent.items()})
    return values, facts


def campaign_facts(campaign: pd.DataFrame, numbers: np.ndarray | Sequence[int] | None = None) -> CampaignFacts:
    """The :class:`CampaignFacts` of campaign rows: failed checks, revenue recorded and first send per campaign.

    Parameters
    ----------
    campaign : DataFrame
        Campaign rows (:func:`prepare_campaign`'s input), all of them or a part holding every row of its
        customers.
    numbers : array of int, optional
        Each row's 0-based number in the whole campaign file (default: its position in ``campaign``).

    Examples
    --------
    >>> camp = pd.DataFrame({"campaign_id": "c", "customer_id": ["a", "b", "a"], "arm": "email",
    ...                      "revenue": [0.0, 5.0, 1.0]})
    >>> facts = campaign_facts(camp.iloc[[0, 2]], numbers=[0, 2])
    >>> print(facts.error("campaign.csv"))  # doctest: +ELLIPSIS
    campaign.csv: customer 'a' appears more than once in campaign 'c' (rows 2, 4). Keep one row per customer ...
    >>> campaign_facts(camp.iloc[[1]], numbers=[1]).revenue_recorded
    {'c': True}
    """
    return _campaign_values(campaign.reset_index(drop=True), None if numbers is None else np.asarray(numbers))[1]


def check_campaign_table(columns: Sequence[str], rows: int, source: str) -> None:
    """Refuse campaign rows without the key columns or without any row (``source`` names the table)."""
    missing = [c for c in KEY_COLUMNS if c not in columns]
    if missing:
        raise DataError(f"{source}: required column(s) {', '.join(map(repr, missing))} missing (columns present: "
                        f"{', '.join(map(str, columns)) or 'none'}). Map them under columns.campaign in "
                        "the config.")
    if rows == 0:
        raise DataError(f"{source}: the campaign table has no rows. Check the campaign file (data.campaign).")


def segment_labels(customer_ids: pd.Series, labels: pd.DataFrame | None, dimension: str,
                   source: str = "customer_segments.csv", campaign_ids: pd.Series | None = None) -> pd.Series:
    """Segment label of each customer in ``customer_ids`` (``"unlabelled"`` when missing).

    ``dimension = "none"`` gives every customer the segment ``"All customers"``. When
    ``labels`` has a ``campaign_id`` column (labels as of each send, :func:`segments_at_send`),
    a row is looked up by campaign and customer (``campaign_ids`` aligned with ``customer_ids``).

    Examples
    --------
    >>> labels = pd.DataFrame({"customer_id": ["a", "b"], "rfm_segment": ["Champions", None]})
    >>> segment_labels(pd.Series(["a", "b", "z"]), labels, "rfm_segment").tolist()
    ['Champions', 'unlabelled', 'unlabelled']
    """
    ids = customer_ids.astype("string")
    if dimension == "none":
        return pd.Series(ALL_SEGMENTS, index=customer_ids.index, dtype="string")
    if labels is None or dimension not in labels.columns:
        have = [c for c in SEGMENT_DIMENSIONS if labels is not None and c in labels.columns]
        raise DataError(f"{source}: no column '{dimension}' to segment the campaign by (segment dimensions "
                        f"present: {', '.join(have) or 'none'}). Run the notebook that writes it "
                        f"({ {'rfm_segment': '02_rfm', 'cluster_name': '03_clustering', 'lifecycle_stage': '04_lifecycle'}[dimension] }) "
                        "or set segment_by to one that is present (or 'none').")
    if "customer_id" not in labels.columns:
        raise DataError(f"{source}: column 'customer_id' is missing; the file must have one row per customer.")
    per_send = "campaign_id" in labels.columns and campaign_ids is not None
    keyed = labels[["customer_id", dimension]].copy()
    keyed["customer_id"] = keyed["customer_id"].astype("string")
    if per_send:
        keyed["customer_id"] = labels["campaign_id"].astype("string").str.strip() + "\x1f" + keyed["customer_id"]
        ids = campaign_ids.astype("string").str.strip() + "\x1f" + ids.str.strip()
    dup = keyed["customer_id"].duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        raise DataError(f"{source}: customer ids repeat at {format_rows(rows)} "
                        f"(e.g. {keyed['customer_id'].iloc[rows[0]]!r}). It must have one row per customer: "
                        "rebuild it by rerunning the segmentation notebooks.")
    lookup = pd.Series(keyed[dimension].astype("string").to_numpy(), index=keyed["customer_id"].to_numpy())
    out = pd.Series(lookup.reindex(ids.to_numpy()).to_numpy(), index=customer_ids.index, dtype="string")
    out = out.str.strip()
    return out.mask(out.isna() | (out == ""), UNLABELLED)


def retention_flags(campaign: pd.DataFrame, transactions: "pd.DataFrame | OrderLines", days: int,
                    as_of: str | pd.Timestamp | None = None) -> pd.Series:
    """1.0 when the customer made a purchase within ``days`` after the send, else 0.0; NaN if unknown.

    A purchase is an order with the purchase flag of :func:`segkit.data.orders.order_table`
    (net amount > 0, not only returns), dated after ``sent_at`` and no later than ``sent_at +
    days`` (:data:`segkit.data.relational.RETENTION`). Rows without ``sent_at`` (a holdout is
    often not stamped) use their campaign's first send time; a campaign without any ``sent_at``
    is NaN, as is every row whose window ends after ``as_of`` (default: the day after the last
    purchase): its outcome is not known yet, and counting only those who already bought would
    bias retention upwards. Lines without a customer id (guest checkouts) are left out.

    ``transactions`` is the order lines (a frame) or :class:`segkit.data.engine.OrderLines`
    (e.g. the run's clean file).

    Examples
    --------
    >>> camp = pd.DataFrame({"campaign_id": ["c"] * 3, "customer_id": ["a", "b", "c"],
    ...                      "sent_at": pd.to_datetime(["2024-01-01", None, "2024-01-20"])})
    >>> tx = pd.DataFrame({"customer_id": ["a", "b"], "order_id": ["1", "2"],
    ...                    "order_date": pd.to_datetime(["2024-01-05", "2024-02-20"]), "amount": [5.0, 9.0]})
    >>> retention_flags(camp, tx, days=30, as_of="2024-02-10").tolist()
    [1.0, 0.0, nan]
    """
    return order_lines(transactions, drop_guests=True).retention_flags(campaign, days, as_of)


def order_lines(transactions: "pd.DataFrame | OrderLineTables", drop_guests: bool = False) -> OrderLineTables:
    """``transactions`` as :class:`segkit.data.engine.OrderLines` (a frame is wrapped, lines without a
    customer id left out when ``drop_guests``); order lines on any engine (an
    :class:`~segkit.data.relational.OrderLineTables`: DuckDB's or Spark's) are used as they are."""
    if isinstance(transactions, OrderLineTables):
        return transactions
    if drop_guests and "customer_id" in transactions:
        transactions = transactions[transactions["customer_id"].notna().to_numpy()]
    return OrderLines(transactions)


# ============================================================================ segments as of each send
NO_PURCHASE = "no purchase before send"


def send_dates(campaign: pd.DataFrame) -> pd.Series:
    """Segmentation date of each campaign: the day of its earliest ``sent_at`` (midnight).

    Segments use only data *strictly before* this day, so that nothing the e-mail caused (a
    purchase on the send day included) can shape the segment a recipient is counted in.
    NaT for a campaign without any send time.

    Examples
    --------
    >>> camp = pd.DataFrame({"campaign_id": ["a", "a", "b"],
    ...                      "sent_at": pd.to_datetime(["2024-03-02 09:00", "2024-03-01 18:00", None])})
    >>> send_dates(camp).dt.strftime("%Y-%m-%d").tolist()
    ['2024-03-01', nan]
    """
    return first_sends(campaign).dt.normalize().rename("send_date")


def first_sends(campaign: pd.DataFrame) -> pd.Series:
    """The earliest ``sent_at`` of each campaign (index: the stripped campaign ids, sorted; NaT for a campaign
    without any send time): the send time of its rows without one (:func:`retention_flags`), and, as a day,
    its segmentation date (:func:`send_dates`)."""
    ids = campaign["campaign_id"].astype("string").str.strip()
    sent = (pd.to_datetime(campaign["sent_at"], errors="coerce") if "sent_at" in campaign.columns
            else pd.Series(pd.NaT, index=campaign.index, dtype="datetime64[ns]"))
    return sent.groupby(ids.to_numpy(), sort=True).min()


def send_table(campaign: pd.DataFrame) -> pd.DataFrame:
    """The dated sends of ``campaign``: ``campaign_id, send_date`` (:func:`send_dates`), what the send queries
    of the relational core read (:data:`segkit.data.relational.RFM_AT_SEND` and friends)."""
    return _sends(send_dates(campaign))


def send_table_of(first_sent: pd.Series) -> pd.DataFrame:
    """:func:`send_table` from each campaign's first send time (:func:`first_sends`, or
    :meth:`CampaignFacts.first_sends` of parts of the rows)."""
    return _sends(first_sent.dt.normalize())


def _sends(days: pd.Series) -> pd.DataFrame:
    """The ``sends`` relation of the send queries: ``campaign_id, send_date`` (dated sends only)."""
    days = days.dropna()
    return pd.DataFrame({"campaign_id": pd.array(days.index.astype(str), dtype="string"),
                         "send_date": days.to_numpy(dtype="datetime64[ns]")})


def _per_send(table: pd.DataFrame, campaign_id: str) -> pd.DataFrame:
    """The rows of a send query's result for one campaign, without the send columns."""
    rows = table[(table["campaign_id"] == campaign_id).to_numpy()]
    return rows.drop(columns=["campaign_id"]).reset_index(drop=True)


def rfm_segments_as_of(transactions: "pd.DataFrame | OrderLines", as_of: pd.Timestamp, rfm_settings: Any) -> pd.Series:
    """RFM segment of every buyer with purchases strictly before ``as_of`` (index ``customer_id``).

    The RFM table is computed on the lines before ``as_of`` (:data:`segkit.data.relational.RFM_AT_SEND`)
    and the scorer is **refitted** on
    that base (the same ``bins``, monetary column and segment map as notebook 02): a score is a
    customer's rank among the customers known at the send, which is what the marketer saw then.
    Applying the run's edges instead would score every early campaign's recipients low on
    frequency and spend only because their history was shorter.

    Examples
    --------
    >>> from segkit.rfm import RFMSettings
    >>> tx = pd.DataFrame({"customer_id": list("aabbc"), "order_id": list("12345"),
    ...     "order_date": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01", "2024-02-02", "2024-05-02"]),
    ...     "amount": [50.0, 60.0, 20.0, 25.0, 5.0]})
    >>> rfm_segments_as_of(tx, pd.Timestamp("2024-04-01"), RFMSettings.from_config(None)).to_dict()
    {'a': 'Potential Loyalist', 'b': 'About To Sleep'}
    """
    day = pd.Series([pd.Timestamp(as_of)], index=["as_of"])
    return rfm_segments(_per_send(order_lines(transactions).rfm_at_send(_sends(day)), "as_of"), rfm_settings)


def rfm_segments(rfm: pd.DataFrame, rfm_settings: Any) -> pd.Series:
    """RFM segments of the customers of an RFM table, scored among themselves (index ``customer_id``)."""

    if rfm.empty:
        return pd.Series([], dtype="string", name="rfm_segment")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RFMWarning)
        scorer = send_scorer(rfm_settings).fit(rfm)
    return rfm_segments_scored(rfm, scorer, rfm_settings)


def send_scorer(rfm_settings: Any) -> RFMScorer:
    """The RFM scorer refitted at each send (:func:`rfm_segments`): notebook 02's ``bins`` and monetary column."""
    return RFMScorer(bins=rfm_settings.bins, monetary_col=rfm_settings.monetary_column)


def rfm_segments_scored(rfm: pd.DataFrame, scorer: RFMScorer, rfm_settings: Any) -> pd.Series:
    """RFM segments of the customers of ``rfm`` by a scorer fitted on their send's base (all of it:
    :func:`rfm_segments`, or its value distributions on Spark), index ``customer_id``; any part of the base
    gets its customers' labels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RFMWarning)
        scores = scorer.transform(rfm)
    five = [to_five_point(scores[c], rfm_settings.bins) for c in ("r_score", "f_score", "m_score")]
    names = rfm_settings.segments.assign(*five).to_numpy()
    return pd.Series(names, index=pd.Index(rfm["customer_id"].astype("string").to_numpy(), name="customer_id"),
                     dtype="string", name="rfm_segment")


def lifecycle_stages_as_of(transactions: "pd.DataFrame | OrderLines", as_of: pd.Timestamp, lifecycle_settings: Any) -> pd.Series:
    """Lifecycle stage of every buyer with purchases strictly before ``as_of`` (index ``customer_id``).

    The stager of notebook 04 (same ``lifecycle`` settings) is fitted on the purchase days of
    the lines before ``as_of`` (:data:`segkit.data.relational.PURCHASE_DAYS_AT_SEND`) and stages are assigned as of that day. The BG/NBD P(alive) rule is not
    applied: the run's BG/NBD model is fitted on purchases after the send.

    Examples
    --------
    >>> from segkit.core.config import load_config
    >>> from segkit.lifecycle import LifecycleSettings
    >>> tx = pd.DataFrame({"customer_id": list("aabc"), "order_id": list("1234"),
    ...     "order_date": pd.to_datetime(["2023-01-01", "2024-03-01", "2024-03-20", "2024-05-02"]),
    ...     "amount": 10.0})
    >>> lifecycle_stages_as_of(tx, pd.Timestamp("2024-04-01"), LifecycleSettings.from_config(load_config()["lifecycle"])).to_dict()
    {'a': 'reactivated', 'b': 'new'}
    """
    day = pd.Series([pd.Timestamp(as_of)], index=["as_of"])
    days = _per_send(order_lines(transactions).purchase_days_at_send(_sends(day)), "as_of")
    return lifecycle_stages(days, as_of, lifecycle_settings)


def lifecycle_stages(orders: pd.DataFrame, as_of: pd.Timestamp, lifecycle_settings: Any) -> pd.Series:
    """Lifecycle stages as of ``as_of`` from the purchase orders or days before it (index ``customer_id``)."""

    if orders.empty:
        return pd.Series([], dtype="string", name="lifecycle_stage")
    history = purchase_history(orders)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stager = lifecycle_settings.stager().fit(history, as_of)
    return lifecycle_stages_staged(history, stager, as_of)


def lifecycle_stages_staged(history: pd.DataFrame, stager: Any, as_of: pd.Timestamp) -> pd.Series:
    """Lifecycle stages as of ``as_of`` of the customers of ``history`` (:func:`segkit.lifecycle.purchase_history`
    of their purchase days before it) by a stager fitted on all the send's buyers (:func:`lifecycle_stages`, or
    its distributions on Spark); index ``customer_id``. Any part of the buyers gets its customers' stages."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stages = stager.predict(history, as_of)["lifecycle_stage"]
    return pd.Series(stages.astype("string").to_numpy(), index=pd.Index(stages.index.astype("string"),
                     name="customer_id"), dtype="string", name="lifecycle_stage")


def segments_at_send(campaign: pd.DataFrame, transactions: "pd.DataFrame | OrderLines", dimensions: Sequence[str],
                     *, rfm_settings: Any = None, lifecycle_settings: Any = None, cluster_model: Any = None,
                     customers: pd.DataFrame | None = None, control_arm: str | None = "control",
                     max_channels: int = 6, given: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Segment labels of every campaign recipient as of the day of that campaign's first send.

    One row per campaign row: ``campaign_id, customer_id`` and one column per dimension of
    ``dimensions`` (``rfm_segment`` via :func:`rfm_segments_as_of`, ``lifecycle_stage`` via
    :func:`lifecycle_stages_as_of`, ``cluster_name`` = ``cluster_model`` — the run's fitted
    feature builder + clusterer, :class:`segkit.cluster.SegmentModel` — applied to the customer
    table built from data before the send, :func:`segkit.features.customer_table`; its e-mail
    features count only earlier campaigns). Recipients without a purchase before the send are
    the segment ``"no purchase before send"`` in every dimension. Campaigns without a send
    date cannot be segmented without hindsight: their labels are ``"unlabelled"``. ``transactions``
    is the clean order lines, as a frame or :class:`segkit.data.engine.OrderLines` (the run's clean
    file, never loaded). The RFM bases and purchase days of all sends are one query each
    (:data:`segkit.data.relational.RFM_AT_SEND`, :data:`~segkit.data.relational.PURCHASE_DAYS_AT_SEND`);
    the scorer and the stager are refitted per send. ``given`` holds, per dimension, labels at each send
    computed elsewhere (``campaign_id, customer_id, label`` of the buyers before each send, e.g. on Spark:
    :mod:`segkit.steps.spark_campaign`; at least the recipients): used instead of refitting here.

    Examples
    --------
    >>> from segkit.rfm import RFMSettings
    >>> camp = pd.DataFrame({"campaign_id": ["c", "c", "c"], "customer_id": ["a", "b", "z"],
    ...     "arm": ["email", "control", "email"], "sent_at": pd.to_datetime(["2024-04-01 09:00"] * 3)})
    >>> tx = pd.DataFrame({"customer_id": list("aabz"), "order_id": list("1234"),
    ...     "order_date": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01", "2024-04-01"]),
    ...     "amount": 10.0})
    >>> segments_at_send(camp, tx, ["rfm_segment"], rfm_settings=RFMSettings.from_config(None))
      campaign_id customer_id              rfm_segment
    0           c           a                Champions
    1           c           b           About To Sleep
    2           c           z  no purchase before send
    """
    lines = order_lines(transactions)
    ids = campaign["campaign_id"].astype("string").str.strip()
    cust = campaign["customer_id"].astype("string").str.strip()
    out = pd.DataFrame({"campaign_id": ids.to_numpy(), "customer_id": cust.to_numpy()})
    for dim in dimensions:
        out[dim] = pd.array([UNLABELLED] * len(out), dtype="string")
    unknown = [d for d in dimensions if d not in SEGMENT_DIMENSIONS]
    if unknown:
        raise ConfigError(f"Unknown segment dimension {unknown[0]!r}; use one of {', '.join(SEGMENT_DIMENSIONS)}.")
    dates = send_dates(campaign)
    sent = pd.to_datetime(campaign["sent_at"], errors="coerce") if "sent_at" in campaign.columns else None
    sends = _sends(dates)
    given = dict(given or {})
    refit = [d for d in dimensions if d not in given]
    rfm_at_send = lines.rfm_at_send(sends) if "rfm_segment" in refit and len(sends) else None
    days_at_send = lines.purchase_days_at_send(sends) if "lifecycle_stage" in refit and len(sends) else None
    for cid, day in dates.dropna().items():
        rows = (ids == cid).to_numpy()
        who = cust[rows].to_numpy()
        for dim in dimensions:
            if dim in given:
                found = _per_send(given[dim], cid)
                lab = pd.Series(found["label"].astype("string").to_numpy(),
                                index=pd.Index(found["customer_id"].astype("string").to_numpy(), name="customer_id"))
            elif dim == "rfm_segment":
                lab = rfm_segments(_per_send(rfm_at_send, cid), rfm_settings)
            elif dim == "lifecycle_stage":
                lab = lifecycle_stages(_per_send(days_at_send, cid), day, lifecycle_settings)
            else:
                lab = _clusters_as_of(lines, day, cluster_model, customers, campaign, sent, control_arm,
                                      max_channels)
            out.loc[rows, dim] = send_labels(lab.reindex(who), np.ones(len(who), dtype=bool))
    return out


def send_labels(found: pd.Series, dated: np.ndarray) -> np.ndarray:
    """Recipients' labels at their campaign's send (:func:`segments_at_send`) from ``found``, their labels among
    the buyers before the send (missing: no purchase before it), and ``dated``, whether their campaign has a
    send time: ``found``, else :data:`NO_PURCHASE`; ``"unlabelled"`` in a campaign without a send time.

    Examples
    --------
    >>> send_labels(pd.Series(["Champions", None, None]), np.array([True, True, False])).tolist()
    ['Champions', 'no purchase before send', 'unlabelled']
    """
    labels = found.astype("string").fillna(NO_PURCHASE).to_numpy(dtype=object)
    return np.where(np.asarray(dated, dtype=bool), labels, UNLABELLED).astype(object)


def _clusters_as_of(lines: OrderLines, day: pd.Timestamp, model: Any, customers: pd.DataFrame | None,
                    campaign: pd.DataFrame, sent: pd.Series | None, control_arm: str | None,
                    max_channels: int) -> pd.Series:
    """Cluster names of buyers before ``day`` from the fitted ``model`` (features as of ``day``)."""
    if model is None or not lines.has_purchase_before(day):
        return pd.Series([], dtype="string", name="cluster_name")
    earlier = campaign[(sent < day).to_numpy()] if sent is not None else campaign.iloc[:0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        behaviour = lines.behaviour(day, max_channels)
        table = customer_table(None, customers, earlier if len(earlier) else None, day,
                               control_arm=control_arm or "control", max_channels=max_channels, behaviour=behaviour)
    return cluster_names(model, table)


def cluster_names(model: Any, table: pd.DataFrame) -> pd.Series:
    """Cluster names the fitted ``model`` (:class:`segkit.cluster.SegmentModel`) gives the customers of a customer
    table as of a send (:func:`segkit.features.customer_table`; all of it, or a part: Spark's partitions), index
    ``customer_id``. Features the table lacks (before the first campaign nobody has e-mail features) are missing,
    imputed by the fitted builder."""
    used = [*getattr(model.builder, "numeric_features_", []), *getattr(model.builder, "categorical_features_", [])]
    for col in used:
        if col not in table.columns:
            table[col] = np.nan
    names = model.predict_names(table)
    ids = table["customer_id"].astype("string").to_numpy() if "customer_id" in table.columns else names.index
    return pd.Series(names.to_numpy(), index=pd.Index(ids, name="customer_id"), dtype="string", name="cluster_name")


def _key_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of stripped text keys (-1 = missing/empty) and the sorted unique names."""
    raw_codes, uniques = pd.factorize(values, use_na_sentinel=True)
    names = pd.Series(pd.Index(uniques).astype(str), dtype="string").str.strip()
    names = names.mask(names == "")
    name_codes, name_uniques = pd.factorize(names, use_na_sentinel=True)
    order = np.argsort(np.asarray(name_uniques, dtype=object).astype(str), kind="stable")
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    mapped = np.where(name_codes >= 0, rank[np.maximum(name_codes, 0)] if len(rank) else -1, -1)
    out = np.where(raw_codes >= 0, mapped[np.maximum(raw_codes, 0)] if len(mapped) else -1, -1)
    return out.astype(np.int64), np.asarray(name_uniques, dtype=object)[order].astype(str)


def segment_column(segments: Any, n: int) -> pd.Categorical:
    """Segment labels as a Categorical (``"All customers"`` for all when None, missing → ``"unlabelled"``)."""
    if segments is None:
        return pd.Categorical.from_codes(np.zeros(n, np.int64), categories=[ALL_SEGMENTS])
    codes, names = _key_codes(pd.Series(np.asarray(segments, dtype=object)).fillna(UNLABELLED))
    if (codes < 0).any():  # empty text labels
        names = np.append(names, UNLABELLED) if UNLABELLED not in names else names
        codes = np.where(codes < 0, int(np.flatnonzero(names == UNLABELLED)[0]), codes)
    return pd.Categorical.from_codes(codes, categories=names)


def prepare_campaign(campaign: pd.DataFrame, segments: pd.Series | None = None,
                     retained: pd.Series | None = None, source: str = "campaign_clean",
                     revenue_recorded: Mapping[str, bool] | None = None) -> pd.DataFrame:
    """Check a canonical campaign frame and return the per-customer frame the statistics use.

    Columns: ``campaign_id, arm, segment`` (strings), flags ``delivered, opened, clicked,
    converted, unsubscribed, retained`` as 1.0/0.0/NaN (NaN = not observed; an absent
    ``delivered`` column means delivered), ``revenue`` (missing → 0 in a campaign that records
    revenue; NaN throughout a campaign without any non-zero amount: revenue not recorded; a
    negative amount is invalid → NaN, unknown, left out of the revenue metrics) and
    ``cost`` (NaN = not given). ``revenue_recorded`` (campaign -> whether it records revenue, from
    :func:`campaign_facts` of all the rows) prepares a part of the rows as they are prepared in the whole;
    default: the rows of ``campaign`` decide.

    Raises
    ------
    DataError
        Missing ``campaign_id``/``customer_id``/``arm`` (column or values), repeated
        customer per campaign, flags or amounts that cannot be read; the message names the
        column and rows (the first failed check of :data:`CAMPAIGN_CHECKS`).

    Examples
    --------
    >>> camp = pd.DataFrame({"campaign_id": ["c", "c"], "customer_id": ["a", "b"], "arm": ["email", "control"],
    ...                      "converted": ["yes", "no"], "revenue": [12.0, None]})
    >>> prepare_campaign(camp)[["arm", "delivered", "converted", "revenue"]]
           arm  delivered  converted  revenue
    0    email        1.0        1.0     12.0
    1  control        1.0        0.0      0.0
    """
    check_campaign_table(list(campaign.columns), len(campaign), source)
    frame = campaign.reset_index(drop=True)
    values, facts = _campaign_values(frame)
    error = facts.error(source)
    if error is not None:
        raise error
    out = pd.DataFrame(index=frame.index)
    for column in KEY_COLUMNS:
        codes, names = values[column]
        if column == "customer_id":
            out[column] = pd.array(names.take(codes), dtype="string")
        else:
            out[column] = pd.Categorical.from_codes(codes, categories=names)
    out["segment"] = segment_column(segments, len(frame))
    for column in FLAG_COLUMNS:
        out[column] = values[column] if column in frame.columns else (1.0 if column == "delivered" else np.nan)
    out["retained"] = (np.asarray(retained, dtype=float) if retained is not None else np.nan)
    revenue = values.get("revenue", np.full(len(frame), np.nan))
    # a negative revenue is invalid (the audit reports it): unknown, left out of the revenue metrics
    invalid = revenue < 0
    valid = np.where(invalid, 0.0, np.nan_to_num(revenue))
    # a campaign "records revenue" when some row has a non-zero amount (all 0 = not recorded)
    recorded = facts.revenue_recorded if revenue_recorded is None else revenue_recorded
    campaigns, campaign_names = values["campaign_id"]
    records = np.array([bool(recorded.get(str(name), False)) for name in campaign_names], dtype=bool)[campaigns] \
        if len(campaign_names) else np.zeros(len(frame), dtype=bool)
    out["revenue"] = np.where(records & ~invalid, valid, np.nan)
    out["cost"] = values["cost"] if "cost" in frame.columns else np.nan
    if "sent_at" in frame.columns:
        out["sent_at"] = pd.to_datetime(frame["sent_at"], errors="coerce")
    return out
