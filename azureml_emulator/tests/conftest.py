"""The emulator's own suite: its fixtures come from the plugin, so these tests run alone
(``python -m pytest azureml_emulator/tests``) or with the project's suite."""

pytest_plugins = ["azureml_emulator.pytest_plugin"]
