"""Tests of segkit.data.datasets: the shop generator, the bundled sample and the CDNOW loader."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from segkit.core.config import project_root
from segkit.core.errors import ConfigError, DataError
from segkit.core.schema import CAMPAIGN, CUSTOMERS, TRANSACTIONS
from segkit.data.datasets import (
    DIRT_KINDS,
    MAX_NATURAL_QUANTITY,
    QUANTITY_TYPO_FACTOR,
    TRUTH_DTYPES,
    _black_friday_weekend,
    generate_shop,
    load_cdnow,
    load_sample,
    main,
    sample_dirt,
    write_sample,
)

SAMPLE = project_root() / "data" / "sample"
FILES = ("transactions.csv", "customers.csv", "campaign.csv", "truth.csv", "dirt.json")


@pytest.fixture(scope="module")
def shop():
    """The default shop: the same arguments as the bundled sample."""
    return generate_shop()


@pytest.fixture(scope="module")
def big():
    """A larger shop for statistical checks (uplift, control share)."""
    return generate_shop(40_000, seed=7)


def purchases(transactions: pd.DataFrame) -> pd.DataFrame:
    return transactions[~transactions["order_id"].str.startswith("C")]


def conversion_orders(shop) -> pd.DataFrame:
    """Orders matching a campaign conversion: same customer, within 14 days, value = revenue."""
    c = shop.campaign[shop.campaign["converted"]]
    gross = purchases(shop.transactions).groupby(["customer_id", "order_id"]).agg(
        value=("amount", "sum"), at=("order_date", "first")).reset_index()
    joined = c.merge(gross, on="customer_id")
    window = (joined["at"] >= joined["sent_at"]) & (joined["at"] < joined["sent_at"] + pd.Timedelta(days=14))
    return joined[window & np.isclose(joined["value"], joined["revenue"])]


def recount(shop) -> dict[str, int]:
    """Count every kind of dirt directly on the tables, independent of the generator."""
    t, c = shop.transactions, shop.campaign
    return {
        "duplicate_rows": int(t.duplicated().sum()),
        "missing_customer_id": int(t["customer_id"].isna().sum()),
        "zero_unit_price": int((t["unit_price"] == 0).sum()),
        "negative_unit_price": int((t["unit_price"] < 0).sum()),
        "future_order_date": int((t["order_date"] > shop.end + pd.Timedelta(days=1)).sum()),
        "quantity_outlier": int((t["quantity"].abs() > MAX_NATURAL_QUANTITY).sum()),
        "campaign_unknown_customer": int((~c["customer_id"].isin(shop.customers["customer_id"])).sum()),
    }


# --------------------------------------------------------------------------- determinism, files


def test_same_seed_gives_identical_tables_and_another_seed_does_not(shop):
    again = generate_shop()
    for name in ("transactions", "customers", "campaign", "truth"):
        assert_frame_equal(getattr(shop, name), getattr(again, name))
    assert again.dirt == shop.dirt
    other = generate_shop(seed=43)
    assert not other.transactions["amount"].head(1000).equals(shop.transactions["amount"].head(1000))


def test_regenerating_the_sample_gives_the_committed_bytes(shop, tmp_path):
    write_sample(tmp_path, shop)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name


def test_command_line_writes_the_same_files_as_write_sample(tmp_path):
    assert main(["--out", str(tmp_path / "cli"), "--customers", "250", "--seed", "5"]) == 0
    write_sample(tmp_path / "api", generate_shop(250, seed=5))
    for name in FILES:
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "api" / name).read_bytes()


def test_csv_files_use_iso_dates_and_canonical_headers():
    header = (SAMPLE / "transactions.csv").read_text().splitlines()[:2]
    assert header[0] == ",".join(TRANSACTIONS.columns)
    assert re.search(r",\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},", header[1])
    customers = (SAMPLE / "customers.csv").read_text().splitlines()
    assert customers[0] == ",".join(CUSTOMERS.columns)
    assert re.match(r"C\d{6},\d{4}-\d{2}-\d{2},", customers[1])
    assert (SAMPLE / "campaign.csv").read_text().splitlines()[0] == ",".join(CAMPAIGN.columns)


def test_load_sample_returns_the_generated_tables(shop):
    tables = load_sample()
    for name in ("transactions", "customers", "campaign", "truth"):
        assert_frame_equal(tables[name], getattr(shop, name), check_flags=False)
    assert sample_dirt() == shop.dirt


def test_load_sample_from_an_empty_folder_says_how_to_regenerate(tmp_path):
    with pytest.raises(DataError, match=r"python -m segkit.data.datasets --out data/sample"):
        load_sample(tmp_path)


# --------------------------------------------------------------------------- shapes and dtypes


def test_tables_have_canonical_columns_and_dtypes(shop):
    for frame, spec in ((shop.transactions, TRANSACTIONS), (shop.customers, CUSTOMERS),
                        (shop.campaign, CAMPAIGN)):
        assert list(frame.columns) == list(spec.columns)
        assert {c: str(d) for c, d in frame.dtypes.items()} == {
            c: str(pd.Series(dtype=d).dtype) for c, d in spec.dtypes.items()}
    assert list(shop.truth.columns) == list(TRUTH_DTYPES)
    assert str(shop.truth["churn_date"].dtype) == "datetime64[ns]"


def test_sample_has_the_documented_size(shop):
    assert len(shop.customers) == 3000
    assert shop.customers["customer_id"].is_unique
    assert 20_000 <= len(shop.transactions) <= 60_000
    assert shop.truth["customer_id"].tolist() == shop.customers["customer_id"].tolist()
    assert shop.campaign["campaign_id"].nunique() == 3


def test_ids_are_distinctive(shop):
    assert shop.customers["customer_id"].str.fullmatch(r"C\d{6}").all()
    order_ids = shop.transactions["order_id"]
    assert order_ids.str.fullmatch(r"C?O\d{7}").all()
    assert shop.transactions["product_id"].str.fullmatch(r"P\d{5}").all()
    # no order id could be mistaken for a customer id
    assert not order_ids.isin(shop.customers["customer_id"]).any()


def test_customer_ids_widen_beyond_half_a_million_customers():
    from segkit.data.datasets import _ids

    assert _ids("C", np.array([1, 1234567]), 7).to_pylist() == ["C0000001", "C1234567"]


def test_amount_is_quantity_times_unit_price(shop):
    t = shop.transactions
    np.testing.assert_allclose(t["amount"], (t["quantity"] * t["unit_price"]).round(2), atol=1e-9)


# --------------------------------------------------------------------------- behaviour


def test_prospects_never_buy_and_are_about_15_percent(shop):
    truth = shop.truth
    prospects = truth.loc[truth["latent_segment"] == "prospect", "customer_id"]
    assert not prospects.isin(shop.transactions["customer_id"]).any()
    buyers = truth.loc[truth["latent_segment"] != "prospect", "customer_id"]
    assert buyers.isin(shop.transactions["customer_id"]).all()
    share, n = len(prospects) / len(truth), len(truth)
    assert abs(share - 0.15) < 4 * np.sqrt(0.15 * 0.85 / n)


def test_segments_differ_as_designed(shop):
    p = purchases(shop.transactions).merge(shop.truth, on="customer_id")
    orders = p.groupby(["latent_segment", "customer_id"])["order_id"].nunique()
    per_customer = orders.groupby("latent_segment").mean()
    assert per_customer["vip"] > per_customer["regular"] > per_customer["one_off"]
    assert per_customer["vip"] > per_customer["bargain"] > per_customer["one_off"]
    assert orders["one_off"].median() == 1 and (orders["one_off"] == 1).mean() > 0.85
    aov = p.groupby("latent_segment")["amount"].sum() / p.groupby("latent_segment")["order_id"].nunique()
    assert aov["vip"] > 2 * aov["regular"] and aov["regular"] > aov["bargain"]
    top_channel = p.groupby("latent_segment")["channel"].agg(lambda s: s.value_counts().index[0])
    assert top_channel.to_dict() == {"bargain": "marketplace", "one_off": "store", "regular": "web", "vip": "app"}
    quantity = p[p["quantity"] <= MAX_NATURAL_QUANTITY].groupby("latent_segment")["quantity"].mean()
    assert quantity.idxmax() == "bargain"
    breadth = p.groupby(["latent_segment", "customer_id"])["category"].nunique().groupby("latent_segment").mean()
    assert breadth.idxmax() == "vip" and breadth.idxmin() == "one_off"
    rate = shop.truth.groupby("latent_segment")["purchase_rate"].mean()
    assert rate["vip"] > rate["bargain"] > rate["regular"] > rate["one_off"] > rate["prospect"] == 0


def test_clustering_customer_features_recovers_the_latent_segments(shop):
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.preprocessing import StandardScaler

    t = shop.transactions.dropna(subset=["customer_id"])
    p = purchases(t)
    g = p.groupby("customer_id")
    frequency = g["order_id"].nunique()
    monetary = t.groupby("customer_id")["amount"].sum().clip(lower=0)
    features = pd.DataFrame({
        "log_frequency": np.log1p(frequency),
        "log_monetary": np.log1p(monetary),
        "log_aov": np.log1p(monetary / frequency),
        "breadth": g["category"].nunique(),
        "quantity": g["quantity"].median(),
        "log_price": np.log(g["unit_price"].median().clip(lower=0.5)),
    }).join(pd.crosstab(p["customer_id"], p["channel"], normalize="index"))
    labels = KMeans(4, n_init=10, random_state=0).fit_predict(StandardScaler().fit_transform(features))
    truth = shop.truth.set_index("customer_id")["latent_segment"].reindex(features.index)
    assert adjusted_rand_score(truth, labels) >= 0.8


def test_returns_reference_an_earlier_purchase_of_the_same_line(shop):
    t = shop.transactions
    returns = t[t["order_id"].str.startswith("C")]
    assert (returns["quantity"] < 0).all() and (returns["amount"] < 0).all()
    assert 0.02 < len(returns) / len(t) < 0.04
    bought = purchases(t).drop_duplicates(["order_id", "product_id"])
    matched = returns.assign(order_id=returns["order_id"].str[1:]).merge(
        bought, on=["order_id", "product_id"], suffixes=("", "_bought"), how="left", validate="1:1")
    assert matched["customer_id_bought"].notna().all()
    assert (matched["customer_id"] == matched["customer_id_bought"]).all()
    assert (matched["order_date"] > matched["order_date_bought"]).all()
    assert (-matched["quantity"] <= matched["quantity_bought"]).all()
    assert (matched["unit_price"] == matched["unit_price_bought"]).all()


def test_orders_peak_in_q4_and_stay_in_the_period(shop):
    t = purchases(shop.transactions)
    in_period = t[t["order_date"] < shop.end + pd.Timedelta(days=1)]
    assert in_period["order_date"].min() >= shop.start
    daily = in_period[in_period["order_date"].dt.year == 2024].groupby(in_period["order_date"].dt.quarter)["order_id"].nunique()
    assert daily[4] > 1.3 * daily[3]


def test_black_friday_weekend_runs_friday_to_monday():
    days = pd.date_range("2024-11-28", "2024-12-03")
    assert _black_friday_weekend(days).tolist() == [False, True, True, True, True, False]
    assert _black_friday_weekend(pd.DatetimeIndex(["2023-11-24"])).tolist() == [True]


def test_truth_lifecycle_is_consistent_with_the_orders(shop):
    truth = shop.truth
    buyers = truth[truth["latent_segment"] != "prospect"]
    assert truth.loc[truth["latent_segment"] == "prospect", "alive_at_end"].isna().all()
    assert (buyers["alive_at_end"] == buyers["churn_date"].isna()).all()
    reactivated = buyers.dropna(subset=["reactivation_date"])
    assert len(reactivated) > 20
    # a reactivated customer orders on the reactivation day after at least 120 days without
    # an organic order (an e-mail may still convert a lapsed customer in between)
    p = purchases(shop.transactions).merge(reactivated, on="customer_id")
    p = p[~p["order_id"].isin(conversion_orders(shop)["order_id"])]
    day = p["order_date"].dt.normalize()
    assert (p[day == p["reactivation_date"]]["customer_id"].nunique()) == len(reactivated)
    before = p[day < p["reactivation_date"]].groupby("customer_id")["order_date"].max()
    gap = (reactivated.set_index("customer_id")["reactivation_date"] - before.dt.normalize()).dt.days
    assert gap.min() >= 120


def test_rows_per_customer_scale_linearly():
    small, large = generate_shop(1000, seed=3), generate_shop(4000, seed=3)
    per_small = len(small.transactions) / 1000
    per_large = len(large.transactions) / 4000
    assert abs(per_large / per_small - 1) < 0.15


# --------------------------------------------------------------------------- campaigns


def test_control_share_is_about_20_percent(big):
    c = big.campaign
    known = c[c["customer_id"].isin(big.customers["customer_id"])]
    share = (known["arm"] == "control").mean()
    assert abs(share - 0.2) < 4 * np.sqrt(0.2 * 0.8 / len(known))
    assert set(c["arm"]) == {"control", "email"}


def test_campaign_outcomes_are_logically_consistent(shop):
    c = shop.campaign
    control = c[c["arm"] == "control"]
    assert not control[["delivered", "opened", "clicked", "unsubscribed"]].any().any()
    assert (control["cost"] == 0).all() and (c.loc[c["arm"] == "email", "cost"] > 0).all()
    assert (c["opened"] <= c["delivered"]).all() and (c["clicked"] <= c["opened"]).all()
    assert ((c["revenue"] > 0) == c["converted"]).all()
    signup = shop.customers.set_index("customer_id")["signup_date"].reindex(c["customer_id"]).to_numpy()
    known = ~pd.isna(signup)
    assert (signup[known] < c["sent_at"].to_numpy()[known]).all()  # only customers who had signed up
    assert not c.duplicated(["campaign_id", "customer_id"]).any()
    assert (c["revenue"] == 0).mean() > 0.8  # zero-inflated


def test_customers_who_unsubscribed_are_no_longer_opted_in(shop):
    c = shop.campaign
    unsubscribed = c.loc[c["unsubscribed"], "customer_id"]
    known = shop.customers.set_index("customer_id")["email_opt_in"]
    assert len(unsubscribed) > 0
    assert not known.reindex(unsubscribed[unsubscribed.isin(known.index)]).any()


def test_conversions_are_orders_in_the_transactions(shop):
    c = shop.campaign
    conv = c[c["converted"] & c["customer_id"].isin(shop.customers["customer_id"])]
    found = conversion_orders(shop)
    # every conversion order is in the data (dirt may change the value of a few orders)
    assert found[["campaign_id", "customer_id"]].drop_duplicates().shape[0] >= 0.97 * len(conv)


def test_true_uplift_differs_by_segment_and_matches_the_experiment(big):
    c = big.campaign.merge(big.truth, on="customer_id")
    uplift = big.truth.groupby("latent_segment")["true_uplift"].agg(["min", "max"])
    assert (uplift["min"] == uplift["max"]).all()  # one effect per segment
    u = uplift["max"]
    assert u["bargain"] > u["regular"] > u["vip"] > u["one_off"] > u["prospect"] == 0
    for segment, rows in c.groupby("latent_segment"):
        treated, control = rows[rows["arm"] == "email"], rows[rows["arm"] == "control"]
        p1, p0 = treated["converted"].mean(), control["converted"].mean()
        se = np.sqrt(p1 * (1 - p1) / len(treated) + p0 * (1 - p0) / len(control)) or 1e-9
        assert abs((p1 - p0) - rows["true_uplift"].mean()) < 4 * se, segment
    bargain = c[c["latent_segment"] == "bargain"]
    rates = bargain.groupby("arm")["converted"].mean()
    assert rates["email"] - rates["control"] > 0.08  # detectably positive


# --------------------------------------------------------------------------- dirt


def test_planted_dirt_counts_equal_a_direct_recount(shop, big):
    for generated in (shop, big):
        assert recount(generated) == generated.dirt
        assert all(generated.dirt[k] > 0 for k in DIRT_KINDS)


def test_dirt_counts_in_dirt_json_match_the_sample_files():
    tables = load_sample()
    dirt = json.loads((SAMPLE / "dirt.json").read_text())
    t = tables["transactions"]
    assert int(t.duplicated().sum()) == dirt["duplicate_rows"]
    assert int(t["customer_id"].isna().sum()) == dirt["missing_customer_id"]
    assert int((t["order_date"].dt.year == 2099).sum()) == dirt["future_order_date"]
    assert int((t["quantity"] >= QUANTITY_TYPO_FACTOR).sum()) == dirt["quantity_outlier"]


def test_each_dirty_row_has_exactly_one_kind_of_dirt(shop):
    t = shop.transactions
    flags = pd.DataFrame({
        "duplicate": t.duplicated(keep=False),
        "guest": t["customer_id"].isna(),
        "zero": t["unit_price"] == 0,
        "negative": t["unit_price"] < 0,
        "future": t["order_date"].dt.year == 2099,
        "outlier": t["quantity"] >= QUANTITY_TYPO_FACTOR,
        "return": t["order_id"].str.startswith("C"),
    })
    assert (flags.sum(axis=1) <= 1).all()
    # guest checkouts are one-line orders
    assert t.loc[flags["guest"], "order_id"].is_unique


def test_dirt_can_be_switched_off_and_stays_under_one_percent(shop):
    clean = generate_shop(800, seed=2, dirt={k: 0 for k in DIRT_KINDS})
    assert recount(clean) == {k: 0 for k in DIRT_KINDS}
    planted = sum(v for k, v in shop.dirt.items() if k != "campaign_unknown_customer")
    assert planted / len(shop.transactions) < 0.01
    assert shop.dirt["campaign_unknown_customer"] / len(shop.campaign) < 0.01


@pytest.mark.parametrize("kwargs, message", [
    ({"n_customers": 0}, "n_customers"),
    ({"start": "2024-01-01", "end": "2023-12-01"}, "shorter than 90 days"),
    ({"dirt": {"typos": 0.01}}, "unknown dirt kind"),
    ({"dirt": {"duplicate_rows": 0.5}}, "dirt rates"),
    ({"control_share": 1.0}, "control_share"),
    ({"segment_shares": {"whales": 1.0}}, "segment_shares"),
])
def test_bad_arguments_raise_a_config_error_naming_them(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        generate_shop(**{"n_customers": 50, **kwargs})


# --------------------------------------------------------------------------- CDNOW


def test_cdnow_sample_has_2357_customers_as_canonical_transactions():
    cd = load_cdnow("sample")
    assert cd["customer_id"].nunique() == 2357 and len(cd) == 6919
    assert list(cd.columns) == ["customer_id", "order_date", "order_id", "amount", "quantity"]
    assert str(cd["order_date"].dtype) == "datetime64[ns]" and str(cd["customer_id"].dtype) == "string"
    assert cd["order_id"].is_unique
    first = cd.iloc[:4]
    assert first["customer_id"].tolist() == ["00004"] * 4
    assert first["order_date"].dt.strftime("%Y-%m-%d").tolist() == ["1997-01-01", "1997-01-18", "1997-08-02", "1997-12-12"]
    assert first["quantity"].tolist() == [2, 2, 1, 2]
    assert first["amount"].tolist() == [29.33, 29.73, 14.96, 26.48]
    assert cd["order_date"].min() == pd.Timestamp("1997-01-01") and cd["order_date"].max() == pd.Timestamp("1998-06-30")


def test_cdnow_master_has_23570_customers_and_contains_the_sample():
    master = load_cdnow("master")
    assert master["customer_id"].nunique() == 23570 and len(master) == 69659
    sample = load_cdnow("sample")
    cols = ["customer_id", "order_date", "quantity", "amount"]
    found = sample[cols].merge(master[cols].drop_duplicates(), on=cols, how="left", indicator=True)
    assert (found["_merge"] == "both").all()


def test_cdnow_rejects_an_unknown_file():
    with pytest.raises(ConfigError, match="'sample' or 'master'"):
        load_cdnow("full")


def test_data_readme_documents_every_column_and_the_sample_dirt():
    readme = (project_root() / "data" / "README.md").read_text()
    for spec_columns in (TRANSACTIONS.columns, CUSTOMERS.columns, CAMPAIGN.columns, tuple(TRUTH_DTYPES)):
        for column in spec_columns:
            assert f"| `{column}` |" in readme, column
    for kind, count in sample_dirt().items():
        assert re.search(rf"^\| `{kind}` \|.*\| {count} \|$", readme, flags=re.M), kind
