"""Stacked bar charts as plain geometry, drawn as SVG by templates/admin/_chart.svg.

No chart library and no script: the server works out every rectangle, so a
chart is part of the HTML it polls (and of its ETag) and shows without JS.
"""

from dataclasses import dataclass

SERIES = ("sent", "failed", "retried")


@dataclass(frozen=True)
class Segment:
    """One series' part of a bar, in SVG user units (y grows downwards)."""

    series: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Bar:
    """One time slot: its label, a tooltip and its stacked segments (empty when nothing happened)."""

    label: str
    title: str
    segments: tuple


@dataclass(frozen=True)
class BarChart:
    """A chart ready to draw: bars, the value at the top gridline, totals per series."""

    name: str
    width: int
    height: int
    bars: tuple
    top: int
    totals: dict

    @property
    def empty(self):
        return not any(self.totals.values())

    @property
    def first_label(self):
        return self.bars[0].label if self.bars else ""

    @property
    def last_label(self):
        return self.bars[-1].label if self.bars else ""

    def summary(self):
        """The chart in words, for screen readers and the SVG's <title>."""
        return ", ".join(f"{self.totals[series]} {series}" for series in SERIES)


def nice_ceiling(value):
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least `value` (1 for nothing)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def stacked_bars(name, points, labels, width=600, height=150):
    """A BarChart of `points` (dicts with sent/failed/retried), one bar per point, labelled by `labels`.

    Every non-zero segment is at least one unit tall, so a single failure
    among thousands of sends still shows.
    """
    count = max(len(points), 1)
    slot = width / count
    bar_width = round(slot * 0.8, 2)
    top = nice_ceiling(max((sum(point[series] for series in SERIES) for point in points), default=0))
    bars = []
    for index, (point, label) in enumerate(zip(points, labels, strict=True)):
        x = round(index * slot + (slot - bar_width) / 2, 2)
        bottom = float(height)
        segments = []
        for series in SERIES:
            if point[series]:
                size = max(point[series] / top * height, 1.0)
                bottom -= size
                segments.append(Segment(series, x, round(bottom, 2), bar_width, round(size, 2)))
        title = f"{label}: " + ", ".join(f"{point[series]} {series}" for series in SERIES)
        bars.append(Bar(label, title, tuple(segments)))
    totals = {series: sum(point[series] for point in points) for series in SERIES}
    return BarChart(name, width, height, tuple(bars), top, totals)
