"""What the campaign evaluation is configured with and measures: the settings, the metrics, the
segment dimensions and the names shared by every step.

See :class:`CampaignSettings` (config section ``campaign``) and :data:`METRICS`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, Sequence

import numpy as np

from segkit.campaign.stats import CORRECTIONS
from segkit.core.errors import ConfigError

__all__ = [
    "ALL_SEGMENTS", "DIMENSION_LABELS", "UNLABELLED", "SEGMENT_DIMENSIONS", "DIMENSION_ARTIFACT",
    "TARGETING_RULES", "SRM_BORDERLINE_P", "RESULT_COLUMNS", "Metric", "METRICS", "METRIC_BY_NAME",
    "OUTCOME_METRICS", "FLAG_COLUMNS", "SampleRatioMismatchWarning", "CampaignSettings",
]

ALL_SEGMENTS = "All customers"
DIMENSION_LABELS = {"rfm_segment": "RFM segment", "lifecycle_stage": "lifecycle stage", "cluster_name": "cluster",
                    "none": "all customers"}
UNLABELLED = "unlabelled"
SEGMENT_DIMENSIONS: tuple[str, ...] = ("rfm_segment", "lifecycle_stage", "cluster_name")
# Which artifact builds each dimension (interactive mode builds it on demand).
DIMENSION_ARTIFACT = {"rfm_segment": "rfm", "lifecycle_stage": "lifecycle", "cluster_name": "clusters"}
TARGETING_RULES: tuple[str, ...] = ("evidence", "expected_value")
# A campaign's overall split with srm_alpha <= p < SRM_BORDERLINE_P against the designed split is
# "borderline": no alarm, but worth checking how customers were assigned.
SRM_BORDERLINE_P = 0.01

RESULT_COLUMNS: tuple[str, ...] = (
    "campaign_id", "segment_by", "segment", "arm", "metric", "n", "count", "value", "ci_low", "ci_high",
    "lift_abs", "lift_ci_low", "lift_ci_high", "lift_rel", "lift_rel_ci_low", "lift_rel_ci_high",
    "test", "p_value", "p_adjusted", "mde_abs", "customers", "small_cell", "verdict", "note",
)


@dataclass(frozen=True)
class Metric:
    """One campaign metric: ``outcome`` column over the rows where ``base`` is true."""

    name: str
    label: str
    outcome: str
    base: str | None = None          # None = every assigned customer
    kind: str = "proportion"         # "proportion" or "mean"
    engagement: bool = False         # needs a message: not compared with a holdout
    higher_is_better: bool = True


METRICS: tuple[Metric, ...] = (
    Metric("delivery_rate", "Delivered / sent", "delivered", None, engagement=True),
    Metric("open_rate", "Open rate", "opened", "delivered", engagement=True),
    Metric("click_rate", "Click rate", "clicked", "delivered", engagement=True),
    Metric("click_to_open_rate", "Click-to-open rate", "clicked", "opened", engagement=True),
    Metric("unsubscribe_rate", "Unsubscribe rate", "unsubscribed", "delivered", engagement=True,
           higher_is_better=False),
    Metric("conversion_rate", "Conversion rate", "converted"),
    Metric("retention_rate", "Retention rate", "retained"),
    Metric("revenue_per_recipient", "Revenue per recipient", "revenue", kind="mean"),
)
METRIC_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
OUTCOME_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if not m.engagement)
FLAG_COLUMNS: tuple[str, ...] = ("delivered", "opened", "clicked", "converted", "unsubscribed")


class SampleRatioMismatchWarning(UserWarning):
    """The customers per arm differ from the designed split more than chance allows."""


# ============================================================================ settings
@dataclass(frozen=True)
class CampaignSettings:
    """Knobs of the campaign evaluation (``campaign`` config section, see ``defaults/campaign.yml``).

    Examples
    --------
    >>> s = CampaignSettings.from_config({"campaign": {"correction": "fdr_bh"}, "privacy": {"min_cell_size": 5}})
    >>> s.correction, s.min_cell_size
    ('fdr_bh', 5)
    >>> CampaignSettings.from_config({"campaign": {"correction": "sidak"}})
    Traceback (most recent call last):
    ...
    segkit.core.errors.ConfigError: campaign.correction = 'sidak' is not supported. Use one of: holm, fdr_bh, bonferroni, none.
    """

    control_arm: str = "control"
    control_is_holdout: bool = True
    segment_by: str = "auto"
    primary_metric: str = "conversion_rate"
    alpha: float = 0.05
    correction: str = "holm"
    min_cell_size: int = 10
    exact_test_min_expected: float = 5.0
    expected_split: Mapping[str, float] | None = None
    srm_alpha: float = 0.001
    cost_per_send: float | None = None
    retention_days: int = 30
    power: float = 0.8
    target_lift: float = 0.02
    targeting_rule: str = "evidence"
    gross_margin: float | None = None
    revenue_min_buyers: int = 30
    currency: str = ""               # from report.currency: unit of money in texts

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "CampaignSettings":
        """Settings from a full config (``campaign`` section; ``privacy.min_cell_size`` as fallback)."""
        section = dict(config.get("campaign") or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"campaign: unknown key(s) {', '.join(map(repr, unknown))}. "
                              f"Known keys: {', '.join(sorted(known))}.")
        if "currency" in section:
            raise ConfigError("campaign.currency: the unit of money is set once, as report.currency.")
        if section.get("min_cell_size") is None:
            section["min_cell_size"] = (config.get("privacy") or {}).get("min_cell_size", 10)
        section["currency"] = str((config.get("report") or {}).get("currency") or "")
        values = {k: v for k, v in section.items() if v is not None or k in ("expected_split", "cost_per_send", "gross_margin")}
        return cls(**values).validated()

    def validated(self) -> "CampaignSettings":
        """Check every value; return the settings with numbers coerced, or raise a ConfigError."""
        def number(key: str, low: float, high: float, integer: bool = False, open_low: bool = True) -> float:
            value = getattr(self, key)
            try:
                out = int(value) if integer else float(value)
                if integer and out != float(value):
                    raise ValueError
            except (TypeError, ValueError):
                raise ConfigError(f"campaign.{key} = {value!r} is not a {'whole ' if integer else ''}number.") from None
            if not (low < out if open_low else low <= out) or not out < high:
                raise ConfigError(f"campaign.{key} = {value!r} is out of range; use a value in "
                                  f"{'(' if open_low else '['}{low}, {high}).")
            return out

        def choice(key: str, options: Sequence[str]) -> str:
            value = getattr(self, key)
            if value not in options:
                raise ConfigError(f"campaign.{key} = {value!r} is not supported. Use one of: {', '.join(options)}.")
            return value

        choice("correction", tuple(CORRECTIONS))
        choice("segment_by", (*SEGMENT_DIMENSIONS, "none", "auto"))
        choice("primary_metric", OUTCOME_METRICS)
        choice("targeting_rule", TARGETING_RULES)
        if not isinstance(self.control_arm, str) or not self.control_arm.strip():
            raise ConfigError(f"campaign.control_arm = {self.control_arm!r}: give the name of the control arm "
                              "as it appears in the campaign file's arm column.")
        margin = self.gross_margin
        if margin is not None:
            margin = number("gross_margin", 0, 1 + 1e-12)
        cost = self.cost_per_send
        if cost is not None:
            cost = number("cost_per_send", 0, np.inf, open_low=False)
        split = self.expected_split
        if split is not None:
            if not isinstance(split, Mapping) or not split:
                raise ConfigError(f"campaign.expected_split = {split!r}: give a mapping arm -> share, "
                                  "e.g. {control: 0.2, email: 0.8}, or null.")
            try:
                split = {str(k): float(v) for k, v in split.items()}
            except (TypeError, ValueError):
                raise ConfigError(f"campaign.expected_split = {split!r}: shares must be numbers.") from None
            if any(not 0 < v <= 1 for v in split.values()) or sum(split.values()) > 1 + 1e-9:
                raise ConfigError(f"campaign.expected_split = {split!r}: shares must be in (0, 1] and sum to "
                                  "at most 1.")
        return replace(
            self,
            control_arm=self.control_arm.strip(),
            control_is_holdout=bool(self.control_is_holdout),
            alpha=number("alpha", 0, 0.5),
            min_cell_size=int(number("min_cell_size", 0, np.inf, integer=True, open_low=False)),
            exact_test_min_expected=number("exact_test_min_expected", 0, np.inf, open_low=False),
            srm_alpha=number("srm_alpha", 0, 1),
            retention_days=int(number("retention_days", 0, np.inf, integer=True)),
            power=number("power", 0, 1),
            target_lift=number("target_lift", 0, np.inf),
            gross_margin=margin,
            revenue_min_buyers=int(number("revenue_min_buyers", 0, np.inf, integer=True, open_low=False)),
            cost_per_send=cost,
            expected_split=split,
        )
