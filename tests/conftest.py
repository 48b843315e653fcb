"""Shared pytest fixtures. Fixture modules live next to what they serve and are listed here."""

pytest_plugins = [
    "tests.azure_emulator.fixtures",
    "tests.fixtures_data",
    "tests.fixtures_core",
    "tests.fixtures_endpoint",
    "tests.fixtures_local",
    "tests.fixtures_ui",
    "tests.fixtures_browser",
]
