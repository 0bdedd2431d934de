"""Helpers shared by the tests: simulated peers, network labs, served boot files."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout the tests run from
