"""Azure Personalizer's Rank, Reward and Activate, with its request and response shapes, on the
same event log and learner: a client written for Personalizer (retired 2026-10-01) points its
endpoint here and keeps working.

- ``POST /personalizer/v1.0/rank``: ``contextFeatures`` (a list of objects; nested objects are
  flattened to ``outer.inner`` keys), ``actions`` (ids; each id is learned as an arm of its own, so
  features constant per action are absorbed by its weights), ``excludedActions`` (ranked last with
  probability 0), ``eventId`` (generated when absent; one rank per id) and ``deferActivation``
  (the decision is logged inactive until Activate). 201 with ``ranking``, ``eventId`` and
  ``rewardActionId``.
- ``POST /personalizer/v1.0/events/{eventId}/reward`` with ``{"value": number}``: the decision's
  feedback (the first one counts, as Personalizer's default "earliest" aggregation). 204.
- ``POST /personalizer/v1.0/events/{eventId}/activate``: 204.

The subscription key is this service's API key (``Ocp-Apim-Subscription-Key``, or ``X-API-Key``).
Errors have Personalizer's shape: ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from .errors import Conflict, Invalid, NotFound, ServiceError, Unavailable, http_status
from .eventlog import LogUnavailable, RequestConflict
from .records import DecisionRecord
from .schemas import MAX_FEATURE_KEYS, MAX_SAFE_INT, PERSONALIZER_NAMESPACE, FeedbackValue

PREFIX = "/personalizer/v1.0"
WRONG_KEY = "missing or wrong subscription key (Ocp-Apim-Subscription-Key)"
#: the item and placement a Personalizer decision is logged under (it ranks actions, not creatives)
ITEM, PLACEMENT = "personalizer", "personalizer"
#: Personalizer's limit on the actions of one rank
MAX_ACTIONS = 50
_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    404: "ResourceNotFound",
    408: "RequestTimeout",
    409: "Conflict",
    413: "PayloadTooLarge",
    503: "ServiceUnavailable",
}
#: an eventId must be one URL path segment as it is (reward and activate address it there): URL-safe
#: characters, not starting with a dot (so never "." or "..")
EVENT_ID_PATTERN = r"^[A-Za-z0-9_~:@-][A-Za-z0-9._~:@-]*$"


class RankableAction(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=256)
    features: list[dict[str, Any]] = Field(default_factory=list)


class RankRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # newer clients send fields this version ignores

    contextFeatures: list[dict[str, Any]] = Field(default_factory=list)
    actions: list[RankableAction] = Field(min_length=1, max_length=MAX_ACTIONS)
    excludedActions: list[str] = Field(default_factory=list)
    eventId: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=EVENT_ID_PATTERN,
        description="letters, digits and - _ ~ : @ . (not first); it is addressed in the reward and activate URLs",
    )
    deferActivation: bool = False


class RankedAction(BaseModel):
    id: str
    probability: float


class RankResponse(BaseModel):
    ranking: list[RankedAction]
    eventId: str
    rewardActionId: str | None


class RewardRequest(BaseModel):
    #: a JSON number, as /v1/feedback's reward: "1" and true are refused
    value: FeedbackValue


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    """Personalizer's ErrorResponse."""
    body = {"error": {"code": _CODES.get(status, "InternalServerError"), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def flatten(context: list[dict[str, Any]]) -> dict:
    """Personalizer's context (a list of objects, nested) as this service's flat user features.

    >>> flatten([{"timeOfDay": "Morning"}, {"device": {"mobile": True, "os": "ios"}}, {"tags": ["a", "b"]}])
    {'timeOfDay': 'Morning', 'device.mobile': True, 'device.os': 'ios', 'tags.0': 'a', 'tags.1': 'b'}
    """
    out: dict = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix}.{i}", v)
        elif value is not None:
            out[prefix] = value

    for block in context:
        walk("", block)
    return out


def _event_request_id(event_id: str) -> str:
    return f"{PERSONALIZER_NAMESPACE}{event_id}"


def rank(service, req: RankRequest) -> RankResponse:
    """Choose among the actions, log the decision (inactive with ``deferActivation``), rank them."""
    from .service import check_features

    features = flatten(req.contextFeatures)
    if len(features) > MAX_FEATURE_KEYS:
        raise Invalid(f"contextFeatures: at most {MAX_FEATURE_KEYS} features after flattening, got {len(features)}")
    for key, value in features.items():
        if not isinstance(value, str | bool | int | float):
            raise Invalid(f"contextFeatures.{key}: must be a string, a boolean or a number")
        if isinstance(value, float) and not math.isfinite(value):  # the log stores standard JSON only
            raise Invalid(f"contextFeatures.{key}: must be a finite number (NaN and Infinity are not JSON)")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INT:
            raise Invalid(f"contextFeatures.{key}: integers must be within +-{MAX_SAFE_INT}")
    check_features(features, service.settings.limits, service.encoder, "contextFeatures")
    ids = [a.id for a in req.actions]
    if len(set(ids)) != len(ids):
        raise Invalid("actions: every action id must be unique")
    excluded = set(req.excludedActions)
    candidates = [a for a in ids if a not in excluded]
    event_id = req.eventId or uuid.uuid4().hex
    request_id = _event_request_id(event_id)
    if not candidates:
        raise Invalid("every action is excluded; nothing to rank")
    x = service.encoder.encode(features, "", PLACEMENT)
    decision, policy, version = service.choose(x, candidates)
    chosen, probs = str(decision.arm), dict(zip(candidates, (float(p) for p in decision.probabilities), strict=True))
    record = DecisionRecord(
        decision_id=uuid.uuid4().hex,
        created_at=time.time(),
        item_id=ITEM,
        placement=PLACEMENT,
        arms=candidates,
        arm=chosen,
        propensity=float(decision.propensity),
        policy=policy.name,
        model_version=version,
        context=x.tolist(),
        user_features=features,
        request_id=request_id,
        learn=True,
        activate=not req.deferActivation,
    )
    # the eventId is the row's request_id: the insert itself finds one ranked before (with another
    # context: RequestConflict; with the same: the earlier row comes back)
    reused = Conflict(f"eventId '{event_id}' was ranked already; a new rank needs a new eventId (or none: one is generated)")
    try:
        logged = service.log.log_decision(record, timeout_s=max(service.settings.log_timeout_ms / 1000, 1.0))
    except RequestConflict:
        raise reused from None
    except LogUnavailable:
        raise Unavailable("the event log is unavailable; the rank was not logged; retry") from None
    if logged.decision_id != record.decision_id:
        raise reused
    service.metrics.decided(ITEM, "none")  # action ids are the client's: not metric labels
    others = sorted((a for a in candidates if a != chosen), key=lambda a: -probs[a])
    ranking = [RankedAction(id=a, probability=probs[a]) for a in [chosen, *others]]
    ranking += [RankedAction(id=a, probability=0.0) for a in ids if a in excluded]
    return RankResponse(ranking=ranking, eventId=event_id, rewardActionId=chosen)


def _decision_of(service, event_id: str) -> str:
    try:
        d = service.log.get_by_request(_event_request_id(event_id))
    except LogUnavailable:
        raise Unavailable("the event log is unavailable; retry later") from None
    if d is None:
        raise NotFound(f"unknown eventId '{event_id}'")
    return d.decision_id


def router(service, check_key: Callable[[str | None, str], None]) -> APIRouter:
    """The compatible endpoints, answering errors in Personalizer's shape; ``check_key(given, why)``
    is the app's API-key check."""

    def subscription_key(
        ocp_apim_subscription_key: Annotated[str | None, Header(description="The service's API key")] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> None:
        check_key(ocp_apim_subscription_key or x_api_key, WRONG_KEY)

    r = APIRouter(prefix=PREFIX, tags=["personalizer"], dependencies=[Depends(subscription_key)])
    errors: dict[int | str, dict[str, Any]] = {s: {"description": _CODES[s]} for s in (400, 401, 404, 409, 503)}
    errors[413] = {"description": "the body is larger than the service's limit (limits.max_body_bytes)"}

    @r.post("/rank", status_code=201, response_model=RankResponse, responses=errors)
    def rank_route(req: RankRequest) -> RankResponse:
        """Personalizer Rank: the action to show (``rewardActionId``) and every action's probability."""
        return rank(service, req)

    @r.post("/events/{eventId}/reward", status_code=204, response_class=Response, responses=errors)
    def reward_route(req: RewardRequest, event_id: Annotated[str, Path(alias="eventId", max_length=256)]):
        """Personalizer Reward: the event's reward (the first one counts)."""
        service.feedback(_decision_of(service, event_id), req.value, None)
        return Response(status_code=204)

    @r.post("/events/{eventId}/activate", status_code=204, response_class=Response, responses=errors)
    def activate_route(event_id: Annotated[str, Path(alias="eventId", max_length=256)]):
        """Personalizer Activate: a rank made with ``deferActivation`` was shown."""
        service.activate(_decision_of(service, event_id))
        return Response(status_code=204)

    return r


def error_for(e: ServiceError) -> JSONResponse:
    return error(400 if isinstance(e, Invalid) else http_status(e), str(e))
