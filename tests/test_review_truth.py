"""Review state is one truth: `backdrop export feed`, `backdrop report`, the decision service's index
and the console read a creative's QA flag and review state through the one rule
(:func:`backdrop.creative.review.servability`), so they agree on what is usable. (The feed leaves out
the original renditions, servable as they are: it carries the catalog photo itself.)"""

from __future__ import annotations

import csv
import json
import re
import shutil
from contextlib import closing
from pathlib import Path

import pytest

from backdrop.cli import main
from backdrop.creative.review import ReviewFilter, review_page, servability, set_review
from backdrop.creative.store import ORIGINAL, CreativeStore
from backdrop.serving.index import CreativeIndex

DEMO = Path(__file__).resolve().parents[1] / "src" / "backdrop" / "data" / "demo" / "products.csv"
BASE = "https://creatives.example.com"


@pytest.fixture
def store(small_store, tmp_path):
    """A copy of the small store (reviews write its index)."""
    return shutil.copytree(small_store, tmp_path / "store")


def _flag(store: Path, key: str) -> None:
    with closing(CreativeStore(store)) as s, s._db() as db:
        db.execute("UPDATE creatives SET qa_status='flagged', qa_reasons=? WHERE key=?", ('[{"check": "halo", "detail": "test"}]', key))


def _original(store: Path, like) -> str:
    """The stored "original" rendition (the catalog photo fitted to the placement) of ``like``'s product
    and placement, QA flagged. `generate` makes one per product and placement; for a store without it,
    a row copying ``like``'s (same file, so the index finds it intact) stands in."""
    with closing(CreativeStore(store)) as s, s._db() as db:
        found = db.execute(
            "SELECT key FROM creatives WHERE product_id=? AND placement=? AND style=?", (like.product_id, like.placement, ORIGINAL)
        ).fetchone()
        if found is None:
            cols = [r[1] for r in db.execute("PRAGMA table_info(creatives)").fetchall()]
            new = {"key": "0" * 31 + "1", "style": ORIGINAL}
            db.execute(
                f"INSERT INTO creatives ({', '.join(cols)}) SELECT {', '.join('?' if c in new else c for c in cols)} FROM creatives WHERE key=?",
                [new[c] for c in cols if c in new] + [like.key],
            )
        key = found[0] if found else new["key"]
    _flag(store, key)
    return key


def _export(store: Path, tmp_path: Path, capsys, *extra: str) -> set[str]:
    """The creative keys `backdrop export feed --pick all` puts in the square feed."""
    out = tmp_path / "supp.tsv"
    out.unlink(missing_ok=True)
    capsys.readouterr()
    args = ["export", "feed", "--store", str(store), "--catalog", str(DEMO), "--base-url", BASE, "--pick", "all", "--out", str(out)]
    code = main([*args, *extra])
    assert code == 0, capsys.readouterr().err
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    urls = [u for r in rows for u in [r["image_link"], *r["additional_image_link"].split(",")]]
    return {u.rsplit("/", 1)[1] for u in urls if u.startswith(BASE + "/v1/creatives/")}


def _served(store: Path, placement: str = "square", **kw) -> set[str]:
    index = CreativeIndex.load(store, **kw)
    return {c.key for (_, p), arms in index.by_item.items() if p == placement for c in arms.values()}


def _report(store: Path, tmp_path: Path, capsys, *extra: str) -> tuple[str, dict]:
    out = tmp_path / "r" / "report.html"
    capsys.readouterr()
    assert main(["report", str(store), "--out", str(out), "--json", *extra]) == 0
    return out.read_text(), json.loads(capsys.readouterr().out)


def _figure(html: str, key: str) -> str:
    """The report's figure of creative ``key``: its opening tag and caption."""
    m = re.search(rf'<figure[^>]*id="c-{key}".*?</figure>', html, re.S)
    assert m, f"no figure for {key}"
    return m.group(0)


