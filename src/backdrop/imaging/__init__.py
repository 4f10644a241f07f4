"""Product imaging: masks, layout on placement canvases, exact compositing, quality scores."""

from .composite import composite, exact_region_matches
from .layout import Placement, Scene, layout, load_placements

__all__ = ["Placement", "Scene", "composite", "exact_region_matches", "layout", "load_placements"]
