"""Shared pytest fixtures. Fixture modules live next to what they serve and are listed here."""

pytest_plugins = [
    "tests.fixtures_core",
]
