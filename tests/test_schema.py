"""Canonical table contracts (segkit.core.schema): dtype coercion, derived columns, validation errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

from segkit.core.errors import ConfigError, DataError
from segkit.core.schema import (
    CAMPAIGN,
    CUSTOMERS,
    TABLES,
    TRANSACTIONS,
    Where,
    coerce_boolean,
    coerce_datetime,
    coerce_float,
    coerce_id,
    coerce_integer,
    get_spec,
    suggest_columns,
    validate,
)

W = Where("shop.csv", {"order_date": "InvoiceDate"})


def ts(*values):
    return pd.Series(pd.to_datetime(list(values), format="ISO8601"), dtype="datetime64[ns]")


# ------------------------------------------------------------------------------------------ ids


def test_ids_keep_leading_zeros_and_lose_float_suffixes_and_whitespace():
    out = coerce_id(pd.Series(["00123", " 12346.0 ", "12346.00", "C489449", "", None, "-5.0", "1.5"]))
    assert out.tolist() == ["00123", "12346", "12346", "C489449", pd.NA, pd.NA, "-5", "1.5"]
    assert out.dtype == "string"


def test_numeric_ids_from_parquet_become_plain_integer_strings():
    assert coerce_id(pd.Series([13085.0, np.nan])).tolist() == ["13085", pd.NA]
    assert coerce_id(pd.Series([7, 12], dtype="int64")).tolist() == ["7", "12"]


# ------------------------------------------------------------------------------------- numbers


def test_numbers_are_parsed_and_empty_cells_are_missing():
    assert_series_equal(coerce_float(pd.Series(["1.5", " -2 ", "", "1e3"]), W, "amount"),
                        pd.Series([1.5, -2.0, np.nan, 1000.0]))


def test_decimal_comma_numbers_are_read_when_io_decimal_is_comma():
    out = coerce_float(pd.Series(["12,50", "1.234,5", "-3", ""]), W, "amount", decimal=",")
    assert out.tolist()[:3] == [12.5, 1234.5, -3.0] and np.isnan(out.iloc[3])


@pytest.mark.parametrize(("value", "hint"), [
    ("12,50", "io.decimal: ','"),
    ("1,234.50", "thousands separators"),
    ("n/a", "leave a cell empty"),
    ("€12", "currency"),
    ("inf", "Numbers only"),
])
def test_text_in_a_numeric_column_names_file_column_rows_values_and_fix(value, hint):
    with pytest.raises(DataError) as err:
        coerce_float(pd.Series(["1", value, "2", value]), W, "amount")
    msg = str(err.value)
    assert msg.startswith("shop.csv: column 'amount': text that is not a number")
    assert repr(value) in msg and "rows 3, 5" in msg and hint in msg


def test_native_numbers_pass_and_infinite_ones_are_rejected():
    assert coerce_float(pd.Series([1, 2], dtype="int64"), W, "quantity").tolist() == [1.0, 2.0]
    with pytest.raises(DataError, match=r"infinite values \(row 2\)"):
        coerce_float(pd.Series([np.inf]), W, "amount")


def test_birth_year_must_be_whole():
    assert coerce_integer(pd.Series(["1980", "1975.0", ""]), W, "birth_year").tolist() == [1980, 1975, pd.NA]
    with pytest.raises(DataError, match=r"whole numbers, found '1980.5' \(row 3\)"):
        coerce_integer(pd.Series(["1980", "1980.5"]), W, "birth_year")


# ------------------------------------------------------------------------------------- booleans


def test_boolean_flags_accept_the_usual_spellings_in_any_case():
    raw = pd.Series(["1", "0", "TRUE", "false", "Yes", "no", "Y", "n", " 1.0 ", "", None])
    expected = [True, False, True, False, True, False, True, False, True, pd.NA, pd.NA]
    out = coerce_boolean(raw, W, "opened")
    assert out.dtype == "boolean" and out.tolist() == expected


def test_native_booleans_and_zero_one_numbers_are_flags():
    assert coerce_boolean(pd.Series([True, False]), W, "opened").tolist() == [True, False]
    assert coerce_boolean(pd.Series([1.0, 0.0, np.nan]), W, "opened").tolist() == [True, False, pd.NA]


def test_unexpected_flag_values_are_shown_with_rows_and_accepted_spellings():
    with pytest.raises(DataError) as err:
        coerce_boolean(pd.Series(["yes", "maybe", "2", "maybe"]), W, "clicked")
    msg = str(err.value)
    assert "column 'clicked': unexpected values for a yes/no column: 'maybe', '2' (rows 3, 4, 5)" in msg
    assert "1/0, true/false, yes/no or y/n" in msg


# ---------------------------------------------------------------------------------------- dates


def test_iso_dates_and_datetimes_parse_to_naive_nanoseconds():
    out = coerce_datetime(pd.Series(["2009-12-01 07:45:00", "2010-01-04", " ", "2010-01-04T09:24:10"]), W,
                          "order_date")
    assert out.dtype == "datetime64[ns]"
    assert_series_equal(out, ts("2009-12-01 07:45:00", "2010-01-04", None, "2010-01-04 09:24:10"))


def test_time_zone_aware_values_keep_their_wall_time():
    out = coerce_datetime(pd.Series(["2024-03-01T10:00:00+01:00", "2024-03-02T11:30:00+01:00"]), W, "order_date")
    assert_series_equal(out, ts("2024-03-01 10:00", "2024-03-02 11:30"))


def test_summer_and_winter_utc_offsets_in_one_column_keep_local_wall_time():
    out = coerce_datetime(pd.Series(["2024-01-15T10:00:00+01:00", "2024-07-15T10:00:00+02:00", "2024-07-16T08:00:00Z"]),
                          W, "order_date")
    assert_series_equal(out, ts("2024-01-15 10:00", "2024-07-15 10:00", "2024-07-16 08:00"))


def test_excel_day_numbers_in_a_text_export_are_explained():
    with pytest.raises(DataError, match=r"'45292' \(row 2\)\. These look like Excel day numbers"):
        coerce_datetime(pd.Series(["45292"]), W, "order_date")


def test_numeric_dates_follow_dayfirst_with_times_am_pm_and_two_digit_years():
    raw = pd.Series(["12/1/2009 7:45", "01.02.24", "3-4-2024 1:05:09 PM", "3/4/2024 12:10 am"])
    assert_series_equal(coerce_datetime(raw, W, "order_date"),
                        ts("2009-12-01 07:45", "2024-01-02", "2024-03-04 13:05:09", "2024-03-04 00:10"))
    assert_series_equal(coerce_datetime(raw, W, "order_date", dayfirst=True),
                        ts("2009-01-12 07:45", "2024-02-01", "2024-04-03 13:05:09", "2024-04-03 00:10"))


def test_month_name_dates_with_a_year_are_read():
    out = coerce_datetime(pd.Series(["01-Dec-2009", "Dec 2, 2009 10:00", "01-Dec-2009"]), W, "order_date")
    assert_series_equal(out, ts("2009-12-01", "2009-12-02 10:00", "2009-12-01"))


def test_explicit_date_format_is_applied_and_mismatches_are_shown():
    out = coerce_datetime(pd.Series(["31.12.2023 23:59"]), W, "order_date", date_format="%d.%m.%Y %H:%M")
    assert_series_equal(out, ts("2023-12-31 23:59"))
    with pytest.raises(DataError) as err:
        coerce_datetime(pd.Series(["31.12.2023 23:59", "2024-01-01"]), W, "order_date", date_format="%d.%m.%Y %H:%M")
    assert ("shop.csv: column 'InvoiceDate' (mapped to 'order_date'): dates that do not match io.date_format "
            "'%d.%m.%Y %H:%M': '2024-01-01' (row 3)") in str(err.value)


def test_unparseable_dates_show_values_rows_and_the_io_options():
    with pytest.raises(DataError) as err:
        coerce_datetime(pd.Series(["2024-01-01", "yesterday", "2024-02-30", "5"]), W, "order_date")
    msg = str(err.value)
    assert "values that are not dates: 'yesterday', '2024-02-30', '5' (rows 3, 4, 5)" in msg
    assert "io.date_format" in msg and "io.dayfirst" in msg


def test_iso_mixed_with_day_month_dates_is_an_error():
    with pytest.raises(DataError) as err:
        coerce_datetime(pd.Series(["2024-01-05", "2024-01-06", "05/01/2024"]), W, "order_date")
    msg = str(err.value)
    assert "mixed date formats" in msg and "'2024-01-05' (row 2)" in msg and "'05/01/2024' (row 4)" in msg


def test_day_first_and_month_first_rows_in_one_column_are_ambiguous():
    with pytest.raises(DataError) as err:
        coerce_datetime(pd.Series(["13/01/2024", "02/02/2024", "01/13/2024"]), W, "order_date", dayfirst=True)
    msg = str(err.value)
    assert "ambiguous dates: '13/01/2024' (row 2) is day-first but '01/13/2024' (row 4) is month-first" in msg


def test_day_first_values_read_month_first_suggest_dayfirst():
    with pytest.raises(DataError, match=r"day-first dates such as '25/12/2023' .*\(row 3\)\. Set io.dayfirst: true"):
        coerce_datetime(pd.Series(["01/12/2023", "25/12/2023"]), W, "order_date")
    with pytest.raises(DataError, match=r"month-first dates such as '12/25/2023' .*Set io.dayfirst: false"):
        coerce_datetime(pd.Series(["12/25/2023"]), W, "order_date", dayfirst=True)


def test_impossible_numeric_dates_are_reported():
    with pytest.raises(DataError, match=r"impossible dates: '31/02/2024' \(row 2\)"):
        coerce_datetime(pd.Series(["31/02/2024"]), W, "order_date", dayfirst=True)


def test_placeholder_dates_beyond_2262_are_rejected():
    with pytest.raises(DataError, match=r"dates outside 1677-2262: '9999-12-31.*' \(row 3\).*left empty"):
        coerce_datetime(pd.Series(["2024-01-01", "9999-12-31"]), W, "signup_date")


def test_numbers_in_a_date_column_are_rejected():
    with pytest.raises(DataError, match="numbers where dates are expected: '40000'"):
        coerce_datetime(pd.Series([40000]), W, "order_date")


def test_native_datetimes_and_date_objects_pass():
    import datetime as dt

    out = coerce_datetime(pd.Series([dt.date(2024, 1, 2), None], dtype=object), W, "signup_date")
    assert_series_equal(out, ts("2024-01-02", None))


# ------------------------------------------------------------------------------------- validate


def test_transactions_without_amount_get_quantity_times_price_and_row_order_ids():
    raw = pd.DataFrame({"customer_id": ["1", "2", None], "order_date": ["2024-01-01"] * 3,
                        "quantity": ["2", "-1", "3"], "unit_price": ["2.5", "4", ""]})
    out = validate(raw, "transactions")
    assert list(out.columns) == list(TRANSACTIONS.columns)
    assert out["amount"].tolist()[:2] == [5.0, -4.0] and np.isnan(out["amount"].iloc[2])
    assert out["order_id"].tolist() == ["row-2", "row-3", "row-4"]
    assert out["customer_id"].isna().tolist() == [False, False, True]  # guest checkout kept
    assert out.attrs["absent_columns"] == ["order_id", "amount", "product_id", "category", "channel"]
    assert {c: str(t) for c, t in out.dtypes.items()} == TRANSACTIONS.dtypes


def test_given_amount_is_kept_even_when_quantity_and_price_disagree():
    raw = pd.DataFrame({"customer_id": ["1"], "order_date": ["2024-01-01"], "order_id": ["A1"],
                        "amount": ["9.99"], "quantity": ["2"], "unit_price": ["4"]})
    assert validate(raw, "transactions")["amount"].tolist() == [9.99]


def test_generated_order_ids_follow_the_file_row_numbers():
    raw = pd.DataFrame({"customer_id": ["1", "2"], "order_date": ["2024-01-01"] * 2, "amount": ["1", "2"]},
                       index=[0, 5])
    assert validate(raw, "transactions")["order_id"].tolist() == ["row-2", "row-7"]


def test_transactions_keep_a_country_column_and_drop_unknown_ones():
    raw = pd.DataFrame({"customer_id": ["1"], "order_date": ["2024-01-01"], "amount": ["1"],
                        "country": [" France "], "description": ["MUG"]})
    out = validate(raw, "transactions")
    assert list(out.columns) == [*TRANSACTIONS.columns, "country"]
    assert out["country"].tolist() == ["France"]


def test_customers_get_every_canonical_column_with_its_dtype():
    out = validate(pd.DataFrame({"customer_id": ["00123", "7"], "birth_year": ["1980", ""],
                                 "email_opt_in": ["y", "n"]}), "customers")
    expected = pd.DataFrame({
        "customer_id": pd.array(["00123", "7"], dtype="string"),
        "signup_date": pd.Series([pd.NaT, pd.NaT], dtype="datetime64[ns]"),
        "country": pd.array([pd.NA, pd.NA], dtype="string"),
        "region": pd.array([pd.NA, pd.NA], dtype="string"),
        "acquisition_channel": pd.array([pd.NA, pd.NA], dtype="string"),
        "preferred_channel": pd.array([pd.NA, pd.NA], dtype="string"),
        "email_opt_in": pd.array([True, False], dtype="boolean"),
        "birth_year": pd.array([1980, pd.NA], dtype="Int64"),
        "age_band": pd.array([pd.NA, pd.NA], dtype="string"),
        "gender": pd.array([pd.NA, pd.NA], dtype="string"),
    })
    assert_frame_equal(out, expected)


def test_duplicate_customer_ids_are_an_error_even_when_spelled_as_floats():
    with pytest.raises(DataError) as err:
        validate(pd.DataFrame({"customer_id": ["7", "8", "7.0", "9", "8"]}), "customers", source="crm.csv")
    msg = str(err.value)
    assert msg.startswith("crm.csv: column 'customer_id': duplicate ids: '7', '8' (rows 2, 3, 4, 6)")
    assert "one row per customer" in msg


def test_missing_customer_ids_in_customers_are_an_error():
    with pytest.raises(DataError, match=r"crm.csv: column 'customer_id': missing values \(row 3\)"):
        validate(pd.DataFrame({"customer_id": ["7", " "]}), "customers", source="crm.csv")


def test_campaign_needs_an_arm_on_every_row_and_counts_rows_as_delivered_by_default():
    ok = validate(pd.DataFrame({"campaign_id": ["c1", "c1"], "customer_id": ["1", "2"],
                                "arm": ["control", "email"], "opened": ["0", "1"]}), "campaign")
    assert ok["delivered"].tolist() == [True, True] and ok["opened"].tolist() == [False, True]
    assert "delivered" in ok.attrs["absent_columns"]
    with pytest.raises(DataError, match=r"column 'Group' \(mapped to 'arm'\): missing values \(row 3\)"):
        validate(pd.DataFrame({"campaign_id": ["c1", "c1"], "customer_id": ["1", "2"], "arm": ["control", ""]}),
                 "campaign", labels={"arm": "Group"})


def test_a_customer_twice_in_one_campaign_is_an_error():
    with pytest.raises(DataError, match=r"repeated campaign_id \+ customer_id pairs: 'c1 / 1' \(rows 2, 4\)"):
        validate(pd.DataFrame({"campaign_id": ["c1", "c1", "c1"], "customer_id": ["1", "2", "1"],
                               "arm": ["a", "b", "a"]}), "campaign")


def test_missing_order_dates_are_an_error():
    with pytest.raises(DataError, match=r"column 'order_date': missing values \(row 3\)"):
        validate(pd.DataFrame({"customer_id": ["1", "2"], "order_date": ["2024-01-01", ""], "amount": ["1", "2"]}),
                 "transactions")


def test_missing_required_columns_and_revenue_columns_are_named():
    with pytest.raises(DataError, match="required column 'order_date' is missing"):
        validate(pd.DataFrame({"customer_id": ["1"], "amount": ["1"]}), "transactions")
    with pytest.raises(DataError, match=r"needs 'amount' or 'quantity' \+ 'unit_price'"):
        validate(pd.DataFrame({"customer_id": ["1"], "order_date": ["2024-01-01"], "quantity": ["1"]}),
                 "transactions")


def test_validate_leaves_its_input_untouched():
    raw = pd.DataFrame({"customer_id": [" 1.0"], "order_date": ["2024-01-01"], "amount": ["1"]})
    before = raw.copy()
    validate(raw, "transactions")
    assert_frame_equal(raw, before)


def test_every_table_spec_is_consistent():
    for spec in TABLES.values():
        assert set(spec.required) <= set(spec.columns)
        assert set(spec.not_null) <= set(spec.columns)
        assert all(set(group) <= set(spec.columns) for group in (*spec.one_of, *spec.unique))
    assert CUSTOMERS.unique == (("customer_id",),) and CAMPAIGN.required == ("campaign_id", "customer_id", "arm")
    with pytest.raises(ConfigError, match="Unknown table 'orders'"):
        get_spec("orders")


def test_column_suggestions_use_synonyms_and_spelling():
    assert suggest_columns("order_date", ["Invoice", "InvoiceDate", "Price"]) == ["InvoiceDate"]
    assert suggest_columns("unit_price", ["Quantity", "Price"]) == ["Price"]
    assert suggest_columns("customer_id", ["Customer ID", "Country"]) == ["Customer ID"]
    assert suggest_columns("arm", ["x", "y"]) == []


def test_validation_is_vectorised_enough_for_a_large_frame():
    n = 200_000
    rng = np.random.default_rng(0)
    raw = pd.DataFrame({
        "customer_id": pd.Series(rng.integers(1, 50_000, n)).astype(str) + ".0",
        "order_date": pd.Series(pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, n), "h"))
        .dt.strftime("%d/%m/%Y %H:%M"),
        "quantity": rng.integers(1, 5, n).astype(str),
        "unit_price": rng.uniform(1, 20, n).round(2).astype(str),
    })
    out = validate(raw, "transactions", dayfirst=True)
    assert len(out) == n and out["order_date"].notna().all()
    assert not out["customer_id"].str.endswith(".0").any()
    first = pd.Timestamp(pd.to_datetime(raw["order_date"].iloc[0], format="%d/%m/%Y %H:%M"))
    assert out["order_date"].iloc[0] == first
