"""%config AzmlMagics: settings are validated when set; a bad value is refused in one line and the old one stays."""

from __future__ import annotations

import pytest
from traitlets import TraitError


@pytest.mark.parametrize("trait, value, message", [
    ("poll_interval", -1.0, "AzmlMagics.poll_interval must be a number of seconds above 0 (got -1)."),
    ("poll_interval", 0.0, "AzmlMagics.poll_interval must be a number of seconds above 0 (got 0)."),
    ("backend", "lcoal", "AzmlMagics.backend: no backend named 'lcoal'; did you mean 'local'? installed: "),
    ("backend", "gcp", "AzmlMagics.backend: no backend named 'gcp'; installed: "),
    ("registry", "  ", "AzmlMagics.registry cannot be empty."),
    ("home", "", "AzmlMagics.home cannot be empty."),
])
def test_a_bad_setting_is_refused_in_one_line_and_the_old_value_stays(ip, trait, value, message):
    magics = ip.azml
    before = getattr(magics, trait)
    with pytest.raises(TraitError) as err:
        setattr(magics, trait, value)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert getattr(magics, trait) == before


def test_config_magic_refuses_a_negative_poll_interval_and_keeps_the_session_setting(ip, caplog):
    magics = ip.azml
    ip.run_line_magic("config", "AzmlMagics.poll_interval = 2.5")
    assert magics.poll_interval == 2.5 and magics.session.poll_interval == 2.5
    ip.run_line_magic("config", "AzmlMagics.poll_interval = -3")
    assert magics.poll_interval == 2.5 and magics.session.poll_interval == 2.5
    assert "AzmlMagics.poll_interval must be a number of seconds above 0 (got -3)." in caplog.text


def test_a_good_backend_name_is_taken(ip):
    ip.run_line_magic("config", "AzmlMagics.backend = 'azure'")
    assert ip.azml.backend == "azure"
