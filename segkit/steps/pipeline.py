"""The run folder and the context every notebook works in.

A run folder ``reports/<run>/`` holds one run: executed notebooks, their HTML, ``index.html``,
``run.json``, ``summaries/`` (one JSON per notebook, read by the report builder) and
``artifacts/`` (the data contract between notebooks; file names and columns are fixed).

Notebooks open a :class:`RunContext` with :func:`open_run` from their ``parameters`` cell
values. Run by ``segkit run``, ``run_dir`` and ``config_path`` are given and a missing upstream
artifact is an error that names the notebook to run first. Opened alone (JupyterLab, plain
papermill, nbval) with ``run_dir=None``, the context works in ``reports/interactive/<notebook>/`` on the
configured data (the bundled sample by default) and builds missing upstream artifacts itself by
calling the producing module's ``build_*`` function.

Examples
--------
>>> ctx = open_run("02_rfm")                      # doctest: +SKIP
>>> transactions = ctx.read_artifact("transactions_clean")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from segkit.core.config import bundled_sample_config, load_config, project_root, resolve_source
from segkit.core.dates import parse_as_of
from segkit.core.errors import ConfigError, UpstreamMissingError
from segkit.core.escaping import escape_markdown
from segkit.core.files import atomic_write_text, dumps_json, folder_lock, parquet_parts, read_frame, write_frame
from segkit.core.progress import step_line
from segkit.core.schema import CAMPAIGN, CUSTOMERS
from segkit.steps.headline import headline_sentence
from segkit.steps.parameters import check_notebook_parameters, resolve_config_path

__all__ = ["open_run", "shareable", "show_summary", "dash_missing", "report_table", "RunContext", "NOTEBOOKS",
    "UPSTREAM", "ARTIFACTS", "CUSTOMER_SEGMENTS", "CUSTOMER_SEGMENTS_DATASET", "SPARK_SCORING_FOLDER",
    "SPARK_SCORING_FILES", "INTERACTIVE_RUN", "summary_markdown"]

NOTEBOOKS: tuple[str, ...] = (
    "01_data_audit",
    "02_rfm",
    "03_clustering",
    "04_lifecycle",
    "05_campaign_evaluation",
)

#: The notebooks whose artifacts each notebook reads. ``segkit run`` starts a notebook as soon as
#: these have finished, so 03_clustering and 04_lifecycle can run side by side
#: (``run.workers``); 05 reads the labels 02–04 wrote into ``customer_segments.csv``.
UPSTREAM: dict[str, tuple[str, ...]] = {
    "01_data_audit": (),
    "02_rfm": ("01_data_audit",),
    "03_clustering": ("01_data_audit", "02_rfm"),
    "04_lifecycle": ("01_data_audit", "02_rfm"),
    "05_campaign_evaluation": ("01_data_audit", "02_rfm", "03_clustering", "04_lifecycle"),
}


@dataclass(frozen=True)
class Artifact:
    """One file of ``artifacts/``: its name, which notebook writes it, which function builds it."""

    filename: str
    notebook: str
    producer: str  # "module:function", called with a RunContext
    optional: bool = False  # may legitimately be absent (e.g. no campaign file)


ARTIFACTS: dict[str, Artifact] = {
    "transactions_clean": Artifact("transactions_clean.parquet", "01_data_audit", "segkit.steps.audit:build_audit_artifacts"),
    "customers_clean": Artifact("customers_clean.parquet", "01_data_audit", "segkit.steps.audit:build_audit_artifacts"),
    "campaign_clean": Artifact("campaign_clean.parquet", "01_data_audit", "segkit.steps.audit:build_audit_artifacts", optional=True),
    "audit_summary": Artifact("audit_summary.json", "01_data_audit", "segkit.steps.audit:build_audit_artifacts"),
    "rfm": Artifact("rfm.parquet", "02_rfm", "segkit.steps.rfm:build_rfm_artifacts"),
    "clusters": Artifact("clusters.parquet", "03_clustering", "segkit.steps.cluster:build_cluster_artifacts"),
    "cluster_model": Artifact("cluster_model.json", "03_clustering", "segkit.steps.cluster:build_cluster_artifacts"),
    "lifecycle": Artifact("lifecycle.parquet", "04_lifecycle", "segkit.steps.lifecycle:build_lifecycle_artifacts"),
    "snapshots": Artifact("snapshots.parquet", "04_lifecycle", "segkit.steps.lifecycle:build_lifecycle_artifacts"),
    "cohorts": Artifact("cohorts.parquet", "04_lifecycle", "segkit.steps.lifecycle:build_lifecycle_artifacts"),
    "clv_model": Artifact("clv_model.json", "04_lifecycle", "segkit.steps.lifecycle:build_lifecycle_artifacts", optional=True),
    "campaign_results": Artifact("campaign_results.csv", "05_campaign_evaluation", "segkit.steps.campaign:build_campaign_artifacts", optional=True),
}

#: Canonical dtypes of the artifacts a Spark run writes as Parquet datasets (folders), for pandas readers.
DATASET_DTYPES: dict[str, dict[str, str]] = {"customers_clean": dict(CUSTOMERS.dtypes),
                                             "campaign_clean": dict(CAMPAIGN.known)}

CUSTOMER_SEGMENTS = "customer_segments.csv"
#: ``customer_segments`` as a Parquet dataset (a folder of parts in ``customer_id`` order), written by Spark
#: runs only (:mod:`segkit.steps.spark_scoring`); beside the CSV, or instead of it above ``CSV_MAX_ROWS``.
CUSTOMER_SEGMENTS_DATASET = "customer_segments.parquet"
#: Folder under ``artifacts/`` with what a Spark run's scoring reads beyond the artifacts, and its files
#: (:mod:`segkit.steps.spark_scoring`: the fitted RFM estimators, the stage thresholds, the lifecycle inputs).
SPARK_SCORING_FOLDER = "scoring"
SPARK_SCORING_FILES: tuple[str, ...] = ("rfm_model.json", "stage_thresholds.json", "lifecycle_inputs.parquet")
# Column order of customer_segments.csv (others are appended in alphabetical order), so that
# the file's bytes do not depend on which notebook ran first.
CUSTOMER_SEGMENT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    # 02_rfm
    "recency_days", "frequency", "monetary_total", "monetary_avg",
    "r_score", "f_score", "m_score", "rfm_segment", "tier", "recommended_action",
    # 03_clustering
    "cluster", "cluster_name",
    # 04_lifecycle
    "lifecycle_stage", "p_alive", "expected_purchases_90d", "clv_12m",
)

#: Money columns of customer_segments.csv, written rounded to cents (the Parquet artifacts keep full
#: precision for computation); predicted CLV columns (``clv_<months>m``) are money too.
CUSTOMER_SEGMENT_MONEY: tuple[str, ...] = ("monetary_total", "monetary_avg", "expected_order_value")

INTERACTIVE_RUN = "interactive"
#: Environment variable naming another folder for the interactive notebooks' runs (default
#: ``reports/interactive`` of the project), e.g. a writable place when the checkout is read-only.
INTERACTIVE_DIR_VARIABLE = "SEGKIT_INTERACTIVE_DIR"


def interactive_root() -> Path:
    """The folder holding one run folder per notebook opened in Jupyter (``open_run`` without ``run_dir``):
    ``$SEGKIT_INTERACTIVE_DIR`` when set, else ``reports/interactive`` of the project.

    Examples
    --------
    >>> import os
    >>> os.environ[INTERACTIVE_DIR_VARIABLE] = "/tmp/segkit-lab"
    >>> str(interactive_root())
    '/tmp/segkit-lab'
    >>> del os.environ[INTERACTIVE_DIR_VARIABLE]
    >>> interactive_root().parts[-2:]
    ('reports', 'interactive')
    """
    folder = os.environ.get(INTERACTIVE_DIR_VARIABLE, "").strip()
    return Path(folder) if folder else project_root() / "reports" / INTERACTIVE_RUN


def money_to_cents(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its money columns (:data:`CUSTOMER_SEGMENT_MONEY` and ``clv_<n>m``) rounded to
    cents: no float residue such as 4.547473509e-13 in an export, and no ``-0``.

    Examples
    --------
    >>> money_to_cents(pd.DataFrame({"monetary_total": [4.547473509e-13, 21.98666667, -0.001],
    ...                              "clv_12m": [170.407254, None, 1.005], "p_alive": [0.4740851317] * 3}))
       monetary_total  clv_12m   p_alive
    0            0.00   170.41  0.474085
    1           21.99      NaN  0.474085
    2            0.00     1.00  0.474085
    """
    money = [c for c in frame.columns if c in CUSTOMER_SEGMENT_MONEY or re.fullmatch(r"clv_\d+m", str(c))]
    if not money:
        return frame
    return frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce").round(2) + 0.0 for c in money})


