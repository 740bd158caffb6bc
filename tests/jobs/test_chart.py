"""The managers' chart: a real PNG at Slack's preview size, or nothing when there is no data."""

from __future__ import annotations

import struct
import zlib
from decimal import Decimal

import pytest

from jobs.chart import MAX_BARS, _bars, png_size, render_chart
from models.weekly import ChartData, ChartPoint

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _data(customers: int = 12, *, names: str = "Customer {i}") -> ChartData:
    points = tuple(
        ChartPoint(f"W{i:02d}", 1_000_000 + i * 40_000, 800_000, Decimal("20") + i)
        for i in range(16, 24)
    )
    bars = tuple((names.format(i=i), (6 - i) * 25_000) for i in range(customers))
    return ChartData("Week 2025-W23 (2 Jun – 8 Jun 2025)", "EUR", points, bars)


def _chunks(png: bytes) -> list[bytes]:
    kinds, offset = [], 8
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        body = png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        kinds.append(kind)
        offset += 12 + length
    return kinds


def test_the_chart_is_a_valid_png_of_slack_preview_size() -> None:
    png = render_chart(_data())
    assert png is not None
    assert png[:8] == PNG_SIGNATURE
    assert png_size(png) == (1200, 675)
    kinds = _chunks(png)
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    # A blank image compresses to a few KB; a drawn chart is far larger, but stays light.
    assert 20_000 < len(png) < 400_000


def test_no_data_means_no_chart() -> None:
    points = tuple(ChartPoint(f"W{i}", 0, 0, None) for i in range(8))
    assert render_chart(ChartData("Week", "EUR", points, ())) is None
    # Earlier weeks alone do not make a chart of a week without activity.
    earlier = (ChartPoint("W1", 50_000, 40_000, Decimal("20")), *points[1:])
    assert render_chart(ChartData("Week", "EUR", earlier, ())) is None


def test_awkward_names_and_missing_margins_still_render() -> None:
    data = _data(3, names="$ {i} <!channel> & Söhne GmbH with a very long name indeed")
    points = (*data.points[:-1], ChartPoint("W23", 0, 50_000, None))
    png = render_chart(ChartData(data.title, "USD", points, data.customers))
    assert png is not None and png_size(png) == (1200, 675)


def test_many_customers_fold_into_others_keeping_the_total() -> None:
    customers = tuple((f"C{i}", (i - 7) * 1_000) for i in range(20))
    bars = _bars(customers)
    assert len(bars) == MAX_BARS
    assert bars[-1][0] == "11 others"
    assert sum(value for _, value in bars) == sum(value for _, value in customers)


def test_png_size_refuses_other_bytes() -> None:
    with pytest.raises(ValueError):
        png_size(b"GIF89a" + b"\0" * 30)
