"""Configs of the bundled sample for ``segkit run`` on Spark, and what a run of one must show.

Not a test module. :func:`sample_config` writes ``data/configs/sample.yml`` with absolute data paths and a
given ``engine`` section; with ``transactions_as_uri`` the transactions are the ``file:///…`` URI of the
sample's file, so that the one shared Spark pipeline run (``tests/test_spark_pipeline.py``) also proves that
``segkit run`` on Spark accepts a ``file:`` URI, keeps it as written and reads the local file it names
(:func:`assert_read_the_uri` checks its run folder). A URI handed to Spark as written is tested in
``tests/test_spark_audit.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import yaml

from segkit.core.config import bundled_sample_config


def sample_config(folder: Path, engine: Mapping[str, Any], transactions_as_uri: bool = False) -> Path:
    """Write ``folder/<engine kind>.yml``: the bundled sample's config, data paths absolute, with ``engine``.

    Parameters
    ----------
    folder : Path
        Where the config is written.
    engine : mapping
        The ``engine`` section (``{"kind": "spark", "spark": {"master": "local[2]"}}``).
    transactions_as_uri : bool
        Give ``data.transactions`` as its ``file:///…`` URI (``engine.kind: spark`` only; any other engine
        refuses a URI before the first notebook).

    Returns
    -------
    Path
        The config file, for ``segkit run --config``.
    """
    source = bundled_sample_config()
    config = yaml.safe_load(source.read_text())
    config["data"] = {table: str((source.parent / path).resolve()) if path else None
                      for table, path in config["data"].items()}
    if transactions_as_uri:
        config["data"]["transactions"] = Path(config["data"]["transactions"]).as_uri()
    config["engine"] = dict(engine)
    path = folder / f"{engine['kind']}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def assert_read_the_uri(run: Path) -> None:
    """The run folder of a :func:`sample_config` with ``transactions_as_uri`` succeeded reading the URI: its
    ``config.yml`` and ``run.json`` hold ``data.transactions`` as written (``file:///…``), and ``run.json``
    has the local file's size and SHA-256 (a ``file:`` URI is a file of this machine)."""
    uri = yaml.safe_load((run / "config.yml").read_text())["data"]["transactions"]
    assert uri.startswith("file:///") and uri.endswith("/data/sample/transactions.csv"), uri
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "ok"
    entry = record["inputs"]["transactions"]
    local = Path(uri.removeprefix("file://"))
    assert entry["path"] == uri and entry["size"] == local.stat().st_size and len(entry["sha256"]) == 64, entry