@dataclass
class RunContext:
    """Where a notebook reads and writes, and with which configuration.

    Attributes
    ----------
    notebook : str
        Name of the notebook this context serves (``"02_rfm"``).
    run_dir : Path
        The run folder; artifacts are under ``run_dir / "artifacts"``.
    config : dict
        Merged configuration (see :mod:`segkit.core.config`).
    seed : int
        Seed for every random choice of the notebook.
    interactive : bool
        True when the notebook was opened alone: missing upstream artifacts are built in-process.
    parameters : dict
        The notebook's own knobs set in its parameters cell (not None), ``{section: {key: value}}``.
    config_path : Path, optional
        The config file the knobs override (None: segkit's defaults).
    """

    notebook: str
    run_dir: Path
    config: dict
    seed: int
    interactive: bool
    as_of_param: str | None = None
    parameters: dict = field(default_factory=dict)
    config_path: Path | None = None
    _summary: dict = field(default_factory=dict)

    # ----------------------------------------------------------------- paths and inputs
    @property
    def artifacts_dir(self) -> Path:
        return self.run_dir / "artifacts"

    def artifact_path(self, name: str) -> Path:
        if name == "customer_segments":
            return self.artifacts_dir / CUSTOMER_SEGMENTS
        try:
            return self.artifacts_dir / ARTIFACTS[name].filename
        except KeyError:
            raise ConfigError(f"Unknown artifact '{name}'. Known: {', '.join(sorted(ARTIFACTS))}.") from None

    def input_path(self, table: str) -> str | Path | None:
        """The user's input for ``table`` (transactions/customers/campaign) or None: a local path (a ``file:``
        URI's too), or a table (``table:…``) or other URI (``s3a://…``) as written
        (:func:`segkit.core.config.resolve_source`)."""
        return resolve_source(self.config, self.config.get("data", {}).get(table))

    def section(self, name: str) -> dict:
        """Config section ``name`` (``{}`` when absent)."""
        return dict(self.config.get(name) or {})

    @property
    def as_of(self) -> pd.Timestamp | None:
        """Analysis date: the parameter, else the config, else the audit's (day after last order)."""
        value = self.as_of_param or self.config.get("run", {}).get("as_of")
        if value is None and self.artifact_path("audit_summary").exists():
            value = json.loads(self.artifact_path("audit_summary").read_text())["as_of"]
        if value is None:
            return None
        return parse_as_of(value)

    # ----------------------------------------------------------------- artifacts
    def has_artifact(self, name: str) -> bool:
        if name == "customer_segments" and not self.artifact_path(name).exists():
            return bool(parquet_parts(self.artifacts_dir / CUSTOMER_SEGMENTS_DATASET))
        return self.artifact_path(name).exists()

    def read_artifact(self, name: str, columns: Sequence[str] | None = None) -> Any:
        """Read an artifact (DataFrame for Parquet/CSV, dict for JSON).

        ``columns`` reads only those columns of a Parquet or CSV artifact, in the artifact's
        order; names the artifact does not have are left out (optional columns such as
        ``signup_date``). At millions of customers every column not read is memory saved.
        ``customer_segments`` without its CSV (a Spark run above ``CSV_MAX_ROWS`` customers) is read
        from the Parquet dataset ``customer_segments.parquet/``, its parts in name order: the same rows
        and columns, money rounded as in the CSV.

        Raises
        ------
        UpstreamMissingError
            When it is missing and the context is not interactive, naming the notebook to run.
        """
        path = self.artifact_path(name)
        if not path.exists() and self.interactive and name != "customer_segments":
            self.build_upstream(name)
        parts = parquet_parts(self.artifacts_dir / CUSTOMER_SEGMENTS_DATASET) \
            if name == "customer_segments" and not path.exists() else []
        if parts:
            import pyarrow.parquet as pq

            wanted = None if columns is None else [c for c in pq.read_schema(parts[0]).names if c in columns]
            return pd.concat([pd.read_parquet(part, columns=wanted) for part in parts], ignore_index=True) \
                .astype({"customer_id": "string"})
        if not path.exists():
            producer = ARTIFACTS[name].notebook if name in ARTIFACTS else "01_data_audit"
            raise UpstreamMissingError(
                f"{self.notebook} needs artifacts/{path.name}, which is missing in {self.run_dir}. "
                f"Run {producer} first (segkit run --only {producer} --out {self.run_dir}), "
                f"or run the whole pipeline with `segkit run`."
            )
        if path.suffix == ".parquet" and path.is_dir():  # a Spark run's dataset (customers_clean …): parts in name order
            import pyarrow.parquet as pq

            parts = parquet_parts(path)
            wanted = None if columns is None else [c for c in pq.read_schema(parts[0]).names if c in columns]
            frame = pd.concat([pd.read_parquet(part, columns=wanted) for part in parts], ignore_index=True)
            dtypes = DATASET_DTYPES.get(name, {})  # Spark keeps no pandas dtypes: the canonical ones again
            return frame.astype({c: t for c, t in dtypes.items() if c in frame.columns})
        if path.suffix == ".parquet":
            if columns is None:
                return pd.read_parquet(path)
            import pyarrow.parquet as pq

            wanted = set(columns)
            return pd.read_parquet(path, columns=[c for c in pq.read_schema(path).names if c in wanted])
        if path.suffix == ".csv":
            wanted = None if columns is None else set(columns)
            return read_frame(path, dtype={"customer_id": "string"},
                              usecols=None if wanted is None else (lambda c: c in wanted))
        return json.loads(path.read_text(encoding="utf-8"))

    def build_upstream(self, name: str) -> None:
        """Build artifact ``name`` in-process by calling its producer (interactive mode).

        Says so in one line per step while a person watches (:func:`segkit.core.progress.step_line`).
        """
        art = ARTIFACTS[name]
        module_name, func_name = art.producer.split(":")
        producer = getattr(importlib.import_module(module_name), func_name)
        upstream = RunContext(
            notebook=art.notebook, run_dir=self.run_dir, config=self.config, seed=self.seed,
            interactive=True, as_of_param=self.as_of_param,
        )
        with step_line(f"{self.notebook} needs artifacts/{self.artifact_path(name).name}: running the {art.notebook} step",
                       done=f"{art.notebook} done"):
            producer(upstream)

    def write_artifact(self, name: str, obj: Any) -> Path:
        """Write an artifact atomically (DataFrame → Parquet/CSV by name, dict → JSON). A Spark run's dataset
        of the same artifact (a folder, :data:`DATASET_DTYPES`) in this run folder is replaced by the file."""
        path = self.artifact_path(name)
        if name in DATASET_DTYPES and path.is_dir():  # written by a Spark run into this run folder
            shutil.rmtree(path)
        if isinstance(obj, pd.DataFrame):
            write_frame(path, obj)
        else:
            atomic_write_text(path, dumps_json(obj))
        return path

    # ----------------------------------------------------------------- customer_segments.csv
    def remove_customer_segments(self) -> None:
        """Remove ``customer_segments.csv`` and what a Spark run keeps of it: the Parquet dataset and the
        per-customer scoring inputs (``artifacts/scoring/``). A stale copy must not be read by a later notebook."""
        self.artifact_path("customer_segments").unlink(missing_ok=True)
        self._remove_spark_segments()

    def _remove_spark_segments(self) -> None:
        for folder in (self.artifacts_dir / CUSTOMER_SEGMENTS_DATASET, self.artifacts_dir / SPARK_SCORING_FOLDER):
            if folder.is_dir():
                shutil.rmtree(folder)

    def update_customer_segments(self, columns: pd.DataFrame) -> pd.DataFrame:
        """Add or replace columns of ``artifacts/customer_segments.csv``.

        ``columns`` has ``customer_id`` plus the new columns. Rows are the union of customers
        already in the file and in ``columns``; columns it brings replace same-named ones.
        The file is sorted by ``customer_id`` with a fixed column order, written atomically.
        The read-modify-write holds a lock on ``artifacts/``, because notebooks that do not
        depend on each other (03 and 04) run side by side and both add columns; the result does
        not depend on which one writes first.

        In a folder a Spark run wrote (``engine.kind`` changed since), the file starts from the Parquet
        dataset when there is no CSV (above ``CSV_MAX_ROWS``), and a notebook's columns written here
        remove the dataset and ``artifacts/scoring/``: Spark's copies would describe the older columns
        (a later Spark notebook would rescore them from those inputs). Ids alone (01) leave them.
        """
        if "customer_id" not in columns.columns:
            raise ValueError("update_customer_segments needs a customer_id column")
        new = columns.copy()
        new["customer_id"] = new["customer_id"].astype("string")
        path = self.artifact_path("customer_segments")
        path.parent.mkdir(parents=True, exist_ok=True)
        with folder_lock(path.parent):
            merged = self._merge_customer_segments(path, new)
            if len(new.columns) > 1:
                self._remove_spark_segments()
            return merged

    def _merge_customer_segments(self, path: Path, new: pd.DataFrame) -> pd.DataFrame:
        if self.has_artifact("customer_segments"):  # the CSV, else a Spark run's dataset
            old = self.read_artifact("customer_segments")
            old = old.drop(columns=[c for c in new.columns if c != "customer_id" and c in old.columns])
            merged = old.merge(new, on="customer_id", how="outer")
        else:
            merged = new
        known = [c for c in CUSTOMER_SEGMENT_COLUMNS if c in merged.columns]
        extra = sorted(c for c in merged.columns if c not in CUSTOMER_SEGMENT_COLUMNS)
        merged = merged[known + extra].sort_values("customer_id", kind="mergesort").reset_index(drop=True)
        merged = money_to_cents(merged)
        write_frame(path, merged)
        return merged

    # ----------------------------------------------------------------- summary for reports
    def run_headline(self) -> dict[str, Any] | None:
        """The run's headline numbers: ``headline`` of ``artifacts/audit_summary.json``
        (:func:`segkit.audit.headline_numbers`), None when the audit has not written them (it
        failed, or the file predates them). Never builds anything."""
        path = self.artifact_path("audit_summary")
        if not path.exists():
            return None
        return json.loads(path.read_text()).get("headline")

    def record_summary(
        self,
        *,
        analysed: str,
        findings: list[str],
        actions: list[str],
        headlines: Mapping[str, Any] | None = None,
        warnings: list[str] | None = None,
        title: str | None = None,
    ) -> dict:
        """Store the notebook's executive summary (``summaries/<notebook>.json``).

        The report builder puts it at the top of the notebook's HTML and in ``index.html``.
        ``headlines`` are a few named numbers (``{"Customers": 4210}``), ``findings`` the 3–5
        statements that matter, ``actions`` what to do. The run's headline numbers
        (:meth:`run_headline`) are added under ``headline``, the same in every notebook's summary.
        """
        headline = self.run_headline()
        summary = {
            "notebook": self.notebook,
            "title": title or self.notebook,
            "analysed": analysed,
            "findings": list(findings),
            "actions": list(actions),
            "headlines": dict(headlines or {}),
            "warnings": list(warnings or []),
            **({"headline": headline} if headline is not None else {}),
        }
        atomic_write_text(self.run_dir / "summaries" / f"{self.notebook}.json", dumps_json(summary))
        self._summary = summary
        return summary


