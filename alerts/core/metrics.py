"""Send-latency histograms in the Prometheus text format (no global registry: the
dispatcher owns its figures and /metrics renders them)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Histogram:
    """Cumulative-bucket histogram of seconds."""

    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: int = 0
    sum: float = 0.0

    def observe(self, seconds: float) -> None:
        """Add one observation."""
        i = bisect.bisect_left(BUCKETS, seconds)
        if i < len(BUCKETS):
            self.counts[i] += 1
        self.total += 1
        self.sum += seconds

    def lines(self, name: str, labels: str) -> list[str]:
        """The sample lines for this histogram (``labels`` like ``channel="email"``)."""
        out, running = [], 0
        for bound, n in zip(BUCKETS, self.counts, strict=True):
            running += n
            out.append(f'{name}_bucket{{{labels},le="{bound}"}} {running}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.total}')
        out.append(f"{name}_sum{{{labels}}} {self.sum:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.total}")
        return out
