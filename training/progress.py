"""Progress of a long fit, as plain lines a person can follow.

`RiskModel.fit` reports `progress(outcome, step, done, total)` (a boosting round, an interval
member, ...). Training can take minutes (the first `checkup-risk serve` trains the default model
before it serves), and a terminal that stays silent that long looks hung. `FitProgress` turns those
events into lines through the caller's `say`: one when an outcome or a step starts, one when a step
ends, and in between at most one every `every` seconds. Lines rather than a redrawn bar, because
they read the same in a terminal, a log file and a test's captured output. `timed` puts the
seconds since the start in front of each line, so a slow step is seen to be moving.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class FitProgress:
    """A `progress` callback for `RiskModel.fit` that reports through `say`.

    Also accepts the older one-argument form `progress(outcome)`, so it works with either
    version of the model's callback.
    """

    def __init__(
        self,
        say: Callable[[str], None],
        outcomes: tuple[str, ...],
        suffix: str = "",
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.say = say
        self.outcomes = tuple(outcomes)
        self.suffix = suffix
        self.every = every
        self.clock = clock
        self._outcome: str | None = None
        self._step: str | None = None
        self._last = 0.0
        self._said: tuple[str, int | None] | None = None  # the (step, done) last said, never said twice

    def __call__(
        self, outcome: str, step: str | None = None, done: int | None = None, total: int | None = None
    ) -> None:
        now = self.clock()
        if outcome != self._outcome:
            self._outcome, self._step, self._said = outcome, None, None
            self.say(f"fitting {outcome} ({self._position(outcome)}){self.suffix}")
        if step is None:
            return
        finished = total is not None and done is not None and done >= total
        if step != self._step:
            self._step = step
            self._emit(outcome, step, done, total, now)
        elif finished or now - self._last >= self.every:
            self._emit(outcome, step, done, total, now)

    def _position(self, outcome: str) -> str:
        if outcome in self.outcomes:
            return f"{self.outcomes.index(outcome) + 1} of {len(self.outcomes)}"
        return "?"

    def _emit(self, outcome: str, step: str, done: int | None, total: int | None, now: float) -> None:
        if (step, done) == self._said:
            return  # a step that reports its end twice (the last round, then the rounds left unused)
        self._last, self._said = now, (step, done)
        if done is None:
            count = ""
        elif not total:
            count = f" {done:,}"
        else:
            # Boosting rounds count against a budget (early stopping ends a training before it), so
            # the share of the budget is what tells how far along the step is.
            count = f" {done:,}/{total:,} ({done / total:.0%})"
        self.say(f"  {outcome}: {step}{count}")


def timed(say: Callable[[str], None], clock: Callable[[], float] = time.perf_counter) -> Callable[[str], None]:
    """`say` with the seconds since now in front of every line: '[   42 s] fitting cvd (1 of 5)'."""
    start = clock()
    return lambda text: say(f"[{clock() - start:5.0f} s] {text}")