@pytest.mark.parametrize(
    ("flagged", "status", "required", "serve_flagged", "arm", "expected"),
    [
        (False, "pending", False, False, "studio", "servable"),
        (True, "pending", False, False, "studio", "withheld"),
        (True, "pending", False, True, "studio", "servable"),
        (True, "approved", False, False, "studio", "servable"),  # an approval overrides the QA flag
        (False, "rejected", False, True, "studio", "rejected"),
        (True, "rejected", True, True, "studio", "rejected"),
        (False, "pending", True, False, "studio", "pending-review"),
        (True, "pending", True, True, "studio", "pending-review"),
        (False, "approved", True, False, "studio", "servable"),
        (True, "pending", True, False, "original", "servable"),  # the retailer's own photo: no approval, no QA gate
        (False, "rejected", False, False, "original", "rejected"),
        (True, "pending", True, False, "original+price", "pending-review"),  # an overlay is generated content
    ],
)
def test_the_rule(flagged, status, required, serve_flagged, arm, expected):
    assert servability(flagged=flagged, status=status, review_required=required, serve_flagged=serve_flagged, arm=arm) == expected


def _square(store: Path) -> list:
    """The plain generated creatives at the square placement (not the original renditions)."""
    with closing(CreativeStore(store, readonly=True)) as s:
        return [r for r in s.creatives(placement="square") if not r.overlay and r.style != ORIGINAL]


def test_export_report_and_service_agree_on_a_rejection_and_an_approval(store, tmp_path, capsys):
    square = _square(store)
    item = square[0].product_id
    rejected, approved = [r for r in square if r.product_id == item][:2]
    withheld = next(r for r in square if r.product_id != item)
    for r in (approved, withheld):
        _flag(store, r.key)
    with closing(CreativeStore(store)) as s:  # what the console does (console.core.Console.review)
        set_review(s, [rejected.key], "rejected", reviewer="Ana", role="reviewer", reason="product cut off")
        set_review(s, [approved.key], "approved", reviewer="Ana", role="reviewer", reason="QA false alarm")

    served = _served(store)
    assert rejected.key not in served and approved.key in served and withheld.key not in served
    exported = _export(store, tmp_path, capsys)
    # the feed holds exactly what the service serves at the placement, but the original renditions
    # (the feed has the catalog photo itself)
    assert exported == served - _originals(store)

    html, summary = _report(store, tmp_path, capsys)
    assert summary["rejected"] == 1 and summary["approved"] == 1
    fig = _figure(html, rejected.key)
    assert re.search(r'<figure class="[^"]*\brejected\b', fig) and "rejected by Ana: product cut off" in fig
    assert "not served" in fig
    fig = _figure(html, approved.key)
    assert "approved by Ana" in fig and "not served" not in fig
    assert "withheld" in _figure(html, withheld.key)
    # the console's grid says the same
    with closing(CreativeStore(store, readonly=True)) as s:
        items = {i.key: i for i in review_page(s, ReviewFilter("all"), limit=1000)[0]}
    assert items[rejected.key].servability() == "rejected" and items[approved.key].servability() == "servable"
    assert items[withheld.key].servability() == "withheld"


def _originals(store: Path) -> set[str]:
    """The keys of the original renditions at the square placement."""
    with closing(CreativeStore(store, readonly=True)) as s:
        return {r.key for r in s.creatives(placement="square", style=ORIGINAL)}


def test_review_required_and_the_original_rendition_everywhere(store, tmp_path, capsys):
    square = _square(store)
    approved = square[:2]
    original = _original(store, square[-1])  # flagged, nobody reviewed it
    originals = _originals(store)
    with closing(CreativeStore(store)) as s:
        set_review(s, [r.key for r in approved], "approved", reviewer="Ana", role="reviewer")

    served = _served(store, review_required=True)
    assert original in originals and served == {r.key for r in approved} | originals
    # the feed: what the service serves but the originals (the feed carries the catalog photo itself)
    assert _export(store, tmp_path, capsys, "--review-required") == served - originals
    # without review required, the original is served as well, flag or not; never exported
    assert original in _served(store) and original not in _export(store, tmp_path, capsys)
    html, _ = _report(store, tmp_path, capsys, "--review-required")
    assert "awaiting review" in _figure(html, square[2].key)
    assert "not served" not in _figure(html, original)

    with closing(CreativeStore(store)) as s:
        set_review(s, [original], "rejected", reviewer="Ana", role="reviewer", reason="wrong product")
    assert original not in _served(store, review_required=True) and original not in _served(store)
    assert original not in _export(store, tmp_path, capsys, "--review-required")


def test_the_rules_examples_and_the_original_arms_name():
    import doctest

    import backdrop.creative.review as review
    from backdrop.bandit.arms import ORIGINAL

    assert review.ORIGINAL == ORIGINAL  # the creative layer cannot import the bandit's name: they must agree
    result = doctest.testmod(review)
    assert result.attempted > 0 and result.failed == 0