def readable_number(value: float) -> str:
    """Format a float for a report table: thousands separators, sensible precision.

    Examples
    --------
    >>> [readable_number(v) for v in (1934530.012, 873.4321, 0.003962, 0.0, 12.5)]
    ['1,934,530', '873.43', '0.00396', '0', '12.50']
    """
    if value != value:  # NaN
        return "–"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 1 or value == 0:
        return f"{value:,.2f}" if value != 0 else "0"
    return f"{value:.3g}"


def dash_missing(table: pd.DataFrame) -> pd.DataFrame:
    """A report table with every missing value shown as "–" (pandas prints ``NaN``/``<NA>``).

    Columns without missing values are left as they are; float columns with some are written
    with :func:`readable_number` (the notebooks' float format), so the shown numbers do not change.

    Examples
    --------
    >>> dash_missing(pd.DataFrame({"segment": ["A", pd.NA], "lift": [0.0123, float("nan")], "n": [12, 30]}))
      segment    lift   n
    0       A  0.0123  12
    1       –       –  30
    """
    out = table.copy()
    for col in out.columns:
        missing = out[col].isna()
        if not missing.any():
            continue
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].map(readable_number).astype(object)
        else:
            out[col] = out[col].astype(object).where(~missing, "–")
    return out


#: Columns a report table shows as percentages: shares and rates (fractions of 1) by their name.
PERCENT_COLUMN = re.compile(r"(^|_)(share|rate)(_|$)")


