"""The decision service's domain: choose, log, learn, and say whether it is ready. No HTTP here:
failures are :mod:`backdrop.serving.errors`, which the app maps to status codes in one place."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np

from ..bandit.arms import ORIGINAL
from ..bandit.features import FeatureEncoder
from ..bandit.policies import ModelFileError, Policy
from ..bandit.threads import limit_for_process
from ..creative.review import review_seq, review_states
from ..creative.storage import open_files
from ..creative.store import CreativeStore
from .candidates import Candidates, DamagedFiles, candidates_for, file_problem
from .errors import Conflict, Invalid, NotFound, Unavailable
from .eventlog import (
    EventLog,
    LogUnavailable,
    RequestConflict,
    VersionConflict,
    open_event_log,
    request_conflict,
)
from .index import CreativeIndex, _Creative
from .metrics import Metrics
from .models import load_servable
from .outcomes import Outcomes
from .readiness import readiness
from .records import DecisionRecord
from .rollout import APPRENTICE, BASELINE, POLICY, RolloutState
from .schemas import Creative, DecideRequest, DecideResponse
from .settings import ServiceSettings

logger = logging.getLogger(__name__)
#: the ``policy`` logged for decisions made by an experiment arm rather than the bandit
CONTROL, FIXED_STYLE, RANDOM_STYLE = "control", "fixed-style", "random-style"


class Service(Outcomes):
    """Holds the log, the served policy (swapped when a newer version is published) and the index.

    Building it loads the store's index and the newest servable model; :meth:`start` starts its
    threads (model poll, store refresh, the learner when asked for) and :meth:`close` stops them:
    the app's lifespan calls both.
    """

    def __init__(self, settings: ServiceSettings, log: EventLog | None = None, learn_interval_s: float | None = None):
        self.settings = settings
        self.encoder = FeatureEncoder(settings.features)
        self.metrics = Metrics()
        self.index = CreativeIndex(settings.store, serve_flagged=settings.serve_flagged, review_required=settings.review_required)
        #: the store's files, for the bytes of creatives on object storage (local ones are sent as files)
        self.files = open_files(settings.store)
        self._creatives: dict[str, Creative] = {}
        self._index_lock = threading.Lock()
        self._review_store: CreativeStore | None = None
        #: files found damaged after the index loaded: out of the candidates at once
        self.damaged = DamagedFiles()
        #: when the review state was last read from the store, and why the last read failed
        self.reviews_read_at = time.time()
        self.review_error = ""
        self.refresh_index()
        self.log = log or open_event_log(settings.db_url)
        self._policy_lock = threading.Lock()
        self._rng = np.random.default_rng(settings.policy.seed)
        self.policy: Policy = settings.policy.make(self.encoder.n_features, self.encoder.blocks)
        self.model_version = 0
        self.model_loaded = False
        #: the safe rollout's state as of the served model (the baseline until a model says otherwise)
        self.rollout = RolloutState()
        #: published versions that cannot be served (and why); the service keeps the last good one
        self.rejected_models: dict[int, str] = {}
        self.learner_lag_s: float | None = None
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        try:
            self.log.migrate()
            self.reload_model()
        except LogUnavailable:
            pass  # serve with the configured fresh policy; /readyz says why not ready
        if settings.reward.rule in ("sum-values", "weighted") and settings.reward.cap is None:
            logger.warning(
                "reward.rule %s has no cap: one huge order (or refund) can swamp the learner; set reward.cap", settings.reward.rule
            )
        self._threads: list[threading.Thread] = []
        self._blas_limit = None
        self._learn_interval_s = learn_interval_s
        self.learner = None
        if learn_interval_s is not None:
            from .learner import Learner

            self.learner = Learner.for_settings(self.log, settings)

    def start(self) -> None:
        """Start the background threads (model poll, store refresh, the learner) and the decide pool."""
        if self._threads and not self._stop.is_set():
            return  # running
        self._stop = threading.Event()
        # the policy's algebra is on small matrices: one BLAS thread for this process while it serves
        self._blas_limit = limit_for_process()
        # decisions wait for the event log's commit: the ASGI fast path runs them here, off the event loop
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=40, thread_name_prefix="backdrop-decide")
        self._threads = [
            threading.Thread(target=self._poll_models, name="backdrop-model-poll", daemon=True),
            threading.Thread(target=self._poll_store, name="backdrop-store-refresh", daemon=True),
            threading.Thread(target=self._poll_reviews, name="backdrop-review-poll", daemon=True),
            threading.Thread(target=self._check_files, name="backdrop-file-check", daemon=True),
        ]
        if self.learner is not None:
            self._threads.append(
                threading.Thread(
                    target=self.learner.run_forever, args=(self._learn_interval_s, self._stop), name="backdrop-learner", daemon=True
                )
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
                if record is None:  # listed a moment ago, gone now (a restored backup): nothing to serve
                    continue
                try:
                    policy = load_servable(record.blob, self.encoder.n_features, f"model version {version}")
                except ModelFileError as e:
                    self.rejected_models[version] = str(e)
                    self.metrics.model_rejected.inc()
                    logger.error("%s; serving model version %d", e, self.model_version)
                    continue
                rollout = RolloutState.from_json(record.rollout)
                if rollout.phase != self.rollout.phase and self.settings.rollout is not None:
                    logger.warning("rollout: serving the %s from model version %d on (%s)", rollout.phase, record.version, rollout.switched)
                with self._policy_lock:
                    self.policy, self.model_version, self.rollout = policy, record.version, rollout
                self.metrics.model_version.set(record.version)
                self.metrics.expired.set(record.n_expired)
                self._rollout_metrics()
                break
        self.model_loaded = True
        return True

    def _rollout_metrics(self) -> None:
        if self.settings.rollout is None:
            return
        self.metrics.rollout_phase.set(1 if self.rollout.phase == POLICY else 0)
        summary = self.rollout.stats.summary(self.settings.rollout)
        for name in ("policy_value", "policy_low", "baseline_value", "difference_low"):
            if summary[name] is not None:
                self.metrics.rollout_value.labels(estimate=name).set(summary[name])

    def rollout_status(self) -> dict:
        """The rollout's phase, the current estimates and the switch (:class:`NotFound` outside a rollout)."""
        settings = self.settings.rollout
        if settings is None:
            raise NotFound("no rollout is configured (set `rollout` in the service settings)")
        state = self.rollout
        return {
            "phase": state.phase,
            "baseline": settings.baseline,
            "exploration": settings.exploration,
            "switch": settings.switch,
            "model_version": self.model_version,
            "estimate": state.stats.summary(settings),
            "switched": state.switched,
        }

    def _poll_models(self) -> None:
        while not self._stop.wait(self.settings.model_poll_s):
            try:
                self.reload_model()
                self._measure_learner_lag()
            except LogUnavailable as e:
                logger.debug("model poll: %s", e)
            except Exception:
                logger.exception("model poll failed")

    def _measure_learner_lag(self) -> None:
        """How long the oldest decision the learner could have folded has waited for it (0: none)."""
        current = self.log.latest_model()
        first = self.log.first_unfolded(current.learner_offset if current else 0)
        ready_at = None if first is None else first + self.settings.join_window_s + self.settings.commit_grace_s
        self.learner_lag_s = 0.0 if ready_at is None else max(0.0, time.time() - ready_at)
        self.metrics.learner_lag.set(self.learner_lag_s)

    def readiness(self) -> tuple[list[str], list[str]]:
        """(problems that make the replica not ready, warnings that do not): :func:`.readiness.readiness`."""
        return readiness(self)

    def refresh_index(self) -> None:
        """Load a new snapshot of the store and swap it in (one assignment: readers see one or the other)."""
        s = self.settings
        fresh = CreativeIndex.load(s.store, s.serve_flagged, previous=self.index, index=s.store_index, review_required=s.review_required)
        self._swap(fresh)
        self.reviews_read_at = time.time()

    def _swap(self, index: CreativeIndex) -> None:
        with self._index_lock:
            current = self.index
            if current.review_seq > index.review_seq:  # reviews applied while the snapshot loaded: never older ones
                index = index.with_reviews(current.reviews, current.review_seq)
            self.index = index
        self._count_creatives(index)

    def _count_creatives(self, index: CreativeIndex) -> None:
        for status, n in (
            ("served", index.served),
            ("withheld", index.withheld),
            ("rejected", index.rejected),
            ("pending-review", index.pending),
            ("broken", len({*index.broken, *self.damaged.keys})),
            ("retired", index.retired),
        ):
            self.metrics.creatives.labels(status).set(n)
        self.metrics.review_seq.set(index.review_seq)

    def refresh_reviews(self) -> bool:
        """Apply review changes made since the snapshot (one cheap query when there are none); True if any."""
        if self._review_store is None:
            self._review_store = CreativeStore(self.settings.store, readonly=True, index=self.settings.store_index)
        try:
            if review_seq(self._review_store) == self.index.review_seq:
                self.reviews_read_at = time.time()
                return False
            states, seq = review_states(self._review_store)
        except Exception as e:
            self.review_error = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self._review_store.close()
            self._review_store = None  # reopened at the next poll
            raise
        self.reviews_read_at = time.time()
        with self._index_lock:  # applied to the snapshot being served, not to one read before the lock
            if seq > self.index.review_seq:
                self.index = self.index.with_reviews(states, seq)
            index = self.index
        self._count_creatives(index)
        return True

    def _poll_reviews(self) -> None:
        while not self._stop.wait(self.settings.review_poll_s):
            try:
                self.refresh_reviews()
            except Exception as e:  # noqa: BLE001 - keep serving; readiness reports a stale review state
                logger.warning("review poll failed, serving the last review state: %s", e)

    def _poll_store(self) -> None:
        while not self._stop.wait(self.settings.store_refresh_s):
            try:
                self.refresh_index()
            except Exception as e:  # noqa: BLE001 - keep serving the last good index
                logger.warning("creative store refresh failed, serving the last good index: %s", e)

    def _check_files(self) -> None:
        while not self._stop.wait(self.settings.file_check_s):
            try:
                if self.damaged.check(self.index):
                    self._count_creatives(self.index)
            except Exception:
                logger.exception("creative file check failed")

    def close(self) -> None:
        self._stop.set()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
        # the pollers may be inside a query: closing their connections under them can crash SQLite
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=10)
        self.log.close()
        if self._review_store is not None:
            self._review_store.close()
        if self._blas_limit is not None:
            self._blas_limit.restore_original_limits()
            self._blas_limit = None

    # -- decide -----------------------------------------------------------------------------

    def url(self, key: str) -> str:
        c = self.index.files.get(key)
        if self.settings.public_base_url and c is not None and c.rel:  # a CDN in front of the store's files
            return f"{self.settings.public_base_url.rstrip('/')}/{quote(c.rel)}"
        return f"{self.settings.public_url}/v1/creatives/{key}"

    def creative(self, c: _Creative) -> Creative:
        # content-addressed: a key's file, size and URL never change, so its answer part is made once
        made = self._creatives.get(c.key)
        if made is None:
            if len(self._creatives) > 200_000:
                self._creatives.clear()
            made = self._creatives[c.key] = Creative(key=c.key, url=self.url(c.key), width=c.width, height=c.height)
        return made

    def decide(self, req: DecideRequest) -> DecideResponse:
        """Choose, log (waiting for the commit), answer: the whole decision, on the calling thread."""
        plan = self.plan(req)
        if isinstance(plan, DecideResponse):  # a request_id logged before: its decision again
            return plan
        try:
            record = self.log.log_decision(plan.record, timeout_s=self.settings.log_timeout_ms / 1000)
        except Exception as e:  # noqa: BLE001 - finish() maps the log's errors
            return self.finish(plan, None, e)
        return self.finish(plan, record, None)

    def plan(self, req: DecideRequest) -> _Plan | DecideResponse:
        """Everything of a decision up to the log write (CPU only, unless the request has a
        ``request_id``, which is looked up in the log): the record to log, or the answer already
        logged for this request_id."""
        limits = self.settings.limits
        check_features(req.user.features, limits, self.encoder)
        if req.styles is not None and len(req.styles) > limits.max_styles:
            raise Invalid(f"styles: at most {limits.max_styles} styles")
        # one snapshot for the whole decision: a review or a refresh swapping the index while it is
        # logged takes effect from the next decision, and never fails this one
        index = self.index
        product = index.products.get(req.item_id)
        if product is None:
            raise NotFound(f"unknown item_id '{req.item_id}': not in the creative store (run backdrop generate for it)")
        if req.placement not in index.placements:
            known = ", ".join(sorted(index.placements)) or "none"
            raise NotFound(f"unknown placement '{req.placement}'; known: {known}")

        if req.request_id is not None:
            try:
                previous = self.log.get_by_request(req.request_id)
            except LogUnavailable:
                previous = None
            if previous is not None:
                asked = DecisionRecord(
                    "", 0.0, req.item_id, req.placement, [], "", 1.0, "", 0, [], req.user.id, dict(req.user.features), req.request_id
                )
                if (previous.item_id, previous.placement, previous.user_id, previous.user_features) != (
                    asked.item_id,
                    asked.placement,
                    asked.user_id,
                    asked.user_features,
                ):
                    self.metrics.fallbacks.labels(reason="request-conflict").inc()
                    raise Conflict(str(request_conflict(previous, asked)))
                return self._response(previous)

        cands = candidates_for(index, req.item_id, req.placement, self.damaged)
        if cands.unavailable:  # found damaged since the index loaded: not offered
            self.metrics.arms_not_offered.labels(reason="damaged").inc(len(cands.unavailable))
        arms = sorted(cands.styles)
        if req.styles is not None:
            wanted = set(req.styles)
            arms = [s for s in arms if s in wanted]
        experiment, rollout = self.settings.experiment, self.settings.rollout
        group = experiment.assign(req.user.id) if experiment is not None else None
        arm = experiment.arms[group] if experiment is not None and group is not None else None
        serve = arm.serve if arm is not None else "policy"
        if rollout is not None and arms:
            arms = rollout.candidates(arms, req.styles)  # the catalog image only where the styles asked allow it
        t0 = time.perf_counter()
        x = self.encoder.encode(req.user.features, product["category"], req.placement)
        with self._policy_lock:
            policy, version = self.policy, self.model_version
            apprentice = serve == "policy" and bool(arms) and rollout is not None and self.rollout.phase == BASELINE
            apprentice = apprentice and rollout is not None and rollout.baseline_arm(arms) is not None  # else: no baseline asked for
            if ORIGINAL in arms and cands.original is None:  # never offer what cannot be served
                if apprentice and rollout is not None and rollout.baseline_arm(arms) == ORIGINAL:
                    raise self._no_baseline(req, "the rollout's baseline")
                arms = [a for a in arms if a != ORIGINAL]
                self.metrics.arms_not_offered.labels(reason="baseline-unreadable").inc()
            if (serve == "original" or not arms) and cands.original is None:
                raise self._no_baseline(req, "the control arm's creative" if serve == "original" else "the fallback")
            if apprentice and rollout is not None and (chosen := rollout.baseline_or_explore(arms, self._rng)) is not None:
                (style, propensity), policy_name = chosen, APPRENTICE
            elif serve == "policy" and arms:
                decision = policy.choose(x, arms)
                style, propensity, policy_name = str(decision.arm), float(decision.propensity), policy.name
            elif serve == "random" and arms:
                style, propensity, policy_name = arms[int(self._rng.integers(len(arms)))], 1.0 / len(arms), RANDOM_STYLE
        fallback = None
        if arm is not None and serve == "fixed" and arms:
            style, propensity, policy_name = _fixed_style(arm, req.item_id, arms), 1.0, FIXED_STYLE
        if serve == "original" or not arms:  # the control arm: the catalog image (its "original" rendition when stored)
            style, propensity = ORIGINAL, 1.0
            policy_name = CONTROL if serve == "original" else policy.name
            fallback = None if serve == "original" else "no-creative"
            offered = [ORIGINAL]
        else:
            offered = arms
        key = cands.creative(style).key
        self.metrics.policy_seconds.observe(time.perf_counter() - t0)
        record = DecisionRecord(
            decision_id=os.urandom(16).hex(),
            created_at=time.time(),
            item_id=req.item_id,
            placement=req.placement,
            arms=offered,
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
            learn=serve == "policy" and fallback is None,
            activate=req.activate,
        )
        return _Plan(req, record, cands, policy, version, group, index, time.perf_counter())

    def _no_baseline(self, req: DecideRequest, what: str) -> Unavailable:
        """A decision that needs the item's baseline when it cannot be served: refused, never logged."""
        self.metrics.fallbacks.labels(reason="baseline-unavailable").inc()
        return Unavailable(
            f"item {req.item_id}, placement {req.placement}: {what} is the baseline, and it cannot be served (its fitted original"
            " is missing, damaged or rejected in review, and the catalog photo cannot stand in); the decision was not logged;"
            " see /readyz"
        )

    def choose(self, x: np.ndarray, arms: list[str]):
        """The served policy's choice among ``arms`` for context ``x``: (decision, policy, model version)."""
        with self._policy_lock:
            return self.policy.choose(x, arms), self.policy, self.model_version

    def finish(self, plan: _Plan, logged: DecisionRecord | None, error: Exception | None) -> DecideResponse:
        """The answer once the log write is done (``logged``) or failed (``error``)."""
        if error is None:
            assert logged is not None
            self.metrics.log_seconds.observe(time.perf_counter() - plan.t_log)
        elif isinstance(error, RequestConflict):  # the same request_id sent concurrently for another request
            self.metrics.fallbacks.labels(reason="request-conflict").inc()
            raise Conflict(str(error)) from None
        elif isinstance(error, LogUnavailable):
            logger.warning("decision not logged, answered with the fallback: %s", error)
            return self._unlogged(plan)
        else:
            raise error
        record = logged
        style, fallback = record.arm, record.fallback
        self.metrics.decided(style, fallback or "none")
        if fallback:
            self.metrics.fallbacks.labels(reason=fallback).inc()
        return self._response(record, plan.index)

    def _unlogged(self, plan: _Plan) -> DecideResponse:
        """The database is down: an ad must still render, but nothing is claimed as logged."""
        req, cands = plan.req, plan.cands
        default = self.settings.default_style
        styles = sorted(cands.styles)
        style = default if default is not None and default in cands.styles else (styles[0] if styles else ORIGINAL)
        # (a decision with neither a style nor a baseline was refused before the log)
        self.metrics.decided(style, "log-unavailable")
        self.metrics.fallbacks.labels(reason="log-unavailable").inc()
        return DecideResponse(
            decision_id=None,
            item_id=req.item_id,
            placement=req.placement,
            style=style,
            creative=self.creative(cands.creative(style)),
            propensity=1.0,
            policy=plan.policy.name,
            model_version=plan.version,
            experiment_arm=plan.group,
            fallback="log-unavailable",
        )

    def _response(self, r: DecisionRecord, index: CreativeIndex | None = None) -> DecideResponse:
        """The answer of a logged decision, from ``index`` (the snapshot it was made with; default: the
        current one, for a decision read back from the log)."""
        index = index or self.index
        c = index.files.get(r.creative_key) if r.creative_key is not None else None
        if c is None:
            why = "was rejected in review" if index.reviews.get(r.creative_key or "") == "rejected" else "is no longer served"
            raise NotFound(f"creative {r.creative_key} of decision {r.decision_id} {why}")
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
            activated=r.activate,
            fallback=r.fallback,
        )

    # -- feedback, models, files -------------------------------------------------------------

    def publish(self, data: bytes):
        """Publish a model file as the next version, once it is validated (:func:`load_servable`)."""
        try:
            policy = load_servable(data, self.encoder.n_features, "uploaded model")
        except ModelFileError as e:
            raise Invalid(str(e)) from None
        try:
            current = self.log.latest_model()
            return self.log.publish_model(
                data,
                policy.name,
                learner_offset=current.learner_offset if current else 0,
                n_decisions=current.n_decisions if current else 0,
                n_rewards=current.n_rewards if current else 0,
                expected_version=current.version if current else 0,
                reward=current.reward if current else None,
                n_expired=current.n_expired if current else 0,
                rollout=current.rollout if current else None,  # an uploaded model does not end a rollout
            )
        except LogUnavailable:
            raise Unavailable("the event log is unavailable; retry later") from None
        except VersionConflict as e:
            raise Conflict(str(e)) from None

    def creative_file(self, key: str) -> _Creative:
        """The indexed file of a creative (or catalog image), checked against its indexed size (on
        object storage: as of the last refresh of the index; :meth:`creative_bytes` reads it)."""
        c = self.index.files.get(key)
        if c is None:
            if self.index.reviews.get(key) == "rejected":
                raise NotFound(f"creative '{key}' was rejected in review and is not served")
            raise NotFound(f"unknown creative '{key}'")
        why = file_problem(c)
        if why:  # damaged since the last refresh: never served as immutable, and no longer chosen
            self.damaged.mark(key, why)
            self._count_creatives(self.index)
            raise Unavailable(f"creative '{key}' is damaged in the store (its file does not match the index); run backdrop store verify")
        return c

    def creative_bytes(self, c: _Creative) -> bytes:
        """A creative's bytes from object storage, checked against the index."""
        try:
            data = self.files.read(c.rel)
        except (OSError, FileNotFoundError) as e:
            logger.error("creative %s: cannot read %s from the store: %s", c.key, c.rel, e)
            raise Unavailable(f"creative '{c.key}' cannot be read from the store right now") from None
        if c.size is not None and len(data) != c.size:
            self.damaged.mark(c.key, f"object {c.rel} has {len(data)} bytes, the index says {c.size}")
            self._count_creatives(self.index)
            raise Unavailable(f"creative '{c.key}' is damaged in the store (its file does not match the index); run backdrop store verify")
        return data


