"""segkit — customer lifecycle segmentation kit.

The public API is re-exported here as the modules land; see ``__all__``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from segkit.config import load_config
from segkit.errors import (
    AuditFailedError,
    ConfigError,
    DataError,
    ModelFitError,
    SegkitError,
    UpstreamMissingError,
)
from segkit.pipeline import NOTEBOOKS, RunContext, open_run
from segkit.io import load_inputs, load_table
from segkit.datasets import GeneratedShop, generate_shop, load_cdnow, load_sample
from segkit.campaign import CampaignResult, CampaignSettings, build_campaign_artifacts, evaluate_campaigns
from segkit.cluster import build_cluster_artifacts, cluster_customers
from segkit.cluster import summarize as summarize_clusters
from segkit.clv import BetaGeoModel, GammaGammaModel, customer_lifetime_value
from segkit.features import FeatureBuilder, customer_table
from segkit.kprototypes import KPrototypes
from segkit.lifecycle import (
    LifecycleStager,
    StageThresholds,
    assign_lifecycle_stage,
    build_lifecycle_artifacts,
)
from segkit.rfm import (
    LoyaltyTiers,
    RFMScorer,
    SegmentMap,
    build_rfm_artifacts,
    lifetimes_summary,
    purchase_orders,
    rfm_table,
)

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
