"""Decision-service settings: YAML (``--config``), environment (``BACKDROP_*``) and CLI flags.

Precedence: a CLI flag, else the environment, else the YAML file, else the default. Every field
has an environment variable: ``BACKDROP_`` and the field name in capitals, nested fields joined
by ``__``: ``BACKDROP_DB``, ``BACKDROP_API_KEY``, ``BACKDROP_LOG_TIMEOUT_MS``,
``BACKDROP_POLICY__ALPHA``, ``BACKDROP_LIMITS__BODY_TIMEOUT_S`` (read by ``pydantic-settings``).
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, SettingsConfigDict

from ..bandit.features import FeatureConfig
from ..bandit.policies import SERVABLE, make_policy
from ..bandit.policies.sharing import hybrid_sharing
from ..creative.storage import is_remote
from ..errors import ConfigError
from .rewards import RewardFunction
from .rollout import RolloutSettings

#: the exploration width the service gives the linear policies when the settings name none
LINEAR_ALPHA = {"linucb": 0.1, "hybrid-linucb": 0.1, "lints": 0.1}


class PolicySettings(BaseModel):
    """The served policy and its exploration (the propensities in the log come from it)."""

    model_config = ConfigDict(extra="forbid")

    #: a servable policy's name (``backdrop.bandit.SERVABLE``); pooled-ucb: Thompson sampling on
    #: styles that share a base model and learn their priors from each other (``bandit.PooledUCB``)
    name: str = "pooled-ucb"
    #: exploration width; None: the served policy's own (pooled-ucb: 0.7 posterior sds; the linear
    #: policies: 0.1, which suits their unit-noise ridge at click rates of a few per cent)
    alpha: float | None = Field(default=None, ge=0)
    #: uniform exploration mixed into the choice (> 0 keeps every logged propensity >= epsilon / K)
    epsilon: float = Field(default=0.05, ge=0, le=1)
    l2: float = Field(default=1.0, gt=0)
    seed: int | None = None
    #: hybrid-linucb: the style library whose styles' attributes (scene, surface, palette, podium,
    #: light, season; the overlay) the arms share what they learn through; default: the built-in one.
    #: A library from `backdrop evolve` describes its variants exactly; without it a variant has its parent's
    style_library: Path | None = None

    @field_validator("name")
    @classmethod
    def _servable(cls, v: str) -> str:
        if v not in SERVABLE:
            raise ValueError(f"not a servable policy: {v!r}; choose from {', '.join(SERVABLE)}")
        return v

    def make(self, n_features: int, blocks: list[int] | None = None):
        """The policy these settings describe (through the one registry, ``bandit.make_policy``);
        ``blocks``: the feature encoder's parts (``FeatureEncoder.blocks``), for a policy with a
        prior per part."""
        params: dict = {"epsilon": self.epsilon, "l2": self.l2, "seed": self.seed, "blocks": blocks}
        if self.name == "hybrid-linucb":
            params |= hybrid_sharing(self.style_library, n_features, blocks)
        alpha = self.alpha if self.alpha is not None else LINEAR_ALPHA.get(self.name)
        if alpha is not None:
            params["alpha"] = max(alpha, 1e-6) if self.name in ("lints", "pooled-ucb") else alpha  # a posterior scale > 0
        return make_policy(self.name, lenient=True, n_features=n_features, **params)


class ExperimentArm(BaseModel):
    """How one arm of an A/B/n experiment serves its users."""

    model_config = ConfigDict(extra="forbid")

    #: share of users (normalised over the arms)
    share: float = Field(gt=0)
    #: original: the catalog image (the control); fixed: one style per item; random: a uniformly random
    #: stored style (propensity 1/K, the randomised log off-policy evaluation needs); policy: the bandit
    serve: Literal["original", "fixed", "random", "policy"]
    #: serve=fixed: the style of each item (item_id -> style) ...
    styles: dict[str, str] = Field(default_factory=dict)
    #: ... else the first of these stored for the item, else the first stored style by name
    order: list[str] = Field(default_factory=list)


class ExperimentSettings(BaseModel):
    """Users are assigned to arms by a hash of (name, user id): sticky, and independent across experiments."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    arms: dict[str, ExperimentArm] = Field(min_length=1)

    def assign(self, user_id: str | None) -> str:
        import hashlib
        import secrets

        key = f"{self.name}:{user_id}" if user_id is not None else secrets.token_hex(8)  # no id: per request
        u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
        total = sum(a.share for a in self.arms.values())
        acc = 0.0
        for name, arm in self.arms.items():
            acc += arm.share / total
            if u < acc:
                return name
        return name

    def planned_shares(self) -> dict[str, float]:
        total = sum(a.share for a in self.arms.values())
        return {name: a.share / total for name, a in self.arms.items()}


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(default=16_384, ge=256)
    #: POST /v1/models carries a model file (counted while it streams in, after the API key is checked)
    max_model_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    #: model uploads read at once (more get 429)
    max_concurrent_uploads: int = Field(default=2, ge=1)
    #: a request's headers must arrive within this (slow clients do not hold connections)
    header_timeout_s: float = Field(default=10.0, gt=0)
    #: ... and each chunk of its body within this
    body_timeout_s: float = Field(default=10.0, gt=0)
    # at most the API schema's maxima (64 keys, 64-character keys, 256-character values)
    max_feature_keys: int = Field(default=64, ge=1, le=64)
    max_key_length: int = Field(default=64, ge=1, le=64)
    max_value_length: int = Field(default=256, ge=1, le=256)
    max_styles: int = Field(default=64, ge=1)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", env_prefix="BACKDROP_", env_nested_delimiter="__")

    #: the creative store (created by `backdrop generate` / `backdrop demo`): a folder, or object
    #: storage (``s3://bucket/prefix``) with ``store_index``
    store: Path | str
    #: the store's index when it is not STORE/index.sqlite: postgresql://... or an SQLite path
    store_index: str | None = None
    #: event log: sqlite path/URL or postgresql://...; default: events.sqlite next to the store's index
    db: str | None = None
    policy: PolicySettings = Field(default_factory=PolicySettings)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    #: a reward may join its decision up to this long after it; the learner waits this long
    join_window_s: float = Field(default=600.0, gt=0)
    #: the learner also waits this long past the join window, for slow commits on PostgreSQL (a decision
    #: insert is aborted after ``eventlog.STATEMENT_TIMEOUT_MS``, so this must exceed it)
    commit_grace_s: float = Field(default=5.0, ge=2.5)
    #: the reward of a decision with no feedback within the join window
    default_reward: float = 0.0
    #: how a decision's outcome events (click, add_to_cart, purchase with a value...) add up to its
    #: reward; recorded with every model version the learner publishes
    reward: RewardFunction = Field(default_factory=RewardFunction)
    #: a decision made with ``activate: false`` must be activated within this (at most the join
    #: window; default: the join window), else it expires unshown and is not learned from
    activation_window_s: float | None = Field(default=None, gt=0)
    #: safe rollout: serve a baseline until the policy's lower bound beats it (see serving.rollout)
    rollout: RolloutSettings | None = None
    #: needed by the write and admin endpoints (feedback, model publish); compared in constant time
    api_key: SecretStr | None = None
    #: the creative shown when a decision cannot be logged (the database is down): this style if the
    #: item has it, else the first stored style, else the catalog image
    default_style: str | None = None
    #: how often replicas look for a newer model version
    model_poll_s: float = Field(default=1.0, gt=0)
    #: how often the in-memory creative index is refreshed from the store
    store_refresh_s: float = Field(default=30.0, gt=0)
    #: how often the files the index serves are checked against their indexed sizes (a damaged one
    #: leaves the candidates at once and counts toward readiness)
    file_check_s: float = Field(default=5.0, gt=0)
    #: serve creatives the QA checks flagged (by default they are withheld: see `backdrop report`)
    serve_flagged: bool = False
    #: serve only creatives a reviewer approved in the console (a rejected one is never served either way)
    review_required: bool = False
    #: how often replicas look for review changes (a rejection stops being served within this)
    review_poll_s: float = Field(default=1.0, gt=0)
    #: a decision not committed to the event log within this is answered as not logged
    #: (``fallback: log-unavailable``, ``decision_id: null``) and never written later
    log_timeout_ms: float = Field(default=50.0, gt=0, le=60_000)
    #: readiness writes a heartbeat row when no write succeeded for this long (proves the log is writable)
    write_probe_s: float = Field(default=5.0, gt=0)
    #: readiness fails when the learner is further behind than this (None: no learner is expected;
    #: `serve --learn` sets it to 10 learner intervals + 60 s unless given)
    learner_max_lag_s: float | None = Field(default=None, gt=0)
    #: readiness fails when more creative files than this do not match the store's index
    max_broken_creatives: int = Field(default=0, ge=0)
    #: the base of creative URLs in responses ("" = relative to this service)
    public_url: str = ""
    #: a CDN (or the bucket's public URL) in front of the store's files: creative URLs become
    #: PUBLIC_BASE_URL/PATH (the file's path in the store); "" = this service serves the bytes
    public_base_url: str = ""
    limits: Limits = Field(default_factory=Limits)
    #: an A/B/n experiment: each user is assigned an arm that decides how their impressions are served
    experiment: ExperimentSettings | None = None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        # flags (init) beat the environment, which beats the YAML file (set by load_settings for this call)
        return (init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=_YAML.get() or {}))

    @field_validator("store", mode="before")
    @classmethod
    def _store_location(cls, value):
        return str(value) if is_remote(str(value)) else Path(value)

    @model_validator(mode="after")
    def _remote_store_needs(self):
        if self.store_dir is None and self.store_index is None:
            raise ValueError(f"a store on object storage ({self.store}) needs store_index (--store-index postgresql://...)")
        if self.store_dir is None and self.db is None:
            raise ValueError(f"a store on object storage ({self.store}) has no folder for the event log: give db (--db)")
        return self

    @model_validator(mode="after")
    def _windows_and_modes(self):
        if self.activation_window_s is not None and self.activation_window_s > self.join_window_s:
            raise ValueError(
                f"activation_window_s ({self.activation_window_s:g}) must be at most join_window_s ({self.join_window_s:g}): "
                "the learner folds a decision once its join window has passed"
            )
        if self.rollout is not None and self.experiment is not None:
            raise ValueError("a rollout and an experiment at once: configure one of them")
        return self

    @property
    def activation_window(self) -> float:
        return self.activation_window_s if self.activation_window_s is not None else self.join_window_s

    @property
    def store_dir(self) -> Path | None:
        """The store's local folder; None for a store on object storage."""
        return self.store if isinstance(self.store, Path) else None

    @property
    def db_url(self) -> str:
        if self.db:
            return self.db
        assert self.store_dir is not None  # checked by _remote_store_needs
        return f"sqlite:///{(self.store_dir / 'events.sqlite').resolve()}"


_YAML: contextvars.ContextVar[dict | None] = contextvars.ContextVar("backdrop_settings_yaml", default=None)


def load_settings(path: str | Path | None = None, **overrides) -> ServiceSettings:
    """Settings from a YAML file (optional), then ``BACKDROP_*`` environment variables, then the
    non-None ``overrides`` (CLI flags; ``"policy.alpha"`` for a nested one) on top."""
    data: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from e
    flags: dict = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if "." in key:
            outer, inner = key.split(".", 1)
            flags.setdefault(outer, {})[inner] = value
        else:
            flags[key] = value
    token = _YAML.set(data)
    try:
        return ServiceSettings(**flags)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{path or 'settings'}: {loc}: {first['msg']}") from e
    finally:
        _YAML.reset(token)
