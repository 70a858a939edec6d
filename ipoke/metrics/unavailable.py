"""The result recorded in place of a number when a metric cannot be computed honestly."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class MetricUnavailable:
    """A metric that was not computed: why, and what to do so that it can be.

    Returned instead of a value when pretrained weights are missing; never replaced by a number from an
    untrained network.
    """

    metric: str
    reason: str
    how_to_fix: str

    def as_record(self) -> dict[str, str]:
        """A JSON-ready record for metrics files and reports."""
        return {"status": "not computed", **asdict(self)}

    def __str__(self) -> str:
        return f"{self.metric}: not computed ({self.reason}). {self.how_to_fix}"
