"""Scoring runs: generator evaluation (FID, KID, precision/recall, memorisation), classifier
evaluation, the metrics themselves and the HTML report."""
