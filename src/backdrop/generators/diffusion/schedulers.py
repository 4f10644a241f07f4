"""Samplers the generator offers, with the step count and guidance each is meant to run at.

Few-step samplers (LCM, TCD) are for models distilled for them (an LCM-LoRA, a TCD-LoRA, an LCM
fine-tune): 4 steps at guidance 1, which also drops the unconditional half of classifier-free
guidance, so an image costs about 1/10 of a 20-step one. On a model that is not distilled they
run, but paint mush.

>>> defaults("lcm")
(4, 1.0)
>>> defaults("dpm++")
(20, 7.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sampler:
    cls: str | None  #: diffusers scheduler class; None keeps the model's own
    steps: int
    guidance: float
    options: dict = field(default_factory=dict)  #: from_config overrides
    call: dict = field(default_factory=dict)  #: pipeline call arguments (TCD's gamma)


SAMPLERS = {
    "default": Sampler(None, 20, 7.5),
    "ddim": Sampler("DDIMScheduler", 20, 7.5),
    "dpm": Sampler("DPMSolverMultistepScheduler", 20, 7.5),
    # DPM++ 2M Karras, the front ends' favourite
    "dpm++": Sampler(
        "DPMSolverMultistepScheduler", 20, 7.0, {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}
    ),
    "euler": Sampler("EulerDiscreteScheduler", 25, 7.5),
    "euler-a": Sampler("EulerAncestralDiscreteScheduler", 25, 7.5),
    "unipc": Sampler("UniPCMultistepScheduler", 20, 7.5),
    "lcm": Sampler("LCMScheduler", 4, 1.0),
    "tcd": Sampler("TCDScheduler", 4, 1.0, call={"eta": 0.3}),
}
SCHEDULERS = tuple(SAMPLERS)


def defaults(name: str) -> tuple[int, float]:
    """(steps, guidance scale) a sampler runs at unless told otherwise."""
    sampler = _get(name)
    return sampler.steps, sampler.guidance


def make_scheduler(name: str, config):
    """A scheduler of kind ``name`` built from the model's scheduler config (its betas, prediction
    type -- epsilon or v -- and timestep offsets carry over)."""
    import diffusers

    sampler = _get(name)
    if sampler.cls is None:
        raise ValueError("'default' keeps the model's scheduler")
    return getattr(diffusers, sampler.cls).from_config(config, **sampler.options)


def call_options(name: str) -> dict:
    return dict(_get(name).call)


def _get(name: str) -> Sampler:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}") from None
