"""Canonical tables: the column names and types every segkit module works with.

User files are mapped onto these names once, at load (:mod:`segkit.io`); inside segkit only
canonical names are used. ``validate_*`` functions check a canonical frame and coerce dtypes.

Canonical dtypes: ids are pandas ``string``; dates ``datetime64[ns]`` (naive, local time of
the export); money and quantities ``float64``; flags ``boolean``.

Examples
--------
>>> TRANSACTIONS.required
('customer_id', 'order_date')
>>> TRANSACTIONS.dtypes["amount"]
'float64'
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TableSpec:
    """Column contract of one canonical table."""

    name: str
    required: tuple[str, ...]
    dtypes: dict[str, str] = field(default_factory=dict)  # every known column → dtype
    # Alternatives: at least one of these groups must be fully present.
    one_of: tuple[tuple[str, ...], ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.dtypes)


TRANSACTIONS = TableSpec(
    name="transactions",
    required=("customer_id", "order_date"),
    one_of=(("amount",), ("quantity", "unit_price")),
    dtypes={
        "customer_id": "string",
        "order_date": "datetime64[ns]",
        "order_id": "string",        # absent → each row is one order
        "amount": "float64",         # line revenue; = quantity * unit_price when not given
        "quantity": "float64",
        "unit_price": "float64",
        "product_id": "string",
        "category": "string",
        "channel": "string",
    },
)

CUSTOMERS = TableSpec(
    name="customers",
    required=("customer_id",),
    dtypes={
        "customer_id": "string",
        "signup_date": "datetime64[ns]",
        "country": "string",
        "region": "string",
        "acquisition_channel": "string",
        "preferred_channel": "string",
        "email_opt_in": "boolean",
        "birth_year": "Int64",
        "age_band": "string",
        "gender": "string",
    },
)

CAMPAIGN = TableSpec(
    name="campaign",
    required=("campaign_id", "customer_id", "arm"),
    dtypes={
        "campaign_id": "string",
        "customer_id": "string",
        "arm": "string",             # one arm is the control/holdout (campaign.control_arm)
        "sent_at": "datetime64[ns]",
        "delivered": "boolean",      # optional; absent → every row counts as delivered
        "opened": "boolean",
        "clicked": "boolean",
        "converted": "boolean",
        "revenue": "float64",
        "unsubscribed": "boolean",
        "cost": "float64",           # optional cost of this send
    },
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (TRANSACTIONS, CUSTOMERS, CAMPAIGN)}

# Columns the audit adds to transactions_clean.parquet (see segkit.audit).
TRANSACTIONS_CLEAN_EXTRA: dict[str, str] = {
    "is_return": "boolean",  # negative quantity/amount or a cancellation invoice ("C" prefix)
}
