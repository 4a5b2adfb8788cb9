"""Tests that drive headless Chromium (fixtures in conftest.py)."""
