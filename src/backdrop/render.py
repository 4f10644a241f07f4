"""HTML from Jinja2 templates (autoescaped) and PNG plots from matplotlib's object API.

Every report the package writes goes through here: the creative contact sheet, the study and the
A/B analysis. No f-string HTML, and no ``matplotlib.pyplot`` (whose global state and backend switch
are not a library's to touch): a :class:`~matplotlib.figure.Figure` drawn on its own Agg canvas.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"


def pct(x, signed: bool = False) -> str:
    """A share as a percentage: ``0.0123`` -> ``1.23%`` (``+1.2%`` signed); – when unknown."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x * 100:+.1f}%" if signed else f"{x * 100:.2f}%"


def pvalue(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return "<0.0001" if x < 1e-4 else f"{x:.4f}"


@lru_cache(maxsize=1)
def environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,  # a missing value is an error, never an empty cell
    )
    env.filters.update(pct=pct, pvalue=pvalue, num=lambda n: f"{n:,}")
    return env


def render(template: str, **context) -> str:
    """The page ``template`` (a file in ``templates/``) rendered with ``context``."""
    return environment().get_template(template).render(**context)


def figure(width: float, height: float, rows: int = 1, cols: int = 1, squeeze: bool = True):
    """(figure, axes) on an Agg canvas of its own: nothing global is touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=squeeze)


def save(fig, path: str | Path, dpi: int = 110, rect: tuple | None = None) -> Path:
    """Lay out and write ``fig`` as PNG to ``path`` (its folder is created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if rect is None:
        fig.tight_layout()
    else:
        fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=dpi)
    return path


def png_data_uri(fig, dpi: int = 100) -> str:
    """``fig`` laid out as an inline PNG (``data:image/png;base64,...``), for pages served live."""
    import base64
    import io

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
