"""Offline evaluation: gold datasets, pure metrics, baselines, a runner and reports (no LLM judge)."""
