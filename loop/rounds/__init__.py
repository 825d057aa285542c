"""Rounds of the loop (:mod:`~loop.rounds.round`), arms with their own labeled sets
(:mod:`~loop.rounds.arms`) and label efficiency, strategies against random
(:mod:`~loop.rounds.efficiency`)."""

from loop.rounds.arms import arm_images, candidates
from loop.rounds.round import (
    STEPS,
    RoundOptions,
    RoundResult,
    arm_strategy,
    current_round,
    run,
    run_round,
)

__all__ = [
    "STEPS",
    "RoundOptions",
    "RoundResult",
    "arm_images",
    "arm_strategy",
    "candidates",
    "current_round",
    "run",
    "run_round",
]