def percent_cell(value: float) -> str:
    """A fraction of 1 as a percentage: one decimal, two under 0.1 % (so a small share does not read as 0).

    Examples
    --------
    >>> [percent_cell(v) for v in (0.4312, 0.00396, 0.000402, 0.0, 1.0, float("nan"))]
    ['43.1%', '0.4%', '0.04%', '0%', '100%', '–']
    """
    if value != value:
        return "–"
    if value == 0 or abs(value) == 1:
        return f"{100 * value:.0f}%"
    return f"{100 * value:.2f}%" if abs(value) < 0.001 else f"{100 * value:.1f}%"


def report_table(table: pd.DataFrame, percent: Sequence[str] | None = None) -> pd.DataFrame:
    """A table as a report shows it: counts as whole numbers, shares and rates as percentages, days
    without a time as dates, missing values as "–"; the other numbers as the notebooks' float format
    (:func:`readable_number`).

    A float column whose values are all whole numbers (a count that became float through a missing
    value or a division) is shown without decimals ("1,713", not "1,713.00"). The percent columns —
    ``percent``, or when None those named like a share or rate (:data:`PERCENT_COLUMN`: ``share``,
    ``revenue_share``, ``rate_sent``, ``share_in_base``…) — with every value between 0 and 1 are shown
    in percent ("43.1%", not 0.431); pass ``percent=()`` for a table of ratios such as lifts. Only what
    is displayed changes: the data and the artifacts keep their values.

    Examples
    --------
    >>> t = pd.DataFrame({"segment": ["A", None], "customers": [1713.0, float("nan")], "share": [0.4312, 0.00396],
    ...                   "lift": [1.2345, 0.5], "n": [3, 4], "orders": pd.array([14849, None], dtype="Int64"),
    ...                   "first_date": pd.to_datetime(["2023-01-01", None])})
    >>> report_table(t).to_dict("list")  # doctest: +NORMALIZE_WHITESPACE
    {'segment': ['A', '–'], 'customers': ['1,713', '–'], 'share': ['43.1%', '0.4%'], 'lift': [1.2345, 0.5],
     'n': [3, 4], 'orders': ['14,849', '–'], 'first_date': ['2023-01-01', '–']}
    >>> report_table(t, percent=())["share"].tolist()  # a table of ratios: no column in percent
    [0.4312, 0.00396]
    """
    out = table.copy()
    for col in out.columns:
        values = out[col]
        if pd.api.types.is_datetime64_any_dtype(values) and values.dt.tz is None:
            days = bool((values.dropna() == values.dropna().dt.normalize()).all())
            shown = values.dt.strftime("%Y-%m-%d" if days else "%Y-%m-%d %H:%M")
            out[col] = shown.astype(object).where(values.notna(), "–")
            continue
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            if values.isna().any():
                out[col] = values.astype(object).where(values.notna(), "–")
            continue
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        known = numbers.dropna()
        whole = bool(len(known)) and bool((known == known.round()).all())
        named = PERCENT_COLUMN.search(str(col)) if percent is None else col in percent
        if named and len(known) and known.between(0, 1).all():
            out[col] = numbers.map(percent_cell).astype(object)
        elif whole and (pd.api.types.is_float_dtype(values) or values.isna().any()):
            out[col] = numbers.map(lambda v: "–" if v != v else f"{v:,.0f}").astype(object)
        elif values.isna().any():
            out[col] = numbers.map(readable_number).astype(object)
    return out


