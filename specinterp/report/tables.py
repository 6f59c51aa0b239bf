"""Plain-text tables of a :class:`~specinterp.report.DigitsAnalysis` for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from .digits import DigitsAnalysis

__all__ = ["format_analysis", "format_table"]


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Right-aligned columns; floats with four significant digits."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [list(map(str, header))] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_analysis(result: DigitsAnalysis) -> str:
    """The whole terminal report."""
    out = [
        "specinterp report — ReLU MLP on scikit-learn digits "
        f"(seed {result.seed}): train accuracy {result.train_accuracy:.3f}, "
        f"test accuracy {result.test_accuracy:.3f}",
        "",
        "Weight spectra against Marchenko–Pastur (ESD of X Xᵀ/n, robust σ² fit; "
        "'shuffled' = same entries, iid null)",
    ]
    rows = []
    for i, (d, null) in enumerate(zip(result.layers, result.shuffled_layers, strict=True)):
        for tag, diag in (("trained", d), ("shuffled", null)):
            rows.append(
                (
                    f"W{i + 1}",
                    tag,
                    f"{diag.shape[0]}×{diag.shape[1]}",
                    diag.law.ratio,
                    diag.law.sigma2,
                    diag.law.edges[1],
                    diag.top_eigenvalue,
                    diag.num_spikes,
                    diag.ks_distance,
                    diag.stable_rank,
                    diag.normalized_entropy,
                )
            )
    out.append(
        format_table(
            [
                "layer",
                "weights",
                "shape",
                "q",
                "σ²",
                "λ₊",
                "λ_max",
                "spikes",
                "KS",
                "srank",
                "H/log r",
            ],
            rows,
        )
    )
    out += ["", f"Input-Jacobian spectra of the logits on {len(result.x_test)} test images"]
    out.append(format_table(["statistic", "mean", "std", "min", "max"], result.jacobian.rows()))
    out += ["", *result.notes]
    return "\n".join(out)