@dataclass
class _Plan:
    """A decision chosen and not yet logged (:meth:`Service.plan`), and what its answer needs."""

    req: DecideRequest
    record: DecisionRecord
    #: what the decision could offer, and the creatives its answer is made of
    cands: Candidates
    policy: Policy
    version: int
    group: str | None
    #: the index snapshot the decision was made with (its answer is built from it)
    index: CreativeIndex
    #: when the log write began (perf_counter)
    t_log: float


def _fixed_style(arm, item_id: str, arms: list[str]) -> str:
    wanted = arm.styles.get(item_id)
    if wanted in arms:
        return wanted
    return next((s for s in arm.order if s in arms), arms[0])


def check_features(features: dict, limits, encoder: FeatureEncoder, where: str = "user.features") -> None:
    """A deployment's limits on user features (the schema's maxima are the request model's), and
    what its encoder needs of them (a declared numeric field must be a number): :class:`Invalid`
    naming the field, before anything is chosen or logged."""
    if len(features) > limits.max_feature_keys:
        raise Invalid(f"{where}: at most {limits.max_feature_keys} keys, got {len(features)}")
    # the schema's maxima are checked by the request model (non-finite numbers too); a deployment may be stricter
    for key, value in features.items():
        if len(key) > limits.max_key_length:
            raise Invalid(f"{where}: keys must be 1-{limits.max_key_length} characters ({key[:80]!r})")
        if isinstance(value, str) and len(value) > limits.max_value_length:
            raise Invalid(f"{where}.{key}: at most {limits.max_value_length} characters")
    problem = encoder.problem(features)
    if problem is not None:
        raise Invalid(f"{where}.{problem[0]}: {problem[1]}")
