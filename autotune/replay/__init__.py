"""Ground truth for the latency model: run a mapping on this machine's CPU cores (`replay`)."""

from autotune.replay.driver import ReplayData, ReplayMismatch, ReplayResult, prepare, replay

__all__ = ["ReplayData", "ReplayMismatch", "ReplayResult", "prepare", "replay"]
