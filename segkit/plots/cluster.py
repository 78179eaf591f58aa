"""Plots of notebook 03 (clustering): choice of k, cluster sizes, profiles, stability, projection.

Every function takes ``ax=None`` and returns the ``Axes`` (titled, axes labelled with units).

Examples
--------
>>> import pandas as pd
>>> sel = pd.DataFrame({"k": [2, 3, 4], "cost": [90.0, 50.0, 40.0], "silhouette": [0.3, 0.4, 0.35]})
>>> plot_selection(sel, chosen_k=3).get_title()
'Choosing the number of clusters'
"""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from segkit.plots import label, new_axes

__all__ = ["plot_selection", "plot_cluster_sizes", "plot_profile_heatmap", "plot_stability",
    "plot_projection"]


def plot_selection(selection: pd.DataFrame, chosen_k: int, ax: plt.Axes | None = None) -> plt.Axes:
    """Within-cluster cost (elbow, left axis) and silhouette (right axis) against k.

    Parameters
    ----------
    selection : DataFrame
        ``k, cost, silhouette`` (``ClusterResult.selection``).
    chosen_k : int
        Marked with a dashed line.

    Examples
    --------
    >>> sel = pd.DataFrame({"k": [2, 3], "cost": [9.0, 5.0], "silhouette": [0.3, 0.4]})
    >>> plot_selection(sel, 3).get_ylabel()
    'Within-cluster cost (sum of dissimilarities)'
    """
    ax = new_axes(ax)
    colors = sns.color_palette()
    ax.plot(selection["k"], selection["cost"], marker="o", color=colors[0], label="cost")
    ax.set_xticks(list(selection["k"]))
    right = ax.twinx()
    right.plot(selection["k"], selection["silhouette"], marker="s", color=colors[1], label="silhouette")
    right.set_ylabel("Silhouette (−1 to 1, higher = better separated)")
    right.grid(False)
    ax.axvline(chosen_k, color="0.3", linestyle="--", linewidth=1)
    ax.text(chosen_k, ax.get_ylim()[1], f" chosen k = {chosen_k}", va="top", ha="left", fontsize=9)
    handles = ax.get_lines()[:1] + right.get_lines()[:1]
    ax.legend(handles, ["cost", "silhouette"], loc="center right")
    return label(ax, "Choosing the number of clusters", "Number of clusters k",
                 "Within-cluster cost (sum of dissimilarities)")


