"""The figures of a landscape stage (drawn from its scan, Hessian, angles and mining units' rows): Xu et al.'s curves
(Fig. 2), the surface as a contour and in 3-D (§2.6, Li et al.), the Hessian spectrum (App. B.1) and density
(Fig. 13), the angles between Gaussian directions (Fig. 5) and the |cos| of mined directions (Fig. 9)."""

from __future__ import annotations

from typing import Any

from ..base import Figure, Metric, Verdict
from .settings import CURVE_CLASSES


def _draw_curves(ax: Any, data: dict) -> None:
    """Xu et al. Fig. 2: train loss against λ, one line per curve, and the random-prediction loss log(C)."""
    log_c = None
    for label, table in data.items():
        ax.plot(table.column("lambda").to_numpy(), table.column("train_loss").to_numpy(), lw=1, label=label)
        log_c = float(table.column("random_loss")[0].as_py())
    if log_c is not None:
        ax.axhline(log_c, color="black", ls="--", lw=0.8, label="log(C)")
    ax.legend(fontsize=6, ncol=2)


def _draw_contour(ax: Any, data: dict) -> None:
    """Xu et al. §2.6 / Li et al.: contour of the train loss on the surface assembled from the shards of the first
    centre (labels ``seed=<s> shard=…``)."""
    import numpy as np

    first = sorted({label.split(" ")[0] for label in data})[0]
    rows = [r for label, t in data.items() if label.split(" ")[0] == first for r in t.to_pylist()]
    xs = sorted({r["lambda1"] for r in rows})
    ys = sorted({r["lambda2"] for r in rows})
    z = np.full((len(xs), len(ys)), np.nan)
    for r in rows:
        z[xs.index(r["lambda1"]), ys.index(r["lambda2"])] = r["train_loss"]
    cs = ax.contour(np.array(xs), np.array(ys), z.T, levels=20, cmap="viridis")
    ax.clabel(cs, fontsize=6)
    ax.set_title(f"centre {first}", fontsize=8)


def _draw_surface3d(ax: Any, data: dict) -> None:
    """Xu et al. Fig. 2 / Li et al.: the train-loss surface of the first centre as a 3-D plot (the shards assembled),
    with the random-prediction loss log(C) as a plane."""
    import numpy as np

    first = sorted({label.split(" ")[0] for label in data})[0]
    rows = [r for label, t in data.items() if label.split(" ")[0] == first for r in t.to_pylist()]
    xs = sorted({r["lambda1"] for r in rows})
    ys = sorted({r["lambda2"] for r in rows})
    z = np.full((len(xs), len(ys)), np.nan)
    for r in rows:
        z[xs.index(r["lambda1"]), ys.index(r["lambda2"])] = r["train_loss"]
    fig = ax.figure
    ax.set_axis_off()
    ax3 = fig.add_subplot(1, 1, 1, projection="3d")
    gx, gy = np.meshgrid(np.array(xs), np.array(ys), indexing="ij")
    ax3.plot_surface(gx, gy, z, cmap="viridis", linewidth=0, antialiased=True)
    log_c = float(rows[0]["random_loss"])
    ax3.plot_surface(gx, gy, np.full_like(z, log_c), color="grey", alpha=0.25)
    ax3.set_xlabel("λ₁")
    ax3.set_ylabel("λ₂")
    ax3.set_zlabel("train loss")
    ax3.set_title(f"centre {first}; grey plane: log(C)", fontsize=8)


def _draw_spectrum(ax: Any, data: dict) -> None:
    """Xu et al. App. B.1: the extreme Hessian eigenvalues by rank (LA positive, SA negative), one marker set per
    centre."""
    for label, table in data.items():
        rows = table.to_pylist()
        for which, marker in (("LA", "o"), ("SA", "v")):
            pts = [(r["rank"], r["eigenvalue"]) for r in rows if r["which"] == which]
            if pts:
                ax.plot([a for a, _ in pts], [b for _, b in pts], marker=marker, ls="", label=f"{label} {which}")
    ax.axhline(0.0, color="black", lw=0.5)
    ax.legend(fontsize=6)


