"""Embedded offline speech engines (pure; the AstrBot adapters live in live/host/offline_providers.py)."""