def set_display() -> None:
    """Notebook display options for report tables (called by :func:`open_run`, like the plot
    theme): readable floats, full text of messages, no wide-table wrapping."""
    pd.set_option("display.float_format", readable_number)
    pd.set_option("display.max_colwidth", 300)
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.width", 200)


def _interactive_fingerprint(cfg: Mapping) -> str:
    relevant = {k: cfg.get(k) for k in sorted(cfg) if not k.startswith("_")}
    inputs = {}
    for table in ("transactions", "customers", "campaign"):
        p = resolve_source(cfg, (cfg.get("data") or {}).get(table))  # a file: URI's local file; a table: text
        if isinstance(p, Path) and p.exists():
            st = p.stat()
            inputs[table] = [str(p), st.st_size, st.st_mtime_ns]
    blob = json.dumps({"config": relevant, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def open_run(
    notebook: str,
    run_dir: str | Path | None = None,
    config_path: str | Path | None = None,
    as_of: str | None = None,
    seed: int | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> RunContext:
    """Open the run context for a notebook from its ``parameters`` cell values.

    Parameters
    ----------
    notebook : str
        The notebook's name, one of :data:`NOTEBOOKS`.
    run_dir : str or Path, optional
        Run folder. None = interactive mode in ``reports/interactive/`` (upstream built on demand).
    config_path : str or Path, optional
        User YAML config; None = ``data/configs/sample.yml`` (the bundled sample).
    as_of : str, optional
        Analysis date ``YYYY-MM-DD``; None = config, else the day after the last order.
    seed : int, optional
        None = ``run.seed`` of the config.
    overrides : mapping, optional
        The notebook's own knobs as ``{section: {key: value}}``; None values are ignored
        (they mean "use the config").

    Returns
    -------
    RunContext
    """
    if notebook not in NOTEBOOKS:
        raise ConfigError(f"Unknown notebook '{notebook}'. Known: {', '.join(NOTEBOOKS)}.")
    from segkit.widgets.display import install_notebook_display

    install_notebook_display()  # in a kernel: brief SegkitError messages, tables that scroll sideways
    clean = {s: {k: v for k, v in (vals or {}).items() if v is not None} for s, vals in (overrides or {}).items()}
    config_path = bundled_sample_config() if config_path is None else resolve_config_path(config_path, notebook)
    check_notebook_parameters(notebook, clean, config_path, as_of=as_of, seed=seed)
    cfg = load_config(config_path, overrides=clean)
    if seed is None:
        seed = int(cfg["run"].get("seed", 42))
    interactive = run_dir is None
    if interactive:
        # One folder per notebook: notebooks opened (or regression-tested) side by side never
        # share, or race on, each other's artifacts.
        run_path = interactive_root() / notebook
        stamp = run_path / "artifacts" / ".fingerprint"
        # Only the user's config and inputs (not one notebook's knobs) decide whether cached
        # upstream artifacts are still valid.
        fingerprint = _interactive_fingerprint(load_config(config_path)) + f"|{as_of}|{seed}"

        if stamp.exists() and stamp.read_text() != fingerprint:
            for f in (run_path / "artifacts").glob("*"):
                if f.is_file():
                    f.unlink()
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)
    else:
        run_path = Path(run_dir)
    (run_path / "artifacts").mkdir(parents=True, exist_ok=True)
    from segkit.plots import set_currency, set_theme

    set_theme()
    set_currency((cfg.get("report") or {}).get("currency"))
    set_display()
    return RunContext(notebook=notebook, run_dir=run_path, config=cfg, seed=int(seed),
                      interactive=interactive, as_of_param=as_of, parameters=clean, config_path=config_path)


def shareable(ctx: RunContext, table: pd.DataFrame, count_column: str | None = None,
              label_column: str | None = None) -> pd.DataFrame:
    """Shortcut for :func:`segkit.core.privacy.shareable_table` with the context's config.

    Real ids in the analyst's own notebook (interactive mode: ``run_dir=None``, JupyterLab);
    pseudonyms in a ``segkit run`` (its notebooks and HTML are what gets shared).
    """
    from segkit.core.privacy import shareable_table

    return shareable_table(table, ctx.config, count_column=count_column, label_column=label_column,
                           shared=not ctx.interactive)


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """Markdown of a notebook summary (what was analysed, findings, actions, warnings).

    The summary's texts are plain text (``index.html`` shows them as such): each is escaped
    with :func:`segkit.core.escaping.escape_markdown`, so ids, arms or segment names in them never
    become markup, links or emphasis.

    Examples
    --------
    >>> print(summary_markdown({"analysed": "2 campaigns", "findings": ["<svg onload=alert(1)> lifted *a lot*"],
    ...                         "actions": ["send"]}))
    **What was analysed.** 2 campaigns
    <BLANKLINE>
    **Findings**
    <BLANKLINE>
    - \\<svg onload=alert(1)\\> lifted \\*a lot\\*
    <BLANKLINE>
    **What to do**
    <BLANKLINE>
    - send
    """
    lines = [f"**What was analysed.** {escape_markdown(summary['analysed'])}", ""]
    if summary.get("headline"):
        lines += [f"**The data in numbers.** {escape_markdown(headline_sentence(summary['headline']))}", ""]
    lines += ["**Findings**", ""]
    lines += [f"- {escape_markdown(f)}" for f in summary["findings"]]
    lines += ["", "**What to do**", ""] + [f"- {escape_markdown(a)}" for a in summary["actions"]]
    if summary.get("warnings"):
        lines += ["", "**Warnings**", ""] + [f"- ⚠ {escape_markdown(w)}" for w in summary["warnings"]]
    return "\n".join(lines)


def show_summary(ctx: RunContext, **summary: Any):
    """Record the notebook's summary (see :meth:`RunContext.record_summary`) and return it as
    IPython Markdown for the closing "What this means" cell."""
    from IPython.display import Markdown

    return Markdown(summary_markdown(ctx.record_summary(**summary)))
