"""Line charts over time as SVG drawn on the server (no chart library, no script, no inline
style: the strict Content-Security-Policy allows presentation attributes only)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from attrs import frozen
from twisted.web.template import Tag

from vaultaire.console.pages import tags

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 720, 210, 80, 10, 22, 34
COLOURS = ("#3b6fd4", "#d4693b", "#2c9b53", "#9b2c8f")
LETTER = 6.2  # the width of an average letter at font-size 11, to space the legend's entries


@frozen
class Line:
    name: str
    points: Sequence[tuple[float, float | None]]  # (time, value); None: nothing to say there (a gap)


def _ticks(start: float, end: float) -> tuple[list[float], str]:
    """Round times between start and end for the axis, about six of them, and their format."""
    span = max(1.0, end - start)
    steps = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800)
    step = next((s for s in steps if span / s <= 7), 21600)
    first = math.ceil(start / step) * step
    return [float(t) for t in range(int(first), int(end) + 1, step)], "%H:%M" if step >= 60 else "%H:%M:%S"


def line_chart(
    title: str, lines: Sequence[Line], start: float, end: float, show: Callable[[float], str], id: str
) -> Tag:
    """One chart of ``lines`` between the times ``start`` and ``end`` (UTC on the axis)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for line in lines for _, v in line.points if v is not None]
    top = max(values) if values and max(values) > 0 else 1.0
    span = max(1e-9, end - start)

    def x(t: float) -> float:
        return LEFT + plot_w * (t - start) / span

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    drawn: list[Tag] = []
    legend: list[Tag] = []
    lx = float(LEFT)
    for n, line in enumerate(lines):
        colour = COLOURS[n % len(COLOURS)]
        runs: list[list[str]] = [[]]
        for t, v in line.points:
            if v is None:
                runs.append([])
            else:
                runs[-1].append(f"{x(t):.1f},{y(v):.1f}")
        for run in runs:
            if len(run) == 1:  # a lone point between gaps: a dot, or it would not show
                cx, cy = run[0].split(",")
                drawn.append(tags.circle(cx=cx, cy=cy, r="2", fill=colour))
            elif run:
                drawn.append(tags.polyline(points=" ".join(run), fill="none", stroke=colour, **{"stroke-width": "1.5"}))
        last = next((v for _, v in reversed(line.points) if v is not None), None)
        label = f"{line.name}: {show(last) if last is not None else '—'}"
        legend.append(tags.rect(x=f"{lx:.0f}", y="1", width="10", height="10", fill=colour))
        legend.append(tags.text(x=f"{lx + 14:.0f}", y="10", **{"font-size": "11"})(label))
        lx += 14 + LETTER * len(label) + 16  # the next one after this one's text
    axis: list[Tag] = [
        tags.line(x1=str(LEFT), y1=str(TOP + plot_h), x2=str(WIDTH - RIGHT), y2=str(TOP + plot_h), stroke="#888"),
        tags.line(x1=str(LEFT), y1=str(TOP), x2=str(LEFT), y2=str(TOP + plot_h), stroke="#888"),
        tags.text(x="2", y=str(TOP + 4), **{"font-size": "11"})(show(top)),
        tags.text(x="2", y=str(TOP + plot_h), **{"font-size": "11"})("0"),
    ]
    ticks, form = _ticks(start, end)
    for t in ticks:
        axis.append(
            tags.line(x1=f"{x(t):.1f}", y1=str(TOP + plot_h), x2=f"{x(t):.1f}", y2=str(TOP + plot_h + 4), stroke="#888")
        )
        axis.append(
            tags.text(x=f"{x(t) - 14:.1f}", y=str(HEIGHT - 8), **{"font-size": "11"})(
                time.strftime(form, time.gmtime(t))
            )
        )
    return tags.figure(
        tags.figcaption(title),
        tags.svg(
            xmlns="http://www.w3.org/2000/svg",
            viewBox=f"0 0 {WIDTH} {HEIGHT}",
            width=str(WIDTH),
            height=str(HEIGHT),
            role="img",
            id=id,
        )(tags.title(title), *axis, *drawn, *legend),
    )