def plot_cluster_sizes(profiles: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Share of customers and (when known) of net revenue per cluster, as horizontal bars.

    Examples
    --------
    >>> prof = pd.DataFrame({"cluster": ["1", "2", "All customers"], "cluster_name": ["A", "B", "All customers"],
    ...                      "share": [0.7, 0.3, 1.0], "revenue_share": [0.4, 0.6, 1.0]})
    >>> plot_cluster_sizes(prof).get_xlabel()
    'Share (%)'
    """
    ax = new_axes(ax)
    rows = profiles[profiles["cluster"] != "All customers"]
    names = rows["cluster_name"].astype(str).tolist()
    y = np.arange(len(rows))
    cols = [("share", "customers")] + ([("revenue_share", "net revenue")] if "revenue_share" in rows else [])
    height = 0.8 / len(cols)
    for i, (col, text) in enumerate(cols):
        ax.barh(y + i * height, 100 * rows[col].astype(float), height=height, label=f"share of {text}",
                color=sns.color_palette()[i])
    ax.set_yticks(y + height * (len(cols) - 1) / 2, names)
    ax.invert_yaxis()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=len(cols), frameon=False)
    return label(ax, "Cluster sizes and revenue", "Share (%)", "")


def plot_profile_heatmap(z_means: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Heatmap of standardised cluster means (rows: clusters; columns: numeric features).

    A cell is how many standard deviations the cluster's mean lies above (red) or below (blue)
    the whole base; these differences generate the cluster names.

    Examples
    --------
    >>> z = pd.DataFrame({"frequency": [1.0, -0.5], "aov": [0.2, -0.1]}, index=["A", "B"])
    >>> plot_profile_heatmap(z).get_title()
    'What sets each cluster apart'
    """
    ax = new_axes(ax, figsize=(max(8.0, 0.7 * z_means.shape[1] + 3), max(3.0, 0.6 * len(z_means) + 1.5)))
    lim = max(1.0, float(np.nanmax(np.abs(z_means.to_numpy()))) if z_means.size else 1.0)
    sns.heatmap(z_means, ax=ax, cmap="RdBu_r", center=0, vmin=-lim, vmax=lim, annot=True, fmt=".1f",
                cbar_kws={"label": "Standard deviations from the base"})
    # columns as given: segkit.steps.cluster.standardised_means(labels=True) words them, names from the data as typed
    ax.set_xticklabels([t.get_text() for t in ax.get_xticklabels()], rotation=40, ha="right")
    return label(ax, "What sets each cluster apart", "Feature (standardised, after log for amounts)", "Cluster")


def plot_stability(cluster_jaccard: pd.Series, names: Mapping[int, str], threshold: float,
                   ax: plt.Axes | None = None) -> plt.Axes:
    """Per-cluster stability: mean best-match Jaccard overlap across subsample refits.

    Examples
    --------
    >>> float(plot_stability(pd.Series([0.9, 0.5], index=[1, 2]), {1: "A", 2: "B"}, 0.6).get_xlim()[1])
    1.0
    """
    ax = new_axes(ax)
    labels = [f"{c}: {names.get(int(c), c)}" for c in cluster_jaccard.index]
    colors = [sns.color_palette()[0] if v >= threshold else sns.color_palette()[3] for v in cluster_jaccard]
    ax.barh(labels, cluster_jaccard.to_numpy(), color=colors)
    ax.axvline(threshold, color="0.3", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    return label(ax, "How well each cluster reproduces", "Mean Jaccard overlap with refits (0–1)", "")


def plot_projection(projection: pd.DataFrame, names: Mapping[int, str], ax: plt.Axes | None = None) -> plt.Axes:
    """Customers on the first two principal components, coloured by cluster (a sample).

    Examples
    --------
    >>> proj = pd.DataFrame({"pc1": [0.0, 1.0, 2.0], "pc2": [0.0, 1.0, 0.5], "cluster": [1, 1, 2]})
    >>> proj.attrs["explained_variance"] = [0.6, 0.3]
    >>> plot_projection(proj, {1: "A", 2: "B"}).get_xlabel()
    'Principal component 1 (60% of variance)'
    """
    ax = new_axes(ax)
    palette = sns.color_palette(n_colors=max(len(names), 1))
    for i, cluster in enumerate(sorted(pd.unique(projection["cluster"]))):
        pts = projection[projection["cluster"] == cluster]
        ax.scatter(pts["pc1"], pts["pc2"], s=8, alpha=0.5, color=palette[i % len(palette)],
                   label=f"{cluster}: {names.get(int(cluster), cluster)}")
        ax.scatter([pts["pc1"].mean()], [pts["pc2"].mean()], s=120, marker="X", color=palette[i % len(palette)],
                   edgecolor="black", linewidth=0.8)
    ev = projection.attrs.get("explained_variance", [np.nan, np.nan])
    ax.legend(loc="best", fontsize=8, markerscale=2)
    total = projection.attrs.get("customers")  # all customers, of which these are a sample when fewer
    shown = (f"{len(projection):,} customers" if total is None else f"all {int(total):,}"
             if len(projection) >= int(total) else f"{len(projection):,} of {int(total):,} sampled")
    return label(ax, f"Customers projected on two dimensions ({shown}; X = cluster centre)",
                 f"Principal component 1 ({ev[0]:.0%} of variance)",
                 f"Principal component 2 ({ev[1]:.0%} of variance)")
