"""Public holidays explain volume gaps (issue 16): segkit.core.calendar and the audit's gap findings."""

from __future__ import annotations

import pandas as pd
import pytest

from segkit.audit import run_audit
from segkit.core.calendar import country_code, holiday_explanations, public_holidays, shop_countries
from segkit.core.config import load_config
from segkit.core.errors import ConfigError
from segkit.data.auditfacts import AuditSettings

#: Online Retail's UK holidays without orders (2010-12-24 to 2011-01-03, Easter 2011, the royal wedding,
#: the May bank holidays) and one ordinary Wednesday and Thursday lost in the export.
CLOSED = (list(pd.date_range("2010-12-24", "2011-01-03")) + list(pd.to_datetime(["2011-04-22", "2011-04-25",
          "2011-04-29", "2011-05-02", "2011-05-30"])))
LOST = list(pd.to_datetime(["2011-03-09", "2011-03-10"]))


def online_retail_like(country: str = "United Kingdom") -> pd.DataFrame:
    days = [d for d in pd.date_range("2010-12-01", "2011-06-30") if d not in CLOSED + LOST]
    n = 20  # orders a day: a day without any is far too unlikely to be chance
    return pd.DataFrame({
        "customer_id": [f"c{i % 300:03d}" for i in range(len(days) * n)],
        "order_id": [f"{i}" for i in range(len(days) * n)],
        "order_date": pd.DatetimeIndex(days).repeat(n) + pd.Timedelta(hours=10),
        "amount": 12.5,
        "country": country,
    })


def audit_with(transactions: pd.DataFrame, result: bool = False, **audit: object):
    config = load_config()
    config["audit"] = {**config["audit"], **audit}
    audited = run_audit({"transactions": transactions}, config=config)
    return audited if result else audited.findings.set_index("check")


def test_gaps_on_the_shops_public_holidays_are_a_note_naming_them_and_the_rest_a_warning():
    findings = audit_with(online_retail_like())
    lost, holiday = findings.loc["volume_gaps"], findings.loc["volume_gaps_holidays"]
    assert (lost["severity"], lost["count"]) == ("warning", 2)
    assert lost["examples"].startswith("2011-03-09 to 2011-03-10 (2 days")
    assert holiday["severity"] == "info" and holiday["count"] == len(CLOSED)
    assert "period(s) of GB" in holiday["message"]
    assert "Christmas Day (GB)" in holiday["examples"] and "Good Friday (GB)" in holiday["examples"]
    gaps = audit_with(online_retail_like(), result=True).gaps.set_index("start")["holidays"]
    # each gap names its own holiday: the royal wedding (Friday) and May Day (Monday) are two gaps
    assert gaps["2011-04-29"] == "Wedding of William and Catherine (GB)" and gaps["2011-05-02"] == "May Day (GB)"
    assert gaps["2011-03-09"] == ""
    # countries from the config win over the data; none at all: every gap a warning, as before
    assert audit_with(online_retail_like(), holiday_countries=["GB"]).loc["volume_gaps", "count"] == 2
    plain = audit_with(online_retail_like(), holiday_countries=[])
    assert "volume_gaps_holidays" not in plain.index and plain.loc["volume_gaps", "count"] == len(CLOSED) + 2
    # another country's calendar does not explain the UK's bank holidays (Germany: Christmas and Easter only)
    german = audit_with(online_retail_like("Germany"), result=True).gaps.set_index("start")["holidays"]
    assert german["2011-04-29"] == "Labor Day (DE)"
    assert german["2010-12-24"].startswith("Christmas Day (DE); Second Day of Christmas (DE)")


def test_the_shops_country_is_the_most_common_known_one_or_the_configured_ones():
    assert shop_countries(None, pd.Series(["EIRE", "United Kingdom", "United Kingdom", "Unspecified"] * 3)) == ("GB",)
    assert shop_countries(None, pd.Series(["Unspecified", "European Community"])) == ()
    assert shop_countries(None, None) == () and shop_countries(["gbr", "IE", "GB"]) == ("GB", "IE")
    assert [country_code(v) for v in ("EIRE", "USA", "Channel Islands", "")] == ["IE", "US", None, None]
    config = load_config()
    with pytest.raises(ConfigError, match="audit.holiday_countries: 'Atlantis' is not a country"):
        AuditSettings.from_config({**config, "audit": {**config["audit"], "holiday_countries": ["Atlantis"]}})
    with pytest.raises(ConfigError, match="audit.holiday_countries = 5"):
        AuditSettings.from_config({**config, "audit": {**config["audit"], "holiday_countries": 5}})
    assert AuditSettings.from_config(load_config()).holiday_countries is None


def test_holidays_explain_a_gap_only_when_every_gap_day_is_on_or_next_to_one():
    days = public_holidays(("GB",), pd.Timestamp("2011-04-01"), pd.Timestamp("2011-05-31"))
    assert days["2011-04-25"] == "Easter Monday (GB: ENG, NIR, WLS)" and pd.Timestamp("2011-04-23") not in days.index
    gaps = pd.DataFrame({"start": pd.to_datetime(["2011-04-22", "2011-04-26", "2011-05-10"]),
                         "end": pd.to_datetime(["2011-04-25", "2011-05-03", "2011-05-10"])})
    gap_days = pd.Series(pd.to_datetime(["2011-04-22", "2011-04-23", "2011-04-25", "2011-04-26", "2011-05-03",
                                         "2011-05-10"]))
    explained = holiday_explanations(gaps, gap_days, ("GB",))
    assert explained[0].startswith("Good Friday (GB); Easter Monday (GB: ENG, NIR, WLS)")
    assert explained[1] != ""  # 26 April and 3 May lie within 3 days of Easter Monday and the May holiday
    assert explained[2] == ""  # 10 May is 8 days from any holiday
    assert holiday_explanations(gaps, gap_days, ("GB",), bridge_days=0)[1] == ""
    assert (holiday_explanations(gaps, gap_days, ()) == "").all()


def test_each_gap_names_its_own_holiday_and_a_bridge_day_the_nearest_one():
    # Good Friday and Easter Monday are two gaps (the shop traded on the Sunday): neither names the other
    gaps = pd.DataFrame({"start": pd.to_datetime(["2011-04-22", "2011-04-25", "2010-12-24", "2011-04-23"]),
                         "end": pd.to_datetime(["2011-04-22", "2011-04-25", "2010-12-24", "2011-04-23"])})
    explained = holiday_explanations(gaps, gaps["start"], ("GB",))
    assert explained.tolist() == ["Good Friday (GB)", "Easter Monday (GB: ENG, NIR, WLS)",
                                  "Christmas Day (GB)",  # 24 December: the nearest holiday, the day after
                                  "Good Friday (GB)"]    # Easter Saturday: one day after Good Friday, two before Monday
    # a bridge day equally near two holidays names both
    # (Wednesday 27 April 2011: two days after Easter Monday, two before the royal wedding)
    both = pd.DataFrame({"start": pd.to_datetime(["2011-04-27"]), "end": pd.to_datetime(["2011-04-27"])})
    assert holiday_explanations(both, both["start"], ("GB",))[0] == ("Easter Monday (GB: ENG, NIR, WLS); "
                                                                     "Wedding of William and Catherine (GB)")
