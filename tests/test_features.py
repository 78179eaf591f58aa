"""Tests of segkit.features: the customer table and the FeatureBuilder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

from segkit.core.errors import ConfigError, DataError
from segkit.features import (
    FeatureBuilder,
    customer_attributes,
    customer_table,
    email_engagement,
    resolve_features,
    signed_log1p,
)


def _tx() -> pd.DataFrame:
    """a: 3 purchase orders (one with a returned line), one fully returned order; b: one order;
    c: only a return (no purchase); d: only an order after as_of."""
    rows = [
        # customer, order, date, amount, category, channel, is_return
        ("a", "1", "2024-01-01", 30.0, "toys", "web", False),
        ("a", "1", "2024-01-01", 10.0, "books", "web", False),
        ("a", "2", "2024-01-11", 50.0, "toys", "app", False),
        ("a", "2", "2024-01-11", -10.0, "toys", "app", True),
        ("a", "3", "2024-01-31", 20.0, "games", "web", False),
        ("a", "4", "2024-02-02", 15.0, "toys", "web", False),
        ("a", "4", "2024-02-02", -15.0, "toys", "web", True),
        ("b", "5", "2024-01-20", 40.0, "books", "app", False),
        ("c", "6", "2024-01-05", -5.0, "toys", "web", True),
        ("d", "7", "2024-03-01", 99.0, "toys", "web", False),
    ]
    df = pd.DataFrame(rows, columns=["customer_id", "order_id", "order_date", "amount", "category",
                                     "channel", "is_return"])
    df["order_date"] = pd.to_datetime(df["order_date"])
    return df


def test_customer_table_computes_every_behaviour_column_by_hand():
    table = customer_table(_tx(), as_of="2024-02-10")
    expected = pd.DataFrame({
        "customer_id": pd.array(["a", "b"], dtype="string"),
        "recency_days": [10, 21],            # last purchase 2024-01-31 (order 4 nets to 0)
        "frequency": [3, 1],
        "monetary_total": [100.0, 40.0],     # every line before as_of, returns deducted
        "tenure_days": [40, 21],
        "aov": [100.0 / 3, 40.0],            # mean net value of purchase orders
        "median_days_between_orders": [15.0, np.nan],   # gaps 10 and 20 days
        "return_share": [25.0 / 125.0, 0.0],  # returned value / purchased value
        "category_breadth": [3.0, 1.0],
        "favourite_category": pd.array(["toys", "books"], dtype="string"),
        "channel_share_web": [2 / 3, 0.0],    # shares of purchase orders (order 1 and 3 web)
        "channel_share_app": [1 / 3, 1.0],
    })
    got = table[expected.columns]
    assert_frame_equal(got, expected, check_dtype=False)
    assert table.attrs["as_of"] == "2024-02-10"


def test_customer_table_leaves_out_customers_without_a_purchase_and_orders_after_as_of():
    table = customer_table(_tx(), as_of="2024-02-10")
    assert table["customer_id"].tolist() == ["a", "b"]


def test_customer_table_defaults_as_of_to_the_day_after_the_last_order():
    table = customer_table(_tx())
    assert table.attrs["as_of"] == "2024-03-02"
    assert table.set_index("customer_id").loc["d", "recency_days"] == 1


def test_customer_table_joins_engagement_and_attributes():
    camp = pd.DataFrame({"customer_id": ["a", "a", "b", "b"], "arm": ["email", "email", "control", "email"],
                         "delivered": [True, True, True, False], "opened": [True, False, True, True],
                         "clicked": [True, False, False, False]})
    cust = pd.DataFrame({"customer_id": ["a", "b", "z"], "region": ["North", "South", "North"],
                         "gender": ["f", "m", "f"], "birth_year": [1990, 1960, 2000]})
    table = customer_table(_tx(), cust, camp, as_of="2024-02-10").set_index("customer_id")
    assert table.loc["a", "open_rate"] == 0.5 and table.loc["a", "click_rate"] == 0.5
    assert table.loc["b", "emails_received"] == 0 and np.isnan(table.loc["b", "open_rate"])
    assert table["region"].tolist() == ["North", "South"]
    assert table["age_band"].tolist() == ["25-34", "55-64"]
    assert "gender" not in table.columns and "birth_year" not in table.columns


def test_customer_table_names_the_missing_column():
    with pytest.raises(DataError, match="'amount'"):
        customer_table(_tx().drop(columns="amount"), as_of="2024-02-10")


def test_customer_table_says_when_nothing_was_bought_before_as_of():
    with pytest.raises(DataError, match="before as_of|nothing"):
        customer_table(_tx(), as_of="2023-12-01")


def test_email_engagement_ignores_control_and_undelivered_rows():
    camp = pd.DataFrame({"customer_id": ["a", "a", "a"], "arm": ["email", "control", "email"],
                         "delivered": [True, True, False], "opened": [True, True, True]})
    out = email_engagement(camp)
    assert out.loc["a", "emails_received"] == 1 and out.loc["a", "open_rate"] == 1.0
    assert "click_rate" not in out.columns
    assert email_engagement(None).empty


def test_customer_attributes_keeps_opt_in_as_yes_no_and_derives_age_bands():
    cust = pd.DataFrame({"customer_id": ["a", "b", "c"], "email_opt_in": [True, False, None],
                         "age_band": ["18-24", None, None], "birth_year": [2001, 1950, None]})
    out = customer_attributes(cust, pd.Timestamp("2024-06-01"))
    assert out["email_opt_in"].tolist()[:2] == ["yes", "no"] and pd.isna(out["email_opt_in"].iloc[2])
    assert out["age_band"].tolist()[:2] == ["18-24", "65+"] and pd.isna(out["age_band"].iloc[2])


def test_resolve_features_takes_the_first_existing_alternative_and_globs():
    t = pd.DataFrame(columns=["country", "channel_share_web", "channel_share_app", "frequency"])
    found, missing = resolve_features(t, ["region|country", "channel_share_*", "frequency", "open_rate"])
    assert found == ["country", "channel_share_app", "channel_share_web", "frequency"]
    assert missing == ["open_rate"]


def _table() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e"],
        "frequency": [1.0, 3.0, np.nan, 7.0, 1.0],
        "tenure_days": [10.0, 20.0, 30.0, 40.0, 50.0],
        "median_days_between_orders": [np.nan, 5.0, 6.0, 7.0, np.nan],
        "constant": [2.0] * 5,
        "region": ["N", "N", None, "S", "S"],
        "country": ["DE", "DE", "DE", "DE", "FR"],
    })


def test_feature_builder_imputes_explicitly_and_reports_counts():
    fb = FeatureBuilder(numeric=["frequency", "median_days_between_orders", "constant", "open_rate"],
                        categorical=["region"], log=[], min_category_share=0.0).fit(_table())
    assert fb.numeric_features_ == ["frequency", "median_days_between_orders"]
    assert fb.skipped_features_ == {"open_rate": "not in the data", "constant": "constant"}
    assert fb.impute_values_ == {"frequency": 2.0, "median_days_between_orders": "column:tenure_days"}
    report = fb.missing_report_.set_index("feature")
    assert report["missing"].to_dict() == {"frequency": 1, "median_days_between_orders": 2, "region": 1}
    assert report.loc["median_days_between_orders", "filled_with"] == "value of tenure_days"
    imputed = fb.imputed(_table())
    assert imputed["frequency"].tolist() == [1.0, 3.0, 2.0, 7.0, 1.0]
    assert imputed["median_days_between_orders"].tolist() == [10.0, 5.0, 6.0, 7.0, 50.0]
    assert imputed["region"].tolist() == ["N", "N", "Unknown", "S", "S"]


def test_feature_builder_logs_and_standardises_with_the_fitted_parameters():
    fb = FeatureBuilder(numeric=["frequency"], categorical=[], log=["frequency"], clip=None).fit(_table())
    logged = signed_log1p(np.array([1.0, 3.0, 2.0, 7.0, 1.0]))
    expected = (logged - logged.mean()) / logged.std()
    np.testing.assert_allclose(fb.transform(_table())["frequency"].to_numpy(), expected)
    # New customers are scaled with the parameters learnt in fit, not their own.
    new = pd.DataFrame({"customer_id": ["x"], "frequency": [3.0]})
    np.testing.assert_allclose(fb.transform(new)["frequency"].to_numpy(),
                               [(np.log1p(3.0) - logged.mean()) / logged.std()])
    assert fb.transform(new).index.tolist() == ["x"]


def test_feature_builder_clips_outliers():
    t = pd.DataFrame({"x": [0.0] * 99 + [1000.0]})
    z = FeatureBuilder(numeric=["x"], categorical=[], log=[], clip=3.0).fit(t).transform(t)["x"]
    assert z.max() == 3.0


def test_feature_builder_maps_rare_and_unseen_levels_to_other():
    t = pd.DataFrame({"x": np.arange(10.0), "channel": ["web"] * 6 + ["app"] * 3 + ["fax"]})
    fb = FeatureBuilder(numeric=["x"], categorical=["channel"], log=[], min_category_share=0.2).fit(t)
    assert fb.categories_ == {"channel": ["app", "web"]}
    new = pd.DataFrame({"x": [1.0, 2.0, 3.0], "channel": ["fax", "pigeon", "web"]})
    assert fb.transform(new)["channel"].tolist() == ["Other", "Other", "web"]


def test_feature_builder_drops_a_categorical_with_a_single_level():
    fb = FeatureBuilder(numeric=["frequency"], categorical=["region|country"], log=[],
                        min_category_share=0.9).fit(_table().drop(columns="region"))
    assert fb.categorical_features_ == [] and fb.skipped_features_["country"] == "a single level"


def test_feature_builder_names_a_non_numeric_column_and_its_rows():
    t = _table().astype({"frequency": object})
    t.loc[3, "frequency"] = "seven"
    with pytest.raises(DataError, match=r"'frequency'.*row 5.*'seven'"):
        FeatureBuilder(numeric=["frequency"], categorical=[]).fit(t)


def test_feature_builder_refuses_sensitive_attributes():
    with pytest.raises(ConfigError, match="gender"):
        FeatureBuilder(numeric=["frequency"], categorical=["gender"]).fit(_table())


def test_feature_builder_explains_an_empty_or_unusable_table():
    with pytest.raises(DataError, match="empty"):
        FeatureBuilder().fit(_table().iloc[:0])
    with pytest.raises(DataError, match="usable column"):
        FeatureBuilder(numeric=["nothing"], categorical=[]).fit(_table())


def test_feature_builder_transform_needs_the_fitted_columns():
    fb = FeatureBuilder(numeric=["frequency"], categorical=["region"], log=[]).fit(_table())
    with pytest.raises(DataError, match=r"\['region'\]"):
        fb.transform(_table().drop(columns="region"))


def test_feature_builder_rejects_an_unknown_impute_rule():
    with pytest.raises(ConfigError, match="impute rule"):
        FeatureBuilder(numeric=["frequency"], categorical=[], impute={"frequency": "mean-ish"}).fit(_table())
    with pytest.raises(ConfigError, match="nope"):
        FeatureBuilder(numeric=["frequency"], categorical=[], impute={"frequency": "column:nope"}).fit(_table())


def test_feature_builder_is_a_scikit_learn_transformer():
    from sklearn.base import clone

    fb = FeatureBuilder(numeric=["frequency"], categorical=[], log=[])
    a = clone(fb).fit_transform(_table())
    b = fb.fit(_table()).transform(_table())
    assert_frame_equal(a, b)
    assert list(fb.get_feature_names_out()) == ["frequency"]
    assert_series_equal(fb.center_, pd.Series({"frequency": 2.8}), check_exact=False)


def test_feature_builder_round_trips_through_json_exactly():
    import json

    fb = FeatureBuilder(numeric=["frequency", "median_days_between_orders", "constant", "open_rate"],
                        categorical=["region"], log=["frequency"], impute={"frequency": "median"},
                        min_category_share=0.0, clip=None).fit(_table())
    saved = json.loads(json.dumps(fb.to_dict()))
    again = FeatureBuilder.from_dict(saved)
    assert again.get_params() == {**fb.get_params(), "numeric": list(fb.numeric), "categorical": list(fb.categorical),
                                  "log": list(fb.log)}
    for attr in ("numeric_features_", "categorical_features_", "log_features_", "skipped_features_",
                 "impute_values_", "center_raw_", "categories_", "n_features_in_"):
        assert getattr(again, attr) == getattr(fb, attr), attr
    assert list(again.skipped_features_) == list(fb.skipped_features_)  # order kept (JSON objects are sorted)
    assert_series_equal(again.center_, fb.center_, check_exact=True)
    assert_series_equal(again.scale_, fb.scale_, check_exact=True)
    assert_frame_equal(again.missing_report_, fb.missing_report_)
    new = pd.DataFrame({"customer_id": ["x", "y"], "frequency": [np.nan, 4.0], "constant": [1.0, 1.0],
                        "median_days_between_orders": [np.nan, 3.0], "tenure_days": [12.0, np.nan],
                        "region": ["N", "moon"]})
    assert_frame_equal(again.transform(new), fb.transform(new), check_exact=True)
    assert again.transform(new)["region"].tolist() == ["N", "Other"]


def test_feature_builder_from_dict_names_what_is_wrong():
    fb = FeatureBuilder(numeric=["frequency"], categorical=["region"], log=[]).fit(_table())
    saved = fb.to_dict()
    with pytest.raises(DataError, match="Not a saved FeatureBuilder"):
        FeatureBuilder.from_dict({**saved, "kind": "KPrototypes"})
    saved["fitted"]["scale_"] = [1.0, 2.0]
    with pytest.raises(DataError, match=r"'scale_' must be a list of numbers of shape \(1,\), got shape \(2,\)"):
        FeatureBuilder.from_dict(saved)


def test_customer_table_names_unreadable_dates_and_their_rows():
    tx = _tx().astype({"order_date": object})
    tx.loc[2, "order_date"] = "not a date"
    with pytest.raises(DataError, match=r"'order_date'.*row 4"):
        customer_table(tx, as_of="2024-02-10")