def _draw_density(ax: Any, data: dict) -> None:
    """Xu et al. Fig. 13 (PyHessian's SLQ): the Hessian eigenvalue density, log scale, one line per centre."""
    for label, table in data.items():
        ax.semilogy(
            table.column("eigenvalue").to_numpy(), table.column("density").to_numpy() + 1e-12, lw=1, label=label
        )
    ax.legend(fontsize=6)


def _draw_angles(ax: Any, data: dict) -> None:
    """Xu et al. Fig. 5: the histogram of the angles between pairs of Gaussian directions (one per centre), with the
    90° line."""
    import numpy as np

    for label, table in data.items():
        angles = table.column("angle_deg").to_numpy()
        lo, hi = min(89.0, float(angles.min())), max(91.0, float(angles.max()))
        ax.hist(angles, bins=np.linspace(lo, hi, 41), alpha=0.6, label=f"{label} ({len(angles)} pairs)")
    ax.axvline(90.0, color="black", ls="--", lw=0.8)
    ax.legend(fontsize=6)


def _draw_cosines(ax: Any, data: dict) -> None:
    """Xu et al. Fig. 9: |cos| between a mined direction and the Hessian's eigenvectors, P.E.1… (largest positive
    eigenvalues) then N.E.1… (most negative), one bar group per mined direction."""
    import numpy as np

    ticks: list[str] = []
    for table in data.values():
        for r in table.to_pylist():
            tick = f"{'P' if r['which'] == 'LA' else 'N'}.E.{r['rank'] + 1}"
            if tick not in ticks:
                ticks.append(tick)
    width = 0.8 / max(1, len(data))
    for n, (label, table) in enumerate(data.items()):
        rows = {f"{'P' if r['which'] == 'LA' else 'N'}.E.{r['rank'] + 1}": r["abs_cos"] for r in table.to_pylist()}
        xs = np.arange(len(ticks)) + n * width
        ax.bar(xs, [rows.get(t, np.nan) for t in ticks], width, label=label)
    ax.set_xticks(np.arange(len(ticks)) + 0.4 - width / 2, ticks, rotation=90, fontsize=6)
    ax.legend(fontsize=6)


SCAN_METRICS = (
    Metric("stationary_points", "stationary points (train loss)", ".2f"),
    Metric("centre_train_loss", "train loss at θ", ".4f"),
    Metric("max_train_loss", "max train loss", ".4g"),
)

SCAN_VERDICTS = tuple(Verdict(f"is_{c.replace('-', '_')}", f"curve class {c}") for c in CURVE_CLASSES)

SCAN_FIGURES = (
    Figure(
        "curves",
        "1-D loss curves θ + λε",
        table="curve",
        x="lambda",
        style="custom",
        draw=_draw_curves,
        xlabel="λ",
        ylabel="train loss",
    ),
    Figure(
        "contour",
        "2-D loss surface θ + λ₁ε₁ + λ₂ε₂",
        table="surface",
        style="custom",
        draw=_draw_contour,
        xlabel="λ₁",
        ylabel="λ₂",
    ),
    Figure(
        "surface",
        "2-D loss surface θ + λ₁ε₁ + λ₂ε₂ (3-D view)",
        table="surface",
        style="custom",
        draw=_draw_surface3d,
    ),
    Figure(
        "spectrum",
        "Hessian eigenvalue spectrum",
        table="spectrum",
        style="custom",
        draw=_draw_spectrum,
        xlabel="rank (0 = largest |λ|)",
        ylabel="eigenvalue",
    ),
    Figure(
        "density",
        "Hessian eigenvalue density (SLQ)",
        table="density",
        style="custom",
        draw=_draw_density,
        xlabel="eigenvalue",
        ylabel="density (log)",
    ),
    Figure(
        "angles",
        "Angles between Gaussian directions",
        table="angles",
        style="custom",
        draw=_draw_angles,
        xlabel="angle (degrees)",
        ylabel="pairs",
    ),
    Figure(
        "cosines",
        "|cos| of mined directions against Hessian eigenvectors",
        table="cosines",
        style="custom",
        draw=_draw_cosines,
        xlabel="eigenvector (P.E.: positive, N.E.: negative eigenvalues)",
        ylabel="|cos|",
    ),
)
