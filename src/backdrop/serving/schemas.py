"""The API's request and response models: the contract (the OpenAPI schema is built from them)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from .rewards import EVENT_TYPE_PATTERN

#: the schema's hard maxima; a deployment's ``limits`` may only be stricter
MAX_FEATURE_KEYS, MAX_KEY_LENGTH, MAX_VALUE_LENGTH = 64, 64, 256
FeatureKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH)]
#: a feedback value's bound, however it arrives (/v1/feedback, a feedback event, Personalizer's reward)
MAX_FEEDBACK = 10**6
#: a feedback value: a JSON number (not a string, not a boolean) within +-MAX_FEEDBACK
FeedbackValue = (
    Annotated[StrictFloat, Field(allow_inf_nan=False, ge=-MAX_FEEDBACK, le=MAX_FEEDBACK)]
    | Annotated[StrictInt, Field(ge=-MAX_FEEDBACK, le=MAX_FEEDBACK)]
)
#: the request_ids of Personalizer ranks (``personalizer:<eventId>``): one namespace per client
PERSONALIZER_NAMESPACE = "personalizer:"
#: integers a JSON parser anywhere reads exactly (IEEE doubles' integer range)
MAX_SAFE_INT = 2**53 - 1
FeatureValue = (
    Annotated[StrictStr, StringConstraints(max_length=MAX_VALUE_LENGTH)]
    | StrictBool
    | Annotated[StrictInt, Field(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]
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
        default=None,
        min_length=1,
        max_length=128,
        description="Idempotency key: a retry with the same id gets the same decision (the prefix 'personalizer:' is Personalizer's)",
        # the contract says what _own_namespace refuses (a pattern with a lookahead is not portable)
        json_schema_extra={"not": {"type": "string", "pattern": f"^{PERSONALIZER_NAMESPACE}"}},
    )
    user: User = Field(default_factory=User)
    item_id: str = Field(
        min_length=1,
        max_length=256,
        validation_alias=AliasChoices("item_id", "product_id"),
        description="The product (the catalog's product_id; `product_id` is accepted as a name for this field too)",
    )
    placement: str = Field(min_length=1, max_length=64)
    styles: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, description="Only consider these styles (default: every style stored for the item and placement)"
    )
    activate: StrictBool = Field(
        default=True,
        description="false: the impression may not happen (prefetch, below the fold); the decision is logged inactive "
        "and counts only once POST /v1/activate says it was shown (within the activation window)",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_product_name(cls, data):
        if isinstance(data, dict) and "item_id" in data and "product_id" in data:
            raise ValueError("give the product as item_id or as product_id, not both")
        return data

    @field_validator("request_id")
    @classmethod
    def _own_namespace(cls, value: str | None) -> str | None:
        if value is not None and value.startswith(PERSONALIZER_NAMESPACE):
            raise ValueError(f"the prefix '{PERSONALIZER_NAMESPACE}' is reserved for Personalizer event ids; use another request_id")
        return value


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
    activated: bool = Field(default=True, description="false: made with activate=false; POST /v1/activate when it is shown")
    fallback: Literal["no-creative", "log-unavailable"] | None = Field(
        description="no-creative: no generated creative for this item and placement, the catalog image is shown; "
        "log-unavailable: the event log could not be written, a default creative is shown and nothing was logged"
    )


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(min_length=1, max_length=64)
    reward: FeedbackValue = Field(description="1 for a click, 0 for none, or a value (a JSON number: not a string, not a boolean)")
    at: Annotated[float, Field(allow_inf_nan=False, ge=0)] | None = Field(
        default=None, description="When the event happened (unix seconds); default: now"
    )


class FeedbackResponse(BaseModel):
    decision_id: str
    status: Literal["joined", "duplicate"] = Field(description="duplicate: a reward was already joined; this one is not counted")
    activated: bool = Field(default=True, description="false: the decision is not activated (yet); unless it is, this never counts")


class ActivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(min_length=1, max_length=64)


class ActivateResponse(BaseModel):
    decision_id: str
    status: Literal["activated", "already-activated"]


EventType = Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN)]


class EventRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(min_length=1, max_length=64)
    type: EventType = Field(description="click, add_to_cart, purchase, or a name of your own (lowercase letters, digits, _)")
    value: (
        Annotated[StrictFloat, Field(allow_inf_nan=False, ge=-1e9, le=1e9)] | Annotated[StrictInt, Field(ge=-(10**9), le=10**9)] | None
    ) = Field(default=None, description="The event's amount (a purchase's value), a JSON number")
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$", description="ISO 4217 code of value")
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Idempotency key within the decision and type (an order id); default: the type, so a retried click counts once",
    )
    at: Annotated[float, Field(allow_inf_nan=False, ge=0)] | None = Field(
        default=None, description="When it happened (unix seconds); default: now"
    )


class EventResponse(BaseModel):
    decision_id: str
    type: str
    status: Literal["joined", "duplicate"] = Field(description="duplicate: this event (decision, type, id) was joined already")
    activated: bool = Field(description="false: the decision is not activated (yet); unless it is, this never counts")


class RolloutResponse(BaseModel):
    phase: Literal["baseline", "policy"]
    baseline: str
    exploration: float
    switch: Literal["auto", "never"]
    model_version: int
    estimate: dict = Field(description="IPS values with intervals: policy_value/low/high, baseline_*, difference_*, n")
    switched: dict | None = Field(description="the model version, time and evidence of the switch (null: not switched)")


class ModelResponse(BaseModel):
    version: int
    policy: str
    learner_offset: int
    reward: str | None = Field(default=None, description="The reward function the model was trained with (JSON)")


class Problem(BaseModel):
    detail: str


def validation_detail(raw_errors) -> list[dict]:
    """FastAPI's 422 detail without the input echoed back (it may be NaN, unserialisable, or a secret),
    and one error per user feature rather than one per branch of its type union."""
    errors: list[dict] = []
    seen: set[tuple] = set()
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
