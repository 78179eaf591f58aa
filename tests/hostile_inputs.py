"""A hostile copy of the bundled sample: markup, script URLs and spreadsheet formulas in every
text field of every input table and in the config's names. Not a test module.

Every distinct value of a text column gets one of :data:`MARKUP` (or, for customer ids, also
:data:`FORMULAS`) in front of it, so values stay distinct and the joins between the tables still
hold; order ids get theirs at the end (a leading ``C`` would make them cancellations). Each
script payload sets ``window.__pwned`` and calls ``alert``, which the browser test watches for.
``build_hostile_run`` runs ``segkit run`` once on it (shared across xdist workers).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from run_helpers import locked_once, segkit_cli, shared_root

PWN = "window.__pwned=1;alert(1)"
MARKUP: tuple[str, ...] = (
    f"<script>{PWN}</script>",
    f"<svg onload={PWN}>",
    f"<details open ontoggle={PWN}>",
    f"<img src=x onerror={PWN}>",
    f"[x](javascript:{PWN})",
    f"javascript:{PWN} ",
    "<b",
    f"\"><svg onload={PWN}>",
    "*em* _u_ `code` | pipe ~~s~~ $x$ ",
)
FORMULAS: tuple[str, ...] = (
    '=HYPERLINK("http://evil.example/","x")',
    "+1+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3+cmd|' /C calc'!A0",
)
TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "transactions": ("customer_id", "order_id", "product_id", "category", "channel"),
    "customers": ("customer_id", "country", "region", "acquisition_channel", "preferred_channel", "age_band",
                  "gender"),
    "campaign": ("campaign_id", "customer_id", "arm"),
}
#: What the attribute attacks add to a value (attributes the browser would run).
EVENT_ATTRIBUTES = ("onload", "onerror", "ontoggle")


def _hostile(values: pd.Series, payloads: tuple[str, ...], suffix: bool = False) -> dict[str, str]:
    distinct = sorted(values.dropna().astype(str).unique())
    return {v: (v + payloads[i % len(payloads)] if suffix else payloads[i % len(payloads)] + v)
            for i, v in enumerate(distinct)}


def write_hostile_inputs(folder: Path) -> Path:
    """Write the hostile tables and a config naming hostile arms, segments, tiers and currency;
    return the config's path."""
    from segkit.core.config import project_root

    sample = project_root() / "data" / "sample"
    tables = {t: pd.read_csv(sample / f"{t}.csv", dtype=str, keep_default_na=False) for t in TEXT_COLUMNS}
    ids = pd.concat([tables[t]["customer_id"] for t in TEXT_COLUMNS])
    id_map = _hostile(ids[ids != ""], MARKUP + FORMULAS)
    maps = {}
    for table, columns in TEXT_COLUMNS.items():
        for column in columns:
            if column == "customer_id":
                maps[(table, column)] = id_map
            else:
                values = tables[table][column]
                maps[(table, column)] = _hostile(values[values != ""], MARKUP, suffix=column == "order_id")
    for (table, column), mapping in maps.items():
        tables[table][column] = tables[table][column].map(lambda v: mapping.get(v, v))
        tables[table].to_csv(folder / f"{table}.csv", index=False) if False else None
    folder.mkdir(parents=True, exist_ok=True)
    for table, frame in tables.items():
        frame.to_csv(folder / f"{table}.csv", index=False)

    arm = maps[("campaign", "arm")]
    rfm = yaml.safe_load((project_root() / "segkit" / "defaults" / "rfm.yml").read_text())
    for i, segment in enumerate(rfm["segments"]):
        segment["name"] = MARKUP[i % len(MARKUP)] + segment["name"]
        segment["action"] = segment["action"] + " " + MARKUP[(i + 3) % len(MARKUP)]
    for i, level in enumerate(rfm["tiers"]["levels"]):
        level["name"] = MARKUP[(i + 5) % len(MARKUP)] + level["name"]
    config = {
        "data": {t: f"{t}.csv" for t in TEXT_COLUMNS},
        "campaign": {"control_arm": arm["control"], "expected_split": {arm["control"]: 0.2, arm["email"]: 0.8}},
        "rfm": {"segments": rfm["segments"], "tiers": rfm["tiers"]},
        "clustering": {"naming": {"default": MARKUP[1] + "Typical customers"}},
        "report": {"currency": MARKUP[0]},
    }
    path = folder / "hostile.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    (folder / "maps.json").write_text(json.dumps({f"{t}.{c}": m for (t, c), m in maps.items()}))
    return path


def build_hostile_run(tmp_path_factory) -> tuple[Path, dict]:
    """``segkit run`` on the hostile copy (once per session); the run folder and the CLI's output."""
    def build(folder: Path) -> None:
        config = write_hostile_inputs(folder / "data")
        done = segkit_cli("run", "--config", config, "--out", folder / "run")
        (folder / "cli.json").write_text(json.dumps({"returncode": done.returncode, "stdout": done.stdout,
                                                     "stderr": done.stderr}))

    folder = locked_once(shared_root(tmp_path_factory), "hostile-run", build)
    return folder / "run", json.loads((folder / "cli.json").read_text())
