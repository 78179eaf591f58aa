"""Configs of the bundled sample for ``segkit run`` on Spark, and what a run of one must show.

Not a test module. :func:`sample_config` writes ``data/configs/sample.yml`` with absolute data paths and a
given ``engine`` section; with ``inputs_as_uris`` the transactions, customers and campaign are the ``file:///…``
URIs of the sample's files, so that the one shared Spark pipeline run (``tests/test_spark_pipeline.py``) also
proves that ``segkit run`` on Spark accepts ``file:`` URIs, keeps them as written and reads the local files they
name: the order lines as local paths, the customers and campaign tables through Spark's reader of them
(:func:`segkit.data.spark_audit.load_spark_table`; :func:`assert_read_the_uri` checks its run folder). A URI handed to Spark as written is tested in
``tests/test_spark_audit.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import yaml

from segkit.core.config import bundled_sample_config


def sample_config(folder: Path, engine: Mapping[str, Any], inputs_as_uris: bool = False,
                  sections: Mapping[str, Any] | None = None) -> Path:
    """Write ``folder/<engine kind>.yml``: the bundled sample's config, data paths absolute, with ``engine``.

    Parameters
    ----------
    folder : Path
        Where the config is written.
    engine : mapping
        The ``engine`` section (``{"kind": "spark", "spark": {"master": "local[2]"}}``).
    inputs_as_uris : bool
        Give ``data.transactions``, ``data.customers`` and ``data.campaign`` as their ``file:///…`` URIs
        (``engine.kind: spark`` only; any other engine refuses a URI before the first notebook).
    sections : mapping, optional
        Whole config sections that replace the sample's (``{"clustering": {"k": 3}}``).

    Returns
    -------
    Path
        The config file, for ``segkit run --config``.
    """
    source = bundled_sample_config()
    config = yaml.safe_load(source.read_text())
    config["data"] = {table: str((source.parent / path).resolve()) if path else None
                      for table, path in config["data"].items()}
    if inputs_as_uris:
        config["data"] = {table: Path(path).as_uri() for table, path in config["data"].items()}
    config.update(sections or {})
    config["engine"] = dict(engine)
    path = folder / f"{engine['kind']}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def assert_read_the_uri(run: Path) -> None:
    """The run folder of a :func:`sample_config` with ``inputs_as_uris`` succeeded reading the URIs: its
    ``config.yml`` and ``run.json`` hold every ``data.*`` as written (``file:///…``), and ``run.json`` has
    the local files' sizes and SHA-256 (a ``file:`` URI is a file of this machine)."""
    data = yaml.safe_load((run / "config.yml").read_text())["data"]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "ok"
    for table in ("transactions", "customers", "campaign"):
        uri = data[table]
        assert uri.startswith("file:///") and uri.endswith(f"/data/sample/{table}.csv"), uri
        entry = record["inputs"][table]
        local = Path(uri.removeprefix("file://"))
        assert entry["path"] == uri and entry["size"] == local.stat().st_size and len(entry["sha256"]) == 64, entry
