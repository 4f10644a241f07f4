"""The decision service: which creative to show for this (user, item, placement), and the feedback loop.

An ad server calls ``POST /v1/decide`` per impression and ``POST /v1/feedback`` when the user
clicks. Every answered decision is in the event log before the answer leaves (its propensity is the
probability the served policy really had); the learner (``backdrop learn`` or ``serve --learn``)
folds joined rewards into a new model version, which every replica picks up between requests.
The OpenAPI schema (``/openapi.json``, committed as ``docs/openapi.json``) is the contract.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
)

from .. import __version__
from ..bandit.arms import ORIGINAL
from ..bandit.features import FeatureEncoder
from ..bandit.policies import ModelFileError, Policy
from ..creative.store import CreativeStore
from .eventlog import (
    EarlyReward,
    EventLog,
    LogUnavailable,
    RequestConflict,
    TooLate,
    UnknownDecision,
    VersionConflict,
    open_event_log,
    request_conflict,
)
from .metrics import Metrics
from .models import load_servable
from .records import DecisionRecord
from .settings import ServiceSettings

logger = logging.getLogger(__name__)
#: the ``policy`` logged for decisions made by an experiment arm rather than the bandit (the learner skips them)
CONTROL, FIXED_STYLE, RANDOM_STYLE = "control", "fixed-style", "random-style"
NO_KEY = "this endpoint needs an API key and none is configured (BACKDROP_API_KEY, --api-key-file or the store's api-key file)"
WRONG_KEY = "missing or wrong API key (Authorization: Bearer <key> or X-API-Key)"
#: the schema's hard maxima; a deployment's ``limits`` may only be stricter
MAX_FEATURE_KEYS, MAX_KEY_LENGTH, MAX_VALUE_LENGTH = 64, 64, 256
FeatureKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH)]
FeatureValue = (
    Annotated[StrictStr, StringConstraints(max_length=MAX_VALUE_LENGTH)]
    | StrictBool
    | StrictInt
    | Annotated[StrictFloat, Field(allow_inf_nan=False)]
)


# -- request / response models (the contract) -----------------------------------------------


class User(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, max_length=128, description="Your user id (logged, not a feature)")
    features: dict[FeatureKey, FeatureValue] = Field(
        default_factory=dict,
        max_length=MAX_FEATURE_KEYS,
        description="Context features: strings and booleans are hashed, numbers must be declared in the "
        "service's feature config to be used. Bounded in keys and lengths.",
    )


class DecideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="Idempotency key: a retry with the same id gets the same decision"
    )
    user: User = Field(default_factory=User)
    item_id: str = Field(min_length=1, max_length=256)
    placement: str = Field(min_length=1, max_length=64)
    styles: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, description="Only consider these styles (default: every style stored for the item and placement)"
    )


class Creative(BaseModel):
    key: str
    url: str
    width: int
    height: int


class DecideResponse(BaseModel):
    decision_id: str | None = Field(description="Pass it to /v1/feedback; null when the decision could not be logged")
    item_id: str
    placement: str
    style: str
    creative: Creative
    propensity: float = Field(description="Probability the served policy chose this style")
    policy: str = Field(description="The bandit policy, or control / fixed-style / random-style for an experiment arm")
    model_version: int
    experiment_arm: str | None = Field(default=None, description="The experiment arm of this user (null outside experiments)")
    fallback: Literal["no-creative", "log-unavailable"] | None = Field(
        description="no-creative: no generated creative for this item and placement, the catalog image is shown; "
        "log-unavailable: the event log could not be written, a default creative is shown and nothing was logged"
    )


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(min_length=1, max_length=64)
    reward: Annotated[StrictFloat, Field(allow_inf_nan=False, ge=-1e6, le=1e6)] | Annotated[StrictInt, Field(ge=-(10**6), le=10**6)] = Field(
        description="1 for a click, 0 for none, or a value (a JSON number: not a string, not a boolean)"
    )
    at: Annotated[float, Field(allow_inf_nan=False, ge=0)] | None = Field(
        default=None, description="When the event happened (unix seconds); default: now"
    )


class FeedbackResponse(BaseModel):
    decision_id: str
    status: Literal["joined", "duplicate"] = Field(description="duplicate: a reward was already joined; this one is not counted")


class ModelResponse(BaseModel):
    version: int
    policy: str
    learner_offset: int


class Problem(BaseModel):
    detail: str


# -- the creative index (in memory, refreshed from the store) -------------------------------


@dataclass(frozen=True)
class _Creative:
    key: str
    path: Path
    width: int
    height: int
    media_type: str
    size: int | None = None  # bytes the index says the file has (None: the catalog image, not indexed)


class CreativeIndex:
    """item -> category, and (item, placement) -> {style: creative}; rebuilt from the store, swapped whole.

    Creatives QA flagged are withheld (not candidates, not served as files) unless ``serve_flagged``.
    """

    def __init__(self, store_root: Path, serve_flagged: bool = False):
        self.store_root = Path(store_root)
        self.serve_flagged = serve_flagged
        self.products: dict[str, dict] = {}
        self.by_item: dict[tuple[str, str], dict[str, _Creative]] = {}
        self.files: dict[str, _Creative] = {}
        self.placements: set[str] = set()
        self.withheld = 0
        #: creatives whose file is missing or does not have the bytes the index says (not served)
        self.broken: list[str] = []
        self.loaded_at = 0.0

    def refresh(self) -> None:
        from PIL import Image

        store = CreativeStore(self.store_root, readonly=True)
        try:
            products, by_item, files, placements, withheld, broken = {}, {}, {}, set(), 0, []
            for p in store.products():
                products[p["product_id"]] = p
            for r in store.creatives():
                placements.add(r.placement)
                if r.flagged and not self.serve_flagged:
                    withheld += 1
                    continue
                path = self.store_root / r.path
                try:
                    size = path.stat().st_size
                except OSError:
                    size = -1
                if size != r.bytes:  # truncated, replaced or missing: never served, always reported
                    broken.append(r.key)
                    continue
                media = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}.get(r.format, "application/octet-stream")
                c = _Creative(r.key, path, r.width, r.height, media, r.bytes)
                by_item.setdefault((r.product_id, r.placement), {})[r.style] = c
                files[r.key] = c
            for p in products.values():  # the catalog image, content-addressed like the creatives
                path = Path(p["image_path"])
                key = "catalog-" + p["image_sha256"][:32]
                if key not in files and path.is_file():
                    with Image.open(path) as im:
                        w, h = im.size
                    media = "image/png" if path.suffix.lower() == ".png" else "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/webp"
                    files[key] = _Creative(key, path, w, h, media)
                p["catalog_key"] = key
        finally:
            store.close()
        if broken and broken != self.broken:
            logger.error(
                "%d creative file(s) do not match the store's index and are not served (first: %s); run `backdrop store verify %s`",
                len(broken), broken[0], self.store_root,
            )
        self.products, self.by_item, self.files, self.placements, self.withheld, self.broken = (
            products, by_item, files, placements, withheld, broken
        )
        self.loaded_at = time.time()


# -- the service ----------------------------------------------------------------------------


class Service:
    """Holds the log, the served policy (swapped when a newer version is published) and the index."""

    def __init__(self, settings: ServiceSettings, log: EventLog | None = None, learn_interval_s: float | None = None):
        self.settings = settings
        self.encoder = FeatureEncoder(settings.features)
        self.metrics = Metrics()
        self.index = CreativeIndex(settings.store, serve_flagged=settings.serve_flagged)
        self.refresh_index()
        self.log = log or open_event_log(settings.db_url)
        self._policy_lock = threading.Lock()
        self._rng = np.random.default_rng(settings.policy.seed)
        self.policy: Policy = settings.policy.make(self.encoder.n_features)
        self.model_version = 0
        self.model_loaded = False
        #: published versions that cannot be served (and why); the service keeps the last good one
        self.rejected_models: dict[int, str] = {}
        self.learner_lag_s: float | None = None
        self._stop = threading.Event()
        try:
            self.log.migrate()
            self.reload_model()
        except LogUnavailable:
            pass  # serve with the configured fresh policy; /readyz says why not ready
        self._threads = [
            threading.Thread(target=self._poll_models, name="backdrop-model-poll", daemon=True),
            threading.Thread(target=self._poll_store, name="backdrop-store-refresh", daemon=True),
        ]
        self.learner = None
        if learn_interval_s is not None:
            from .learner import Learner

            n = self.encoder.n_features
            self.learner = Learner(
                self.log, lambda: settings.policy.make(n), join_window_s=settings.join_window_s,
                default_reward=settings.default_reward, grace_s=settings.commit_grace_s,
            )
            self._threads.append(
                threading.Thread(target=self.learner.run_forever, args=(learn_interval_s, self._stop), name="backdrop-learner", daemon=True)
            )
        for t in self._threads:
            t.start()

    def reload_model(self) -> bool:
        """Serve the newest published model that can be served (an atomic swap); True when one is loaded.

        A version that fails validation (:func:`~backdrop.serving.models.load_servable`) is
        rejected once, logged and reported by readiness; the service keeps the last good version
        (at start-up: the newest good one), so a bad model never stops decisions or start-up.
        """
        latest = self.log.latest_version()
        if latest > self.model_version and latest not in self.rejected_models:
            candidates = [latest] if self.model_loaded else [v for v in self.log.model_versions() if v > self.model_version]
            for version in candidates:
                if version in self.rejected_models:
                    continue
                record = self.log.model(version)
                try:
                    policy = load_servable(record.blob, self.encoder.n_features, f"model version {version}")
                except ModelFileError as e:
                    self.rejected_models[version] = str(e)
                    self.metrics.model_rejected.inc()
                    logger.error("%s; serving model version %d", e, self.model_version)
                    continue
                with self._policy_lock:
                    self.policy, self.model_version = policy, record.version
                self.metrics.model_version.set(record.version)
                break
        self.model_loaded = True
        return True

    def _poll_models(self) -> None:
        while not self._stop.wait(self.settings.model_poll_s):
            try:
                self.reload_model()
                self._measure_learner_lag()
            except LogUnavailable as e:
                logger.debug("model poll: %s", e)
            except Exception:  # noqa: BLE001 - the poll must go on; readiness reports what it finds
                logger.exception("model poll failed")

    def _measure_learner_lag(self) -> None:
        """How long the oldest decision the learner could have folded has waited for it (0: none)."""
        current = self.log.latest_model()
        first = self.log.first_unfolded(current.learner_offset if current else 0)
        ready_at = None if first is None else first + self.settings.join_window_s + self.settings.commit_grace_s
        self.learner_lag_s = 0.0 if ready_at is None else max(0.0, time.time() - ready_at)
        self.metrics.learner_lag.set(self.learner_lag_s)

    def readiness(self) -> tuple[list[str], list[str]]:
        """(problems that make the replica not ready, warnings that do not)."""
        problems, warnings = [], []
        unreachable = self.log.ping_problem()
        if unreachable:
            problems.append(f"event log unreachable: {unreachable}")
        else:
            write = self.log.write_problem(probe_after_s=self.settings.write_probe_s)
            if write:
                problems.append(write)
        if not self.model_loaded:
            problems.append("model not loaded")
        for version, why in sorted(self.rejected_models.items()):
            note = f"model version {version} rejected ({why}); serving version {self.model_version}"
            (warnings if self.model_version or version != max(self.rejected_models) else problems).append(note)
        if self.learner is not None:
            status = self.learner.status
            if not any(t.name == "backdrop-learner" and t.is_alive() for t in self._threads):
                problems.append("the learner thread has stopped")
            elif status.consecutive_failures >= 3:
                problems.append(f"the learner failed {status.consecutive_failures} passes in a row: {status.last_error}")
        bound = self.settings.learner_max_lag_s
        if bound is not None and self.learner_lag_s is not None and self.learner_lag_s > bound:
            problems.append(f"the learner is {self.learner_lag_s:.0f} s behind (bound {bound:g} s)")
        if not self.index.by_item:
            if self.index.withheld:
                problems.append(
                    f"no servable creative: all {self.index.withheld} are flagged by QA (see `backdrop report`; serve_flagged is off)"
                )
            else:
                problems.append("creative store is empty")
        if self.index.broken:
            note = (
                f"{len(self.index.broken)} creative file(s) do not match the store's index (first: {self.index.broken[0]}); "
                f"not served; run `backdrop store verify {self.settings.store}`"
            )
            (problems if len(self.index.broken) > self.settings.max_broken_creatives else warnings).append(note)
        return problems, warnings

    def refresh_index(self) -> None:
        self.index.refresh()
        self.metrics.creatives.labels("served").set(sum(len(v) for v in self.index.by_item.values()))
        self.metrics.creatives.labels("withheld").set(self.index.withheld)
        self.metrics.creatives.labels("broken").set(len(self.index.broken))

    def _poll_store(self) -> None:
        while not self._stop.wait(self.settings.store_refresh_s):
            try:
                self.refresh_index()
            except Exception as e:  # noqa: BLE001 - keep serving the last good index
                logger.warning("creative store refresh failed, serving the last good index: %s", e)

    def close(self) -> None:
        self._stop.set()
        self.log.close()

    # -- decide -----------------------------------------------------------------------------

    def url(self, key: str) -> str:
        return f"{self.settings.public_url}/v1/creatives/{key}"

    def creative(self, c: _Creative) -> Creative:
        return Creative(key=c.key, url=self.url(c.key), width=c.width, height=c.height)

    def decide(self, req: DecideRequest) -> DecideResponse:
        limits = self.settings.limits
        _check_features(req.user.features, limits)
        if req.styles is not None and len(req.styles) > limits.max_styles:
            raise HTTPException(422, f"styles: at most {limits.max_styles} styles")
        product = self.index.products.get(req.item_id)
        if product is None:
            raise HTTPException(404, f"unknown item_id '{req.item_id}': not in the creative store (run backdrop generate for it)")
        if req.placement not in self.index.placements:
            known = ", ".join(sorted(self.index.placements)) or "none"
            raise HTTPException(404, f"unknown placement '{req.placement}'; known: {known}")

        if req.request_id is not None:
            try:
                previous = self.log.get_by_request(req.request_id)
            except LogUnavailable:
                previous = None
            if previous is not None:
                asked = DecisionRecord("", 0.0, req.item_id, req.placement, [], "", 1.0, "", 0, [], req.user.id,
                                       dict(req.user.features), req.request_id)
                if (previous.item_id, previous.placement, previous.user_id, previous.user_features) != (
                    asked.item_id, asked.placement, asked.user_id, asked.user_features
                ):
                    self.metrics.fallbacks.labels(reason="request-conflict").inc()
                    raise HTTPException(409, str(request_conflict(previous, asked)))
                return self._response(previous)

        stored = self.index.by_item.get((req.item_id, req.placement), {})
        arms = [s for s in sorted(stored) if s != ORIGINAL]
        if req.styles is not None:
            wanted = set(req.styles)
            arms = [s for s in arms if s in wanted]
        experiment = self.settings.experiment
        group = experiment.assign(req.user.id) if experiment is not None else None
        serve = experiment.arms[group].serve if experiment is not None else "policy"
        t0 = time.perf_counter()
        x = self.encoder.encode(req.user.features, product["category"], req.placement)
        with self._policy_lock:
            policy, version = self.policy, self.model_version
            if serve == "policy" and arms:
                decision = policy.choose(x, arms)
                style, propensity, policy_name = str(decision.arm), float(decision.propensity), policy.name
            elif serve == "random" and arms:
                style, propensity, policy_name = arms[int(self._rng.integers(len(arms)))], 1.0 / len(arms), RANDOM_STYLE
        fallback = None
        if serve == "fixed" and arms:
            style, propensity, policy_name = _fixed_style(experiment.arms[group], req.item_id, arms), 1.0, FIXED_STYLE
        if serve == "original" or not arms:  # the control arm: the catalog image (its "original" rendition when stored)
            style, propensity = ORIGINAL, 1.0
            policy_name = CONTROL if serve == "original" else policy.name
            fallback = None if serve == "original" else "no-creative"
            key = stored[ORIGINAL].key if ORIGINAL in stored else product["catalog_key"]
        else:
            key = stored[style].key
        self.metrics.policy_seconds.observe(time.perf_counter() - t0)
        record = DecisionRecord(
            decision_id=uuid.uuid4().hex,
            created_at=time.time(),
            item_id=req.item_id,
            placement=req.placement,
            arms=arms if style != ORIGINAL else [ORIGINAL],
            arm=style,
            propensity=propensity,
            policy=policy_name,
            model_version=version,
            context=x.tolist(),
            user_id=req.user.id,
            user_features=dict(req.user.features),
            request_id=req.request_id,
            creative_key=key,
            fallback=fallback,
            experiment_arm=group,
            learn=serve == "policy" and fallback is None and style != ORIGINAL,
        )
        t1 = time.perf_counter()
        try:
            record = self.log.log_decision(record, timeout_s=self.settings.log_timeout_ms / 1000)
            self.metrics.log_seconds.observe(time.perf_counter() - t1)
        except RequestConflict as e:  # the same request_id sent concurrently for another request
            self.metrics.fallbacks.labels(reason="request-conflict").inc()
            raise HTTPException(409, str(e)) from None
        except LogUnavailable as e:
            logger.warning("decision not logged, answered with the fallback: %s", e)
            return self._unlogged(req, stored, product, policy, version, group)
        self.metrics.decisions.labels(style=style, fallback=fallback or "none").inc()
        if fallback:
            self.metrics.fallbacks.labels(reason=fallback).inc()
        return self._response(record)

    def _unlogged(self, req, stored, product, policy, version, group) -> DecideResponse:
        """The database is down: an ad must still render, but nothing is claimed as logged."""
        default = self.settings.default_style
        styles = [s for s in sorted(stored) if s != ORIGINAL]
        style = default if default in stored else (styles[0] if styles else ORIGINAL)
        key = stored[style].key if style in stored else product["catalog_key"]
        self.metrics.decisions.labels(style=style, fallback="log-unavailable").inc()
        self.metrics.fallbacks.labels(reason="log-unavailable").inc()
        return DecideResponse(
            decision_id=None,
            item_id=req.item_id,
            placement=req.placement,
            style=style,
            creative=self.creative(self.index.files[key]),
            propensity=1.0,
            policy=policy.name,
            model_version=version,
            experiment_arm=group,
            fallback="log-unavailable",
        )

    def _response(self, r: DecisionRecord) -> DecideResponse:
        c = self.index.files.get(r.creative_key)
        if c is None:
            raise HTTPException(404, f"creative {r.creative_key} of decision {r.decision_id} is no longer in the store")
        return DecideResponse(
            decision_id=r.decision_id,
            item_id=r.item_id,
            placement=r.placement,
            style=r.arm,
            creative=self.creative(c),
            propensity=r.propensity,
            policy=r.policy,
            model_version=r.model_version,
            experiment_arm=r.experiment_arm,
            fallback=r.fallback,
        )


def _fixed_style(arm, item_id: str, arms: list[str]) -> str:
    wanted = arm.styles.get(item_id)
    if wanted in arms:
        return wanted
    return next((s for s in arm.order if s in arms), arms[0])


def _check_features(features: dict, limits) -> None:
    if len(features) > limits.max_feature_keys:
        raise HTTPException(422, f"user.features: at most {limits.max_feature_keys} keys, got {len(features)}")
    # the schema's maxima are checked by the request model (non-finite numbers too); a deployment may be stricter
    for key, value in features.items():
        if len(key) > limits.max_key_length:
            raise HTTPException(422, f"user.features: keys must be 1-{limits.max_key_length} characters ({key[:80]!r})")
        if isinstance(value, str) and len(value) > limits.max_value_length:
            raise HTTPException(422, f"user.features.{key}: at most {limits.max_value_length} characters")


# -- the app --------------------------------------------------------------------------------


def validation_detail(raw_errors) -> list[dict]:
    """FastAPI's 422 detail without the input echoed back (it may be NaN, unserialisable, or a secret),
    and one error per user feature rather than one per branch of its type union."""
    errors, seen = [], set()
    for e in raw_errors:
        loc = list(e.get("loc", ()))
        msg, kind = e.get("msg", ""), e.get("type", "")
        if loc[:3] == ["body", "user", "features"] and len(loc) > 4:
            loc = loc[:4]
            if kind != "string_too_long":
                msg, kind = "must be a string, a boolean, an integer or a finite number", "feature_type"
        if tuple(loc) not in seen or kind == "string_too_long":
            seen.add(tuple(loc))
            errors = [x for x in errors if x["loc"] != loc] + [{"loc": loc, "msg": msg, "type": kind}]
    return errors


class LimitsAndMetrics:
    """Body-size limits, request counts and latency per route: a plain ASGI middleware (Starlette's
    ``BaseHTTPMiddleware`` costs about half a millisecond of CPU per request).

    It also serves ``POST /v1/decide``, the hot path, directly: the same request model, the same
    422/4xx bodies and the same response model as the FastAPI route that documents it in the
    OpenAPI schema (the fuzz test holds both to the schema), without FastAPI's routing and
    dependency machinery, which costs more CPU than choosing and logging the decision.
    """

    #: endpoints that need the API key: checked before a byte of the body is read
    KEYED = ("/v1/models", "/v1/feedback")

    def __init__(self, app, service: Service, api_key: str | None = None):
        import asyncio
        import concurrent.futures

        self.app, self.service, self.api_key = app, service, api_key
        # decisions wait for the event log's commit: they run off the event loop
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=40, thread_name_prefix="backdrop-decide")
        self.uploads = asyncio.Semaphore(service.settings.limits.max_concurrent_uploads)

    def _key_ok(self, scope) -> bool:
        headers = dict(scope["headers"])
        given = headers.get(b"x-api-key")
        auth = headers.get(b"authorization", b"")
        if given is None and auth.lower().startswith(b"bearer "):
            given = auth[7:]
        return self.api_key is not None and given is not None and hmac.compare_digest(given, self.api_key.encode())

    async def _receive_within(self, receive, timeout: float):
        import asyncio

        try:
            return await asyncio.wait_for(receive(), timeout)
        except asyncio.TimeoutError:
            raise _BodyTimeout from None

    async def _decide(self, receive, send) -> None:
        import asyncio

        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        # (the body was read, within the size limit and the body timeout, by __call__)
        status, payload, body = 200, None, b""
        try:
            req = DecideRequest.model_validate_json(b"".join(chunks))
        except ValidationError as e:
            errors = [dict(x, loc=("body", *x["loc"])) for x in e.errors()]
            status, payload = 422, {"detail": validation_detail(errors)}
        if payload is None:
            try:
                response = await asyncio.get_running_loop().run_in_executor(self.pool, self.service.decide, req)
                body = response.model_dump_json().encode()
            except HTTPException as e:
                status, payload = e.status_code, {"detail": e.detail}
            except Exception:
                logger.exception("decide failed")
                status, payload = 500, {"detail": "Internal Server Error"}
        if payload is not None:
            body = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        limits = self.service.settings.limits
        limit = limits.max_model_bytes if scope["path"] == "/v1/models" else limits.max_body_bytes
        length = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"content-length"), None)
        status = [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        too_big = length is not None and (not length.isdigit() or int(length) > limit)
        endpoint = None
        upload = scope["path"] == "/v1/models" and scope["method"] == "POST"
        if scope["path"] in self.KEYED and scope["method"] == "POST" and not self._key_ok(scope):
            # before a byte of the body is read: an unauthenticated client cannot make us buffer anything
            if self.api_key is None:
                await JSONResponse({"detail": NO_KEY}, 503)(scope, _no_body, send_status)
            else:
                await JSONResponse({"detail": WRONG_KEY}, 401)(scope, _no_body, send_status)
        elif too_big:
            await JSONResponse({"detail": f"request body larger than {limit} bytes"}, 413)(scope, receive, send_status)
        elif upload and self.uploads.locked():
            await JSONResponse({"detail": "too many model uploads at once; retry shortly"}, 429, headers={"Retry-After": "5"})(
                scope, receive, send_status
            )
        else:
            await self._serve(scope, receive, send_status, limit, upload)
            if scope["path"] == "/v1/decide" and scope["method"] == "POST":
                endpoint = "/v1/decide"
        endpoint = endpoint or getattr(scope.get("route"), "path", "unmatched")
        self.service.metrics.requests.labels(endpoint=endpoint, status=str(status[0])).inc()
        self.service.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - t0)

    async def _serve(self, scope, receive, send, limit: int, upload: bool) -> None:
        """Read the body (within ``limit`` bytes and the body timeout, counted while streaming), then answer."""
        timeout = self.service.settings.limits.body_timeout_s
        body = None
        if scope["method"] in ("POST", "PUT"):
            chunks, size, more = [], 0, True
            try:
                if upload:
                    await self.uploads.acquire()
                try:
                    while more:
                        message = await self._receive_within(receive, timeout)
                        if message["type"] == "http.disconnect":
                            return
                        chunks.append(message.get("body", b""))
                        size += len(chunks[-1])
                        more = message.get("more_body", False)
                        if size > limit:
                            await JSONResponse({"detail": f"request body larger than {limit} bytes"}, 413)(scope, receive, send)
                            return
                    body = b"".join(chunks)
                    chunks = []
                    replayed = False

                    async def replay():
                        nonlocal replayed
                        if replayed:  # an app asking for more after the whole body waits for the disconnect
                            return await receive()
                        replayed = True
                        return {"type": "http.request", "body": body, "more_body": False}

                    if scope["path"] == "/v1/decide" and scope["method"] == "POST":
                        await self._decide(replay, send)
                    else:
                        await self.app(scope, replay, send)
                finally:
                    if upload:
                        self.uploads.release()
            except _BodyTimeout:
                await JSONResponse({"detail": f"the request body did not arrive within {timeout:g} s"}, 408,
                                   headers={"Connection": "close"})(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _BodyTimeout(Exception):
    pass


async def _no_body():
    return {"type": "http.request", "body": b"", "more_body": False}


def create_app(settings: ServiceSettings, log: EventLog | None = None, learn_interval_s: float | None = None) -> FastAPI:
    """The FastAPI app of one replica (several replicas share one PostgreSQL event log); with
    ``learn_interval_s`` the replica also runs the learner (``serve --learn``)."""
    service = Service(settings, log, learn_interval_s=learn_interval_s)

    @asynccontextmanager
    async def lifespan(app):
        yield
        service.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Backdrop decision service",
        version=__version__,
        description=(
            "Chooses, per ad impression, which generated creative (background style) of an item to show, "
            "logs the decision with its propensity, and joins click feedback for the learner."
        ),
        responses={422: {"description": "Invalid request: the detail names the field"}},
    )
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_detail(exc.errors())}, status_code=422)

    api_key = settings.api_key.get_secret_value() if settings.api_key else None

    def require_key(
        authorization: Annotated[str | None, Header(description="Bearer <api key>")] = None,
        x_api_key: Annotated[str | None, Header(description="the API key (alternative to Authorization)")] = None,
    ) -> None:
        given = x_api_key or (authorization[7:] if authorization and authorization.lower().startswith("bearer ") else None)
        if api_key is None:
            raise HTTPException(503, NO_KEY)
        if given is None or not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, WRONG_KEY)

    app.add_middleware(LimitsAndMetrics, service=service, api_key=api_key)

    @app.post("/v1/decide", response_model=DecideResponse, responses={404: {"model": Problem}, 409: {"model": Problem}})
    def decide(req: DecideRequest) -> DecideResponse:
        """Choose the creative for this impression; the decision is logged before the answer leaves."""
        # requests are answered by LimitsAndMetrics._decide before they get here; this route is the
        # contract in the OpenAPI schema (and serves the app if it is mounted without the middleware)
        return service.decide(req)

    @app.post(
        "/v1/feedback",
        response_model=FeedbackResponse,
        dependencies=[Depends(require_key)],
        responses={401: {"model": Problem}, 404: {"model": Problem}, 409: {"model": Problem}, 503: {"model": Problem}},
    )
    def feedback(req: FeedbackRequest) -> FeedbackResponse:
        """Join a reward (a click) to its decision; a second reward for the same decision is not counted."""
        now = time.time()
        try:
            status = service.log.log_reward(
                req.decision_id, req.reward, req.at if req.at is not None else now, now, settings.join_window_s
            )
        except UnknownDecision:
            raise HTTPException(404, f"unknown decision_id '{req.decision_id}'") from None
        except TooLate as e:
            raise HTTPException(409, str(e)) from None
        except EarlyReward as e:
            raise HTTPException(422, f"at: {e}") from None
        except LogUnavailable:
            raise HTTPException(503, "the event log is unavailable; retry later") from None
        service.metrics.rewards.labels(status=status).inc()
        return FeedbackResponse(decision_id=req.decision_id, status=status)

    @app.get(
        "/v1/creatives/{key}",
        response_class=Response,
        responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}}, 304: {"description": "Not modified"}, 404: {"model": Problem}},
    )
    def creative(key: str, if_none_match: Annotated[str | None, Header()] = None):
        """The image bytes; content-addressed, so cached forever (ETag = key)."""
        c = service.index.files.get(key)
        if c is None:
            raise HTTPException(404, f"unknown creative '{key}'")
        etag = f'"{key}"'
        headers = {"ETag": etag, "Cache-Control": "public, max-age=31536000, immutable"}
        if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
            return Response(status_code=304, headers=headers)
        try:
            size = c.path.stat().st_size
        except OSError:
            size = -1
        if size < 0 or (c.size is not None and size != c.size):  # damaged since the last refresh: never served as immutable
            logger.error("creative %s: file %s has %d bytes, the index says %s", key, c.path, size, c.size)
            raise HTTPException(503, f"creative '{key}' is damaged in the store (its file does not match the index); run backdrop store verify")
        return FileResponse(c.path, media_type=c.media_type, headers=headers)

    @app.post(
        "/v1/models",
        response_model=ModelResponse,
        dependencies=[Depends(require_key)],
        responses={401: {"model": Problem}, 409: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}},
        openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
    )
    async def publish_model(request: Request) -> ModelResponse:
        """Publish a model file (``Policy.save``) as the next version: every replica serves it within seconds."""
        data = await request.body()
        try:
            policy = load_servable(data, service.encoder.n_features, "uploaded model")
        except ModelFileError as e:
            raise HTTPException(422, str(e)) from None
        try:
            current = service.log.latest_model()
            record = service.log.publish_model(
                data,
                policy.name,
                learner_offset=current.learner_offset if current else 0,
                n_decisions=current.n_decisions if current else 0,
                n_rewards=current.n_rewards if current else 0,
                expected_version=current.version if current else 0,
            )
        except LogUnavailable:
            raise HTTPException(503, "the event log is unavailable; retry later") from None
        except VersionConflict as e:
            raise HTTPException(409, str(e)) from None
        return ModelResponse(version=record.version, policy=record.policy, learner_offset=record.learner_offset)

    @app.get("/healthz")
    def healthz() -> dict:
        """The process is up."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", responses={503: {"description": "Not ready: the reasons are listed"}})
    def readyz():
        """Ready to serve logged decisions: the event log can be written, a servable model is loaded, the
        learner (when configured) keeps up, and the store's files match its index."""
        problems, warnings = service.readiness()
        body = {"ready": not problems, "problems": problems, "warnings": warnings, "model_version": service.model_version}
        return JSONResponse(body, status_code=200 if not problems else 503)

    @app.get("/metrics", response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics: requests and latency per endpoint, decisions per style, rewards, model version."""
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    return app


#: ``backdrop serve --workers N`` passes the settings to each worker process through this file (mode 600)
SETTINGS_FILE_ENV = "BACKDROP_SETTINGS_FILE"


def app_from_settings_file() -> FastAPI:
    """The app factory uvicorn's worker processes call (``backdrop serve --workers N``)."""
    import json
    import os

    path = os.environ.get(SETTINGS_FILE_ENV)
    if not path:
        raise RuntimeError(f"{SETTINGS_FILE_ENV} is not set; start the service with `backdrop serve`")
    data = json.loads(Path(path).read_text())
    data["api_key"] = os.environ.get("BACKDROP_API_KEY")  # never in the file
    return create_app(ServiceSettings.model_validate(data))
