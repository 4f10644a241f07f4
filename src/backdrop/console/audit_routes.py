"""The audit routes: every review change, filtered, paged and exported; and how QA agrees with the reviewers."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..creative.audit import AUDIT_STATUSES, AuditFilter
from .core import ConsoleError
from .web import Web


def _day(text: str, end: bool = False) -> float | None:
    """A YYYY-MM-DD date (UTC) as epoch seconds: its start, or with ``end`` the next day's start."""
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConsoleError(f"a date is YYYY-MM-DD, not {text!r}") from None
    return day.timestamp() + (86400 if end else 0)


def _filter(reviewer: str, action: str, since: str, until: str, key: str, product: str) -> AuditFilter:
    try:
        return AuditFilter(reviewer=reviewer, status=action, since=_day(since), until=_day(until, end=True), key=key, product=product)
    except ValueError as e:
        raise ConsoleError(str(e)) from None


def add(app: FastAPI, web: Web) -> None:
    console = web.console

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(
        request: Request,
        reviewer: str = "",
        action: str = "",
        since: str = "",
        until: str = "",
        key: str = "",
        product: str = "",
        page_no: int = 1,
    ):
        user = web.require(request)
        f = _filter(reviewer, action, since, until, key, product)
        data = console.audit_page(f, max(1, page_no))
        q = {"reviewer": reviewer, "action": action, "since": since, "until": until, "key": key, "product": product}
        links = web.paged(request, "/audit", q, data)
        if isinstance(links, RedirectResponse):
            return links
        csv_link = web.link(request, "/audit.csv", q)
        return web.page(
            request, "audit.html.j2", user, q=q, filtered=any(q.values()), actions=AUDIT_STATUSES, links=links, csv_link=csv_link, **data
        )

    @app.get("/audit.csv")
    def audit_csv(
        request: Request, reviewer: str = "", action: str = "", since: str = "", until: str = "", key: str = "", product: str = ""
    ):
        web.require(request)
        text = console.audit_csv(_filter(reviewer, action, since, until, key, product))
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return Response(
            text.encode(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="review-audit-{stamp}.csv"'},
        )

    @app.get("/qa", response_class=HTMLResponse)
    def qa_page(request: Request):
        user = web.require(request)
        return web.page(request, "qa.html.j2", user, a=console.qa_agreement())

    @app.get("/qa.json")
    def qa_json(request: Request):
        web.require(request)
        return console.qa_agreement()
