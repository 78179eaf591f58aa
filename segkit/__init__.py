"""segkit — customer lifecycle segmentation kit.

The public API is re-exported here (see ``__all__``). The names are resolved on first use
(PEP 562), so that ``import segkit.audit`` — what a notebook, the ``segkit`` command or a kernel
started ahead does — does not also import scikit-learn, statsmodels and DuckDB.

Examples
--------
>>> import segkit
>>> segkit.rfm_table.__module__
'segkit.data.orders'
>>> sorted(set(segkit.__all__) - set(dir(segkit)))
[]
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name → the module that defines it.
_EXPORTS: dict[str, str] = {
    "load_config": "segkit.core.config",
    **dict.fromkeys(["AuditFailedError", "ConfigError", "DataError", "ModelFitError", "SegkitError",
                     "UpstreamMissingError"], "segkit.core.errors"),
    **dict.fromkeys(["NOTEBOOKS", "RunContext", "open_run"], "segkit.steps.pipeline"),
    **dict.fromkeys(["load_inputs", "load_table"], "segkit.data.io"),
    **dict.fromkeys(["GeneratedShop", "generate_shop", "load_cdnow", "load_sample"], "segkit.data.datasets"),
    **dict.fromkeys(["CampaignResult", "CampaignSettings", "evaluate_campaigns"], "segkit.campaign"),
    "cluster_customers": "segkit.cluster",
    **dict.fromkeys(["BetaGeoModel", "GammaGammaModel", "customer_lifetime_value"], "segkit.clv"),
    **dict.fromkeys(["FeatureBuilder", "customer_table"], "segkit.features"),
    "KPrototypes": "segkit.kprototypes",
    **dict.fromkeys(["LifecycleStager", "StageThresholds", "assign_lifecycle_stage"], "segkit.lifecycle"),
    **dict.fromkeys(["LoyaltyTiers", "RFMScorer", "SegmentMap"], "segkit.rfm"),
    **dict.fromkeys(["lifetimes_summary", "purchase_orders", "rfm_table"], "segkit.data.orders"),
    "build_rfm_artifacts": "segkit.steps.rfm",
    "build_cluster_artifacts": "segkit.steps.cluster",
    "build_lifecycle_artifacts": "segkit.steps.lifecycle",
    "build_campaign_artifacts": "segkit.steps.campaign",
}
_RENAMED: dict[str, tuple[str, str]] = {"summarize_clusters": ("segkit.steps.cluster", "summarize")}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _RENAMED:
        module, attr = _RENAMED[name]
        value = getattr(importlib.import_module(module), attr)
    else:
        raise AttributeError(f"module 'segkit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_RENAMED))


__all__ = [
    "__version__",
    "load_config",
    "load_table",
    "load_inputs",
    "generate_shop",
    "GeneratedShop",
    "load_sample",
    "load_cdnow",
    "rfm_table",
    "lifetimes_summary",
    "purchase_orders",
    "RFMScorer",
    "SegmentMap",
    "LoyaltyTiers",
    "build_rfm_artifacts",
    "LifecycleStager",
    "StageThresholds",
    "assign_lifecycle_stage",
    "build_lifecycle_artifacts",
    "BetaGeoModel",
    "GammaGammaModel",
    "customer_lifetime_value",
    "build_cluster_artifacts",
    "cluster_customers",
    "summarize_clusters",
    "KPrototypes",
    "FeatureBuilder",
    "customer_table",
    "CampaignSettings",
    "CampaignResult",
    "evaluate_campaigns",
    "build_campaign_artifacts",
    "open_run",
    "RunContext",
    "NOTEBOOKS",
    "SegkitError",
    "DataError",
    "ConfigError",
    "UpstreamMissingError",
    "AuditFailedError",
    "ModelFitError",
]
