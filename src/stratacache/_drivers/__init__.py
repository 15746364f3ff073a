"""Thin adapters over driver libraries where their sync and async clients differ (one pair each)."""
