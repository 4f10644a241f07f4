"""The review routes: the grid, single and bulk actions (with their confirmation), undo, and the
product by product view."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ..creative.review import REJECT_REASONS, STATUS_FILTERS, ReviewFilter
from .core import ConsoleError
from .web import Web


def _count(n: int, what: str = "creative") -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _filter_of(data: dict) -> ReviewFilter:
    return ReviewFilter(
        "all", str(data.get("category", "")), str(data.get("style", "")), str(data.get("placement", "")), str(data.get("product", ""))
    )


def add(app: FastAPI, web: Web) -> None:
    console = web.console

    @app.get("/review", response_class=HTMLResponse)
    def review_grid(
        request: Request,
        status: str = "pending",
        category: str = "",
        style: str = "",
        placement: str = "",
        product: str = "",
        page_no: int = 1,
    ):
        user = web.require(request)
        if status not in STATUS_FILTERS:
            raise ConsoleError(f"status must be one of {', '.join(STATUS_FILTERS)}")
        f = ReviewFilter(status, category, style, placement, product)
        query = {"status": status, "category": category, "style": style, "placement": placement, "product": product}
        data = console.page(f, max(1, page_no))
        links = web.paged(request, "/review", query, data)
        if isinstance(links, RedirectResponse):
            return links
        return web.page(
            request,
            "review.html.j2",
            user,
            filter=f,
            statuses=STATUS_FILTERS,
            reasons=REJECT_REASONS,
            links=links,
            here=links["here"],
            **data,
        )

    @app.post("/review")
    async def review(request: Request):
        data = await web.form(request)
        user = web.checked(request, data)
        status = str(data.get("status", ""))
        changes = console.review(user, data["keys"], status, str(data.get("reason_code", "")), str(data.get("note", "")))
        if not web.wants_json(request):
            return web.back(request, str(data.get("next", "")), "/review", f"{status.capitalize()}: {_count(len(changes))}")
        return {
            "changed": len(changes),
            "action": changes[0].action if changes else None,
            "items": [{"key": c.key, "status": c.status, "reviewer": c.reviewer, "reason": c.reason, "at": c.at} for c in changes],
            "counts": console.counts(),
        }

    @app.post("/review/undo")
    async def undo(request: Request):
        data = await web.form(request)
        user = web.checked(request, data)
        done = console.undo(user)
        kept = f"; {_count(done.kept)} changed by someone since kept" if done.kept else ""
        message = f"Undid your action {done.action}: {_count(len(done.changes))} back as they were{kept}"
        if not web.wants_json(request):
            return web.back(request, str(data.get("next", "")), "/review", message)
        return {
            "undid": done.action,
            "changed": len(done.changes),
            "kept": done.kept,
            "message": message,
            "items": [{"key": c.key, "status": c.status, "reviewer": c.reviewer, "reason": c.reason, "at": c.at} for c in done.changes],
            "counts": console.counts(),
        }

    @app.post("/review/bulk")
    async def bulk(request: Request):
        """Without ``expected``: the confirmation (how many creatives, which); with it: the action."""
        data = await web.form(request)
        user = web.checked(request, data)
        f, status = _filter_of(data), str(data.get("status", ""))
        code, note = str(data.get("reason_code", "")), str(data.get("note", ""))
        nxt = str(data.get("next", ""))
        if str(data.get("expected", "")).strip() == "":
            selection = console.bulk(user, f, status)
            if web.wants_json(request):
                return {
                    "matched": len(selection.keys),
                    "flagged_left_pending": selection.flagged_left,
                    "products": len(selection.by_product()),
                }
            console.reason_for(status, code, note)  # a rejection without its reason is refused before the confirmation
            return web.page(request, "bulk.html.j2", user, s=selection, code=code, note=note, next=nxt, reasons=REJECT_REASONS)
        try:
            expected = int(str(data["expected"]))
        except ValueError:
            raise ConsoleError("expected must be the number of creatives confirmed") from None
        done = console.bulk_apply(user, f, status, expected, code, note)
        n = len(done.changes)
        left = f"; {_count(done.selection.flagged_left)} flagged by QA left for a look of their own" if done.selection.flagged_left else ""
        message = f"{status.capitalize()} {_count(n)} (u or Undo reverts it){left}"
        if web.wants_json(request):
            return {
                "changed": n,
                "action": done.changes[0].action if done.changes else None,
                "message": message,
                "counts": console.counts(),
            }
        return web.back(request, nxt, "/review", message)

    @app.get("/products", response_class=HTMLResponse)
    def products(request: Request, category: str = "", product: str = "", open: str = "1", page_no: int = 1):
        user = web.require(request)
        open_only = open == "1"
        data = console.products(category, product, open_only, max(1, page_no))
        query = {"category": category, "product": product, "open": "1" if open_only else "0"}
        links = web.paged(request, "/products", query, data)
        if isinstance(links, RedirectResponse):
            return links
        return web.page(request, "products.html.j2", user, category=category, product=product, open_only=open_only, links=links, **data)

    @app.get("/products/{product_id}", response_class=HTMLResponse)
    def product_page(request: Request, product_id: str):
        user = web.require(request)
        view = console.product_view(product_id)
        here = f"{web.base(request)}/products/{product_id}"
        return web.page(request, "product.html.j2", user, reasons=REJECT_REASONS, here=here, **view)
