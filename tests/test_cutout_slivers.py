"""Slivers of the photo's backdrop left in the mask (between fingers, between an arm and the torso,
between hair and a shirt, inside D-rings) are cut out, white garments keep their white, and parts
of the product the mask bit out (a chunk of shorts, the label of a yoga strap) are filled back, on
the real Magento photos (``../shared/data/magento-catalog``, read where they are).

The spots are the ones an art director rejected creatives for (benchmarks/labels/magento-before.csv),
as boxes (x, y, w, h) at the segmenter's working scale (the photo scaled to 1024 px).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from backdrop.imaging.background import ColourModel
from backdrop.imaging.maskops import work_image
from backdrop.imaging.subject import Subject, left_out_share
from conftest import magento_mask as _mask
from conftest import magento_photo as _photo
from conftest import needs_learned

pytestmark = needs_learned

#: backdrop left in the mask before (pixels of the backdrop's exact colour in the box, 4 px padded)
SLIVERS = {
    "wh03-red_main": (238, 786, 23, 96),  # arm / torso wedge (368 px before)
    "wb03-green_main": (407, 1007, 21, 17),  # between the legs, open through the frame (196)
    "wsh10-black_main": (253, 294, 6, 25),  # thumb / finger gap (96)
    "wp11-green_main": (221, 315, 6, 18),  # finger gap (85)
    "ws06-purple_main": (302, 516, 9, 30),  # between hair and shirt, open to the outside (81)
    "mh08-brown_main": (606, 804, 7, 14),  # finger gap (41)
    "luma-yoga-strap-set": (776, 382, 62, 67),  # inside a D-ring (349)
}
#: white garments: their white stays; mh11 and wt09 had a gap between the sleeve and the body
WHITE = {
    "mh11-white_main": (557, 588, 9, 44),
    "wt09-white_main": (296, 724, 8, 32),
    "wh08-white_main": None,
    "wj04-white_main": None,
    "mt02-white_main": None,
}


def _work(name: str) -> tuple[np.ndarray, ColourModel]:
    """The mask (hard) and the photo's colour model at the working scale."""
    work = work_image(_photo(name))
    h, w = work.shape[:2]
    m = cv2.resize(_mask(name), (w, h), interpolation=cv2.INTER_AREA) >= 128
    return m, ColourModel(work)


def _backdrop_in(name: str, box: tuple[int, int, int, int], pad: int = 4) -> int:
    m, cm = _work(name)
    x, y, bw, bh = box
    sl = (slice(max(0, y - pad), y + bh + pad), slice(max(0, x - pad), x + bw + pad))
    return int(np.count_nonzero(m[sl] & (cm.dist[sl] < cm.tau)))


@pytest.mark.parametrize("name", list(SLIVERS))
def test_backdrop_slivers_are_cut_out(name):
    n = _backdrop_in(name, SLIVERS[name])
    assert n <= 5, n


@pytest.mark.parametrize("name", list(WHITE))
def test_white_garments_keep_their_white_and_lose_their_gaps(name):
    m, cm = _work(name)
    # white fabric: light, but shaded off the paper's white; inside the silhouette's outline
    # (everything but what the outside reaches through 15 px of mask)
    outline = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((31, 31), np.uint8)) > 0
    fabric = outline & (cm.dist > 2.0 * cm.tau) & (cm.dist < 10.0 * cm.tau)
    fabric = cv2.erode(fabric.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    kept, total = np.count_nonzero(fabric & m), np.count_nonzero(fabric)
    assert kept >= 0.995 * total, (kept, total)
    if WHITE[name] is not None:
        assert _backdrop_in(name, WHITE[name]) <= 5


def test_the_chunk_out_of_mt04s_shorts_is_filled_back():
    """The grey shorts run off the bottom of the frame; the mask had left out a ragged chunk of
    them (~3,600 px at the working scale), open to the backdrop on the left."""
    m, cm = _work("mt04-blue_main")
    shorts = (slice(800, 1024), slice(210, 330))
    grey = cm.dist[shorts] > 4.0 * cm.tau
    missing, total = np.count_nonzero(grey & ~m[shorts]), np.count_nonzero(grey)
    assert missing <= 0.03 * total, (missing, total)  # 43% before


def test_mh11s_trousers_have_no_hole():
    m, cm = _work("mh11-white_main")
    rgb = _photo("mh11-white_main")
    assert left_out_share(rgb, _mask("mh11-white_main")) < 0.001  # 0.033 before
    khaki = (slice(930, 1024), slice(420, 720))
    inside = cm.dist[khaki] > 4.0 * cm.tau
    missing, total = np.count_nonzero(inside & ~m[khaki]), np.count_nonzero(inside)
    assert missing <= 0.01 * total, (missing, total)


def test_mp03s_left_sole_has_fewer_holes():
    """The white sole of the left shoe, under the black toe: the mask had holes in it (the photo
    there is the sole: light grey, clearly not the backdrop). The holes enclosed by the sole are
    filled back; bites that open into the contact shadow under it are not yet (a known limit)."""
    m, cm = _work("mp03-black_main")
    sole = (slice(962, 990), slice(298, 386))
    sole_px = (cm.dist[sole] > 2.0 * cm.tau) & (cm.dist[sole] < 12.0 * cm.tau)
    missing, total = np.count_nonzero(sole_px & ~m[sole]), np.count_nonzero(sole_px)
    assert missing <= 0.35 * total, (missing, total)  # 46% before; see the docstring


def test_left_out_share_is_carried_but_not_part_of_the_key():
    s = Subject(cut=("bottom",), trapped_share=0.001, left_out_share=0.02, mask_source="combined")
    d = s.to_dict()
    assert d["left_out_share"] == 0.02
    assert Subject.from_dict(d) == s
    assert Subject.from_dict({}).left_out_share == 0.0
    assert "left_out_share" not in s.spec() and "trapped_share" not in s.spec()


def test_left_out_share_counts_a_bitten_out_chunk_and_not_a_gap():
    """Synthetic: a grey block on white; a mask missing a corner chunk of it counts that chunk,
    a mask with a hole over a white gap in the block counts nothing."""
    rgb = np.full((300, 300, 3), 255, np.uint8)
    rgb[50:250, 50:250] = (110, 110, 120)
    alpha = np.zeros((300, 300), np.uint8)
    alpha[50:250, 50:250] = 255
    assert left_out_share(rgb, alpha) == 0.0
    bitten = alpha.copy()
    bitten[120:160, 120:160] = 0  # a hole where the photo is the grey product
    assert left_out_share(rgb, bitten) > 0.02
    gap = rgb.copy()
    gap[120:160, 120:160] = 255  # a real gap: the backdrop shows through
    assert left_out_share(gap, bitten) == 0.0
