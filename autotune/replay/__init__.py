"""Ground truth for the latency model: run a mapping on this machine's CPU cores (`replay`)."""

from autotune.replay.driver import ReplayMismatch, ReplayResult, replay

__all__ = ["ReplayMismatch", "ReplayResult", "replay"]
