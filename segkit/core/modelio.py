"""Fitted models as plain JSON-able dicts (no pickle): the checks shared by ``to_dict``/``from_dict``.

segkit's fitted estimators (:class:`segkit.features.FeatureBuilder`,
:class:`segkit.kprototypes.KPrototypes`, :class:`segkit.cluster.KMeansNumeric`,
:class:`segkit.cluster.SegmentModel`) save their state with ``to_dict()`` — nested dicts and
lists of numbers and strings only — and are rebuilt with ``Class.from_dict(d)``. Numbers are
Python floats and ints: :mod:`json` writes floats with ``repr``, which reads back as the very
same float64, so a model rebuilt from its JSON file predicts bit for bit like the fitted one.
Reading such a file runs no code (unlike pickle), so a model file is safe to open.

Each dict is ``{"kind": <class name>, "version": 1, "params": {...}, "fitted": {...}}``;
:func:`model_parts` checks the frame and names what is missing or of the wrong kind.

Examples
--------
>>> import json
>>> saved = json.loads(json.dumps(model_dict("Demo", {"k": 2}, {"center_": [0.1, 1 / 3]})))
>>> params, fitted = model_parts(saved, "Demo", params=["k"], fitted=["center_"])
>>> bool(float_array(fitted["center_"], "center_", shape=(2,))[1] == 1 / 3)
True
>>> model_parts(saved, "KPrototypes")
Traceback (most recent call last):
...
segkit.core.errors.DataError: Not a saved KPrototypes: the dict describes 'Demo'. Pass the dict that KPrototypes.to_dict() wrote.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from segkit.core.errors import DataError

__all__ = ["FORMAT_VERSION", "model_dict", "model_parts", "float_array", "pairs", "from_pairs"]

#: Version of the dict layout written by ``to_dict``; ``from_dict`` refuses other versions.
FORMAT_VERSION = 1


def model_dict(kind: str, params: Mapping[str, Any], fitted: Mapping[str, Any]) -> dict:
    """The saved form of a fitted model: its kind, the format version, its parameters and state.

    Examples
    --------
    >>> model_dict("Demo", {"k": 2}, {"w_": [1.0]})["version"]
    1
    """
    return {"kind": kind, "version": FORMAT_VERSION, "params": dict(params), "fitted": dict(fitted)}


def model_parts(data: Any, kind: str, params: Iterable[str] = (), fitted: Iterable[str] = ()) -> tuple[dict, dict]:
    """Check a dict written by :func:`model_dict` and return its ``(params, fitted)`` parts.

    Raises
    ------
    DataError
        Not a dict of this ``kind``, another format version, or a listed key is missing.

    Examples
    --------
    >>> model_parts(model_dict("Demo", {}, {}), "Demo", fitted=["w_"])
    Traceback (most recent call last):
    ...
    segkit.core.errors.DataError: The saved Demo lacks fitted.w_; it was written by another segkit version or edited. Fit the model again.
    """
    if not isinstance(data, Mapping):
        raise DataError(f"Not a saved {kind}: expected a dict (JSON object), got {type(data).__name__}.")
    if data.get("kind") != kind:
        raise DataError(f"Not a saved {kind}: the dict describes {data.get('kind')!r}. "
                        f"Pass the dict that {kind}.to_dict() wrote.")
    if data.get("version") != FORMAT_VERSION:
        raise DataError(f"The saved {kind} has format version {data.get('version')!r}; this segkit reads "
                        f"version {FORMAT_VERSION}. Fit the model again.")
    p, f = data.get("params"), data.get("fitted")
    if not isinstance(p, Mapping) or not isinstance(f, Mapping):
        raise DataError(f"The saved {kind} needs 'params' and 'fitted' objects. Fit the model again.")
    missing = [f"params.{k}" for k in params if k not in p] + [f"fitted.{k}" for k in fitted if k not in f]
    if missing:
        raise DataError(f"The saved {kind} lacks {', '.join(missing)}; it was written by another segkit "
                        "version or edited. Fit the model again.")
    return dict(p), dict(f)


def float_array(values: Any, what: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """``values`` (nested lists of numbers) as a float64 array of ``shape`` (None = any length).

    Examples
    --------
    >>> float_array([[1, 2.5]], "centroids", shape=(1, 2)).tolist()
    [[1.0, 2.5]]
    >>> float_array([1, "x"], "scale", shape=(None,))
    Traceback (most recent call last):
    ...
    segkit.core.errors.DataError: Saved model: 'scale' must be a list of numbers of shape (any,), got values that are not numbers.
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != len(shape) or any(d is not None and d != n for d, n in zip(shape, arr.shape)):
        want = ", ".join("any" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "")
        got = f"shape {arr.shape}" if arr is not None else "values that are not numbers"
        raise DataError(f"Saved model: {what!r} must be a list of numbers of shape ({want}), got {got}.")
    return arr


def pairs(mapping: Mapping) -> list[list]:
    """A dict as ``[[key, value], ...]``: keeps the key order (JSON objects are written sorted)
    and non-text keys.

    Examples
    --------
    >>> pairs({"b": 1, "a": 2})
    [['b', 1], ['a', 2]]
    """
    return [[k, v] for k, v in mapping.items()]


def from_pairs(items: Any, what: str) -> dict:
    """Inverse of :func:`pairs`.

    Examples
    --------
    >>> from_pairs([["b", 1], ["a", 2]], "impute")
    {'b': 1, 'a': 2}
    """
    try:
        return {k: v for k, v in items}
    except (TypeError, ValueError):
        raise DataError(f"Saved model: {what!r} must be a list of [key, value] pairs.") from None
