"""What HybridLinUCB shares across arms when it serves a style library's creatives."""

from __future__ import annotations

from pathlib import Path

from ...overlays import OverlayLibrary
from ...styles import StyleLibrary
from ...styles.attributes import library_arm_features


def hybrid_sharing(style_library: str | Path | None, n_features: int, blocks: list[int] | None) -> dict:
    """``HybridLinUCB`` keyword arguments: every arm's attribute vector (each style of the library,
    default the built-in one, alone and with each overlay template) and a shared block over the
    context's bias and declared user fields (``FeatureEncoder.blocks`` but the last, the hashed
    tokens, which stay in each arm's own model).

    >>> kw = hybrid_sharing(None, 64, [1, 63])
    >>> kw["shared_dims"], len(kw["arm_features"]["podium-pastel+price"]) > 10
    (1, True)
    """
    features = library_arm_features(StyleLibrary.load(style_library), OverlayLibrary.load().templates)
    shared = sum(blocks[:-1]) if blocks and len(blocks) > 1 else n_features
    return {"arm_features": features, "shared_dims": shared}
