"""Progress of every long loop, and the wall-clock budget of ``max_time``.

One helper for all of them (sft and train steps, eval and rank batches, SASRec/GRU4Rec
epochs, item pretraining, compare's runs): a tqdm bar when stderr is a terminal, and
otherwise one plain line to stderr every ``every`` updates (and at the last), so a log file
shows where a run is without a bar's carriage returns. It sits in the bottom layer because
every layer that loops (evaluation, baselines, trainer, experiments, commands) uses it.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from tqdm.auto import tqdm


def clock_text(seconds: float) -> str:
    """``3725.2`` -> ``'1:02:05'``; under an hour ``'2:05'``."""
    s = max(0, int(round(seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _value_text(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress:
    """``with Progress(total, "sft", every=10) as p: ... p.update(loss=0.3)``.

    ``stream``: where the plain lines go (default stderr); ``tty``: force the bar (True) or
    the plain lines (False), None: the bar exactly when ``stream`` is a terminal.
    ``enabled=False``: silent (e.g. the non-main processes of a distributed run)."""

    def __init__(
        self, total: int | None, desc: str, every: int = 1, initial: int = 0, unit: str = "step",
        stream: IO[str] | None = None, tty: bool | None = None, enabled: bool = True,
    ) -> None:  # fmt: skip
        self.total, self.desc, self.every, self.unit = total, desc, max(1, int(every)), unit
        self.n = self.start_n = initial
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        is_tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, file=self.stream, unit=unit) if enabled and is_tty else None
        self.t0 = time.monotonic()
        self.postfix: dict[str, Any] = {}

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Advance by ``n``; ``postfix``: values shown with the count (loss, rewards...)."""
        self.n += n
        self.postfix.update({k: v for k, v in postfix.items() if v is not None})
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix({k: _value_text(v) for k, v in self.postfix.items()}, refresh=False)
            return
        if self.n % self.every == 0 or (self.total is not None and self.n >= self.total):
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        """``[sft] step 20/200 (10%) loss=0.31 | 0:12 elapsed, ETA 1:48``."""
        elapsed = time.monotonic() - self.t0
        count = f"{self.unit} {self.n}" + (f"/{self.total} ({100 * self.n / max(1, self.total):.0f}%)" if self.total else "")
        values = " ".join(f"{k}={_value_text(v)}" for k, v in self.postfix.items())
        done = self.n - self.start_n
        eta = ""
        if self.total and done > 0 and self.n < self.total:
            eta = f", ETA {clock_text(elapsed / done * (self.total - self.n))}"
        return f"[{self.desc}] {count}" + (f" {values}" if values else "") + f" | {clock_text(elapsed)} elapsed{eta}"

    def write(self, message: str) -> None:
        """A message that does not break the bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            self.stream.write(message + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------ max_time

_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d{1,2}(?:\.\d*)?)$")


def parse_duration(value: str | float | int | None, key: str = "max_time") -> float | None:
    """Seconds of a budget: a number of seconds (``5400``, ``"90.5"``), ``"HH:MM:SS"`` or
    ``"MM:SS"``; None: no limit. A ValueError names ``key``."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        m = _CLOCK.match(text)
        try:
            if m:
                seconds = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
            else:
                seconds = float(text)
        except ValueError:
            seconds = float("nan")
        if m is None and not re.fullmatch(r"[0-9.eE+]+", text):
            seconds = float("nan")
    if not seconds > 0:
        raise ValueError(f"key '{key}': expected seconds > 0 or 'HH:MM:SS' (null: no limit), got {value!r}")
    return seconds


class TimeBudget:
    """Whether the next unit of work (a step) still fits in ``seconds`` from the start.

    The next step is assumed to take as long as the longest one seen so far: stopping one
    step early costs a step, overrunning costs the run (a scheduler's kill)."""

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self.start = clock()
        self.longest = 0.0

    def elapsed(self) -> float:
        return self.clock() - self.start

    def record(self, step_seconds: float) -> None:
        self.longest = max(self.longest, step_seconds)

    def next_would_exceed(self) -> bool:
        return self.seconds is not None and self.elapsed() + self.longest > self.seconds
