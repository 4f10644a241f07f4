"""What the decision service logs: decisions, rewards, model versions."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DecisionRecord:
    """One answered decision, exactly as logged (the offline estimators and the learner read these).

    ``context`` is the encoded feature vector the policy saw (float64), so the learner and offline
    evaluation never re-encode; ``arms`` are the offered styles in the order the policy saw them;
    ``propensity`` is the probability the served policy had of choosing ``arm``.
    ``seq`` is assigned by the database (monotonic): the learner's offset.
    """

    decision_id: str
    created_at: float
    item_id: str
    placement: str
    arms: list[str]
    arm: str
    propensity: float
    policy: str
    model_version: int
    context: list[float]
    user_id: str | None = None
    user_features: dict = field(default_factory=dict)
    request_id: str | None = None
    creative_key: str | None = None
    fallback: str | None = None
    #: the experiment arm the user was assigned to (None outside experiments)
    experiment_arm: str | None = None
    seq: int | None = None
    #: whether the learner learns from this decision: the bandit chose it (not a fallback, not an
    #: experiment arm that bypasses the bandit). None: a row logged before the field existed.
    learn: bool | None = None
    #: whether the impression happened when the decision was made; False: the ad server decided before
    #: it knew the slot would render, and activates it (``POST /v1/activate``) when it does
    activate: bool = True
    #: when it was activated (read back from the log; None: never, so far)
    activated_at: float | None = None

    @property
    def logged_seq(self) -> int:
        """``seq`` of a decision read back from the log; an error for one not logged yet."""
        if self.seq is None:
            raise ValueError(f"decision {self.decision_id} has no seq: it was not read from the event log")
        return self.seq


@dataclass
class RewardRecord:
    decision_id: str
    reward: float
    at: float  # when the event (click) happened, by the caller's clock if given
    received_at: float  # when the service received it


@dataclass
class ModelRecord:
    version: int
    created_at: float
    policy: str
    blob: bytes  # Policy.to_bytes()
    learner_offset: int  # the highest decision seq folded into this model
    n_decisions: int  # decisions folded in, in all
    n_rewards: int  # of which with a joined reward (the rest got the default reward)
    #: the reward function the learner used (``RewardFunction.describe()``; None: before schema 5)
    reward: str | None = None
    #: decisions made inactive and never activated within the window, in all (not learned from)
    n_expired: int = 0
    #: the safe-rollout state after this version (JSON; None outside a rollout)
    rollout: str | None = None
