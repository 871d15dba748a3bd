"""Benchmarks: each prints its figures beside a baseline measured in the same run."""


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile (0.95 for p95) of the samples."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
