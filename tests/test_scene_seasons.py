"""Seasonal styles (a ``season`` window in the style library) are in a product's rotation only in season."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from backdrop.cli import DEMO_DIR
from backdrop.creative.catalog import load_catalog
from backdrop.creative.pipeline import PipelineConfig, StyleSelectionError, styles_for
from backdrop.imaging.layout import load_placements
from backdrop.styles import Season, StyleLibrary

LIBRARY = StyleLibrary.load()
#: a demo product filed under watches (whose rotation lists festive-bokeh)
WATCH = dataclasses.replace(load_catalog(DEMO_DIR / "products.csv").products[0], category_path=("Gear", "Watches"), google_category="")


def _config(**kw) -> PipelineConfig:
    return PipelineConfig(placements=(load_placements()["square"],), library=LIBRARY, **kw)


@pytest.mark.parametrize(
    ("day", "inside"),
    [("11-14", False), ("11-15", True), ("12-31", True), ("01-01", True), ("01-06", True), ("01-07", False), ("07-01", False)],
)
def test_a_window_across_the_year_end(day, inside):
    month, d = (int(x) for x in day.split("-"))
    assert Season(start="11-15", end="01-06").contains(dt.date(2027, month, d)) is inside


def test_a_window_within_the_year():
    s = Season(start="06-01", end="08-31")
    assert s.contains(dt.date(2026, 7, 4)) and not s.contains(dt.date(2026, 9, 1)) and not s.contains(dt.date(2026, 5, 31))


def test_the_festive_and_winter_sets_are_seasonal_the_rest_all_year():
    styles = LIBRARY.all_styles()
    seasonal = {n for n, s in styles.items() if s.season is not None}
    assert seasonal == {"festive-bokeh", "festive-podium", "winter-frost"}
    assert all(styles[n].in_season(dt.date(2026, 12, 20)) for n in seasonal)
    assert not any(styles[n].in_season(dt.date(2026, 7, 1)) for n in seasonal)


def test_a_season_does_not_change_a_style_s_digest_its_look_does():
    style = LIBRARY.all_styles()["festive-bokeh"]
    assert style.model_copy(update={"season": None}).digest() == style.digest()
    assert style.model_copy(update={"look": style.look.model_copy(update={"tone": ("light",)})}).digest() != style.digest()


def test_watches_get_festive_bokeh_only_in_season():
    match = LIBRARY.match("Gear > Watches")
    assert "festive-bokeh" in [s.name for s in match.styles]  # the library lists it for watches ...
    summer = [s.name for s in styles_for(WATCH, _config(), on=dt.date(2026, 7, 1))[1]]
    december = [s.name for s in styles_for(WATCH, _config(), on=dt.date(2026, 12, 10))[1]]
    assert "festive-bokeh" not in summer and "festive-bokeh" in december  # ... but it only comes out for the holidays
    assert set(december) - set(summer) == {"festive-bokeh"}


def test_asking_for_an_out_of_season_style_names_the_season():
    with pytest.raises(StyleSelectionError, match="out of season on 2026-07-01: festive-bokeh"):
        styles_for(WATCH, _config(styles=("festive-bokeh",)), on=dt.date(2026, 7, 1))
