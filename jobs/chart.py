"""The managers' chart: recent periods' revenue, cost and margin, and contribution by customer.

Pure rendering: `render_chart(data)` returns PNG bytes (or None when there is nothing to draw)
and touches neither the database nor Slack. It uses matplotlib's object API on the Agg canvas,
never pyplot's global figure state, so renders may run in worker threads.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: no display on a server

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from models.weekly import ChartData

# Slack previews images about 1200 px wide: 8 x 4.5 inches at 150 dpi is 1200 x 675.
WIDTH_IN, HEIGHT_IN, DPI = 8.0, 4.5, 150
MAX_BARS = 10
NAME_LIMIT = 24
REVENUE_COLOUR = "#2e7d32"
COST_COLOUR = "#90a4ae"
MARGIN_COLOUR = "#1565c0"
GAIN_COLOUR = "#43a047"
LOSS_COLOUR = "#e53935"


def _major(value: float, _pos: object = None) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if abs(value) >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def _label(name: str) -> str:
    short = name if len(name) <= NAME_LIMIT else name[: NAME_LIMIT - 1] + "…"
    # "$" would switch matplotlib into maths mode for a customer's name.
    return short.replace("$", r"\$")


def _bars(customers: tuple[tuple[str, int], ...]) -> list[tuple[str, int]]:
    """At most MAX_BARS bars: the largest by size, the rest summed as "Others"."""
    if len(customers) <= MAX_BARS:
        return list(customers)
    ranked = sorted(customers, key=lambda item: -abs(item[1]))
    kept, rest = ranked[: MAX_BARS - 1], ranked[MAX_BARS - 1 :]
    kept.sort(key=lambda item: -item[1])
    return [*kept, (f"{len(rest)} others", sum(value for _, value in rest))]


def render_chart(data: ChartData) -> bytes | None:
    """PNG bytes of the chart (1200 x 675 px), or None when there is no data to draw."""
    if not data.has_data:
        return None
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.suptitle(_label_title(data.title), fontsize=11, fontweight="bold")
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})

    labels = [p.label for p in data.points]
    xs = list(range(len(labels)))
    revenue = [p.revenue_minor / 100 for p in data.points]
    cost = [p.cost_minor / 100 for p in data.points]
    width = 0.38
    left.bar([x - width / 2 for x in xs], revenue, width, label="Revenue", color=REVENUE_COLOUR)
    left.bar([x + width / 2 for x in xs], cost, width, label="Cost", color=COST_COLOUR)
    left.set_xticks(xs, labels, fontsize=8)
    left.yaxis.set_major_formatter(FuncFormatter(_major))
    left.tick_params(axis="y", labelsize=8)
    left.set_ylabel(data.currency, fontsize=8)
    left.set_title("Revenue, cost and margin", fontsize=9)
    left.spines[["top"]].set_visible(False)
    margin_axis = left.twinx()
    margins = [
        float(p.margin_pct) if p.margin_pct is not None else float("nan") for p in data.points
    ]
    margin_axis.plot(xs, margins, color=MARGIN_COLOUR, marker="o", linewidth=1.8, label="Margin %")
    known = [m for m in margins if m == m]  # NaN is not equal to itself
    if known:
        low, high = min(0.0, *known), max(0.0, *known)
        margin_axis.set_ylim(low, high + (high - low) * 0.22 + 1)
    margin_axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.0f}%"))
    margin_axis.tick_params(axis="y", labelsize=8, colors=MARGIN_COLOUR)
    margin_axis.spines[["top"]].set_visible(False)
    handles = left.get_legend_handles_labels()
    extra = margin_axis.get_legend_handles_labels()
    # Headroom above the tallest bar keeps the legend clear of the data.
    top = max([*revenue, *cost, 0.0])
    left.set_ylim(0, top * 1.22 if top > 0 else 1)
    left.legend(
        handles[0] + extra[0],
        handles[1] + extra[1],
        fontsize=7,
        loc="upper left",
        ncols=3,
        frameon=False,
    )

    bars = _bars(data.customers)
    right.set_title("Contribution by customer", fontsize=9)
    if bars:
        names = [_label(name) for name, _ in bars]
        values = [value / 100 for _, value in bars]
        ys = list(range(len(bars)))
        right.barh(ys, values, color=[GAIN_COLOUR if v >= 0 else LOSS_COLOUR for v in values])
        right.set_yticks(ys, names, fontsize=8)
        right.invert_yaxis()
        right.axvline(0, color="#555555", linewidth=0.8)
        right.xaxis.set_major_formatter(FuncFormatter(_major))
        right.tick_params(axis="x", labelsize=8)
        right.set_xlabel(data.currency, fontsize=8)
    else:
        right.text(
            0.5,
            0.5,
            "No customer activity",
            ha="center",
            va="center",
            transform=right.transAxes,
            fontsize=9,
        )
        right.set_xticks([])
        right.set_yticks([])
    right.spines[["top", "right"]].set_visible(False)

    fig.tight_layout()
    buffer = io.BytesIO()
    # No bbox_inches="tight": the size must stay what Slack previews well.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _label_title(title: str) -> str:
    return title.replace("$", r"\$")


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; ValueError if it is not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
