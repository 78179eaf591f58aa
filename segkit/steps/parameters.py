"""A notebook's ``parameters`` cell, checked the way ``segkit run`` checks its flags.

:func:`segkit.steps.pipeline.open_run` calls :func:`resolve_config_path` and
:func:`check_notebook_parameters` before any work: a value set in the parameters cell that the
configuration does not allow (``bins = 25`` in 02_rfm) is a :class:`~segkit.core.errors.ConfigError`
that names the parameter, says it was set in that notebook's parameters cell, and keeps the
allowed values from the check it failed — not a traceback that blames the config file.

Examples
--------
>>> check_notebook_parameters("02_rfm", {"rfm": {"bins": 25}})
Traceback (most recent call last):
...
segkit.core.errors.ConfigError: bins = 25: use a whole number of score levels from 2 to 20 (5 is the usual RFM scale). \
bins was set in the parameters cell of notebook 02_rfm: change it there, or set it to None to use rfm.bins (5) \
of the configuration.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping

from segkit.core.config import deep_merge, load_config, project_root
from segkit.core.dates import parse_as_of
from segkit.core.errors import ConfigError

__all__ = ["SETTINGS_CHECKS", "where_set", "resolve_config_path", "check_notebook_parameters",
           "blame_parameters_cell"]


def _audit(cfg: Mapping) -> Any:
    from segkit.data.auditfacts import AuditSettings

    return AuditSettings.from_config(cfg)


def _rfm(cfg: Mapping) -> Any:
    from segkit.rfm import RFMSettings

    return RFMSettings.from_config(cfg["rfm"])


def _clustering(cfg: Mapping) -> Any:
    from segkit.cluster import ClusterSettings

    return ClusterSettings.from_config(cfg["clustering"])


def _lifecycle(cfg: Mapping) -> Any:
    from dataclasses import fields

    from segkit.lifecycle import LifecycleSettings, StageThresholds

    settings = LifecycleSettings.from_config(cfg["lifecycle"])
    # The stage thresholds are checked when the stager is fitted, after the upstream steps: check
    # the ones given now (the data-driven ones, None, stand in as 1 day).
    names = {f.name for f in fields(StageThresholds)}
    given = {k: v for k, v in settings.stager_params.items() if k in names and v is not None}
    StageThresholds(**{"churn_window_days": 1.0, "new_window_days": 1.0, "base_interval_days": 1.0, **given})
    return settings


def _campaign(cfg: Mapping) -> Any:
    from segkit.campaign.settings import CampaignSettings

    return CampaignSettings.from_config(cfg)


#: Per config section that notebooks set knobs of: the check its step runs on the configuration
#: (the same settings parser, so a parameter is allowed exactly when the config value would be).
SETTINGS_CHECKS: dict[str, Callable[[Mapping], Any]] = {
    "audit": _audit, "rfm": _rfm, "clustering": _clustering, "lifecycle": _lifecycle, "campaign": _campaign,
}


def where_set(notebook: str, names: list[str]) -> str:
    """How a message names the origin of parameters.

    Examples
    --------
    >>> where_set("03_clustering", ["k_min", "k_max"])
    'k_min and k_max were set in the parameters cell of notebook 03_clustering'
    """
    listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    return f"{listed} {'were' if len(names) > 1 else 'was'} set in the parameters cell of notebook {notebook}"


def resolve_config_path(value: str | Path, notebook: str) -> Path:
    """The config file a notebook's ``config_path`` names.

    An absolute path is taken as it is; a relative one is looked up from the working folder
    (JupyterLab: ``notebooks/``), from the repository root, then from ``notebooks/``.

    Raises
    ------
    ConfigError
        No such file: the message lists every path tried.
    """
    given = Path(value).expanduser()
    if given.is_absolute():
        tried = [given]
    else:
        root = project_root()
        tried = list(dict.fromkeys(p.resolve() for p in (Path.cwd() / given, root / given, root / "notebooks" / given)))
    for path in tried:
        if path.is_file():
            return path
    raise ConfigError(
        f"config_path = {str(value)!r}: no such config file. Tried {', '.join(map(str, tried))}. "
        f"{where_set(notebook, ['config_path'])}: give a path relative to the repository root "
        f"(e.g. data/configs/sample.yml) or to notebooks/, an absolute path, or None for the bundled sample.")


def _fails(check: Callable[[Mapping], Any], cfg: Mapping) -> ConfigError | None:
    try:
        check(cfg)
    except ConfigError as exc:
        return exc
    return None


def blame_parameters_cell(error: ConfigError, notebook: str, section: str, culprits: list[str],
                          base_section: Mapping[str, Any]) -> ConfigError:
    """``error`` (found on the configuration with the notebook's values) told as a parameters-cell mistake.

    The culprits are named as in the cell (``bins``, not ``rfm.bins``), the defaults file and the
    config's wording are left out (``null`` alternatives: in the cell, None means "use the
    configuration", which the closing sentence says), and the message ends with where the values
    were set and what None falls back to.

    Parameters
    ----------
    error : ConfigError
        The step's or the settings check's error.
    notebook : str
        The notebook whose parameters cell set the values.
    section : str
        Config section of the culprits (``campaign``).
    culprits : list of str
        The knobs of ``section`` that caused ``error``, as named in the cell.
    base_section : mapping
        ``section`` of the configuration without the notebook's values (for the fallbacks).

    Examples
    --------
    >>> print(blame_parameters_cell(ConfigError("clustering.k = 1; use a whole number ≥ 2, or null to choose k."),
    ...                             "03_clustering", "clustering", ["k"], {"k": None}))
    k = 1: use a whole number ≥ 2. k was set in the parameters cell of notebook 03_clustering: change it there, \
or set it to None to use clustering.k (data-driven) of the configuration.
    """
    message = str(error)
    for key in culprits:  # the analyst knows the parameter by its name in the cell
        message = re.sub(rf"\b{re.escape(section)}\.{re.escape(key)}\b", key, message)
        message = re.sub(rf"^({re.escape(key)} = \S+); ", r"\1: ", message)  # "k = 1: use …", as the others
    message = re.sub(rf"^{re.escape(section)}: ", "", message)
    message = re.sub(r"; see segkit/defaults/\w+\.yml\.", ".", message)  # the cell, not the defaults file
    message = re.sub(r",? or null (?:to|=) [^.;)]*", "", message)  # YAML's null: None in the cell says it below
    defaults = ", ".join(f"{section}.{key}" + (f" ({base_section[key]!r})" if base_section.get(key) is not None
                                               else " (data-driven)") for key in culprits)
    pronoun = "it" if len(culprits) == 1 else "them"
    return ConfigError(f"{message} {where_set(notebook, culprits)}: change {pronoun} there, or set {pronoun} to None "
                       f"to use {defaults} of the configuration.")


def check_notebook_parameters(notebook: str, overrides: Mapping[str, Mapping[str, Any]],
                              config_path: str | Path | None = None, as_of: Any = None,
                              seed: Any = None) -> None:
    """Raise a :class:`ConfigError` naming the parameter when a parameters-cell value is not allowed.

    Parameters
    ----------
    notebook : str
        The notebook whose parameters cell set the values.
    overrides : mapping
        ``{section: {key: value}}`` of the notebook's own knobs that are not None; a knob's name
        in the parameters cell is its key (``bins`` → ``rfm.bins``).
    config_path : str or Path, optional
        The (resolved) config file the knobs override; None = segkit's defaults.
    as_of, seed : optional
        The core parameters (None = from the config).

    Notes
    -----
    A check that also fails without the notebook's values is left to the step, whose message
    names the config file: the parameters did not cause it.
    """
    problems: list[str] = []
    if as_of is not None:
        try:
            parse_as_of(as_of)
        except ConfigError as exc:
            problems.append(f"{exc} {where_set(notebook, ['as_of'])}: change it there, or set it to None "
                            "to use run.as_of of the configuration (else the day after the last order).")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        problems.append(f"seed = {seed!r}: use a whole number ≥ 0 (e.g. 42). {where_set(notebook, ['seed'])}: "
                        "change it there, or set it to None to use run.seed of the configuration.")
    if problems:
        raise ConfigError(" ".join(problems))
    base = None
    for section, values in overrides.items():
        check = SETTINGS_CHECKS.get(section)
        if check is None or not values:
            continue
        base = base if base is not None else load_config(config_path)
        error = _fails(check, deep_merge(base, {section: values}))
        if error is None or _fails(check, base) is not None:
            continue
        culprits = [key for key in values if _fails(check, deep_merge(base, {section: {key: values[key]}}))] or list(values)
        raise blame_parameters_cell(error, notebook, section, culprits, base[section])
