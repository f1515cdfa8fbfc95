import pytest

from iss_plugin.domain.errors import ConfigError
from iss_plugin.settings import load_settings


def test_toml_then_environment(tmp_path, monkeypatch):
    cfg = tmp_path / "settings.toml"
    cfg.write_text('data_dir = "data"\nbackend = "local"\n[bus]\nurl = "amqp://guest:guest@127.0.0.1//"\n')
    monkeypatch.setenv("ISS_BUS__MAX_ATTEMPTS", "7")
    s = load_settings(cfg)
    assert s.data_dir == tmp_path / "data"
    assert s.db_url == f"sqlite:///{tmp_path / 'data' / 'iss.db'}"
    assert s.bus.url.startswith("amqp://") and s.bus.max_attempts == 7
    monkeypatch.setenv("ISS_BACKEND", "pulp")
    assert load_settings(cfg).backend == "pulp"


def test_bad_settings_say_where_and_what(tmp_path):
    cfg = tmp_path / "settings.toml"
    cfg.write_text('backend = "nfs"\nnot_a_key = 1\n')
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert str(cfg) in e.value.message
    assert any(p.startswith("backend:") for p in e.value.problems)
    assert any(p.startswith("not_a_key:") for p in e.value.problems)


def test_missing_or_broken_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("data_dir = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_the_example_config_in_deploy_is_valid():
    from pathlib import Path

    s = load_settings(Path(__file__).parents[2] / "deploy" / "settings.example.toml")
    assert s.backend == "local" and s.bus.url == "memory://" and s.bus.max_attempts == 5


@pytest.mark.parametrize("bad", ["dc2.example.com", "dc 2", "a*b", "#", ""])
def test_a_bad_server_id_is_a_config_error(tmp_path, bad):
    cfg = tmp_path / "settings.toml"
    cfg.write_text(f'server_id = "{bad}"\n')
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert str(cfg) in e.value.message
    assert any(p.startswith("server_id:") and "letters, digits, '-' and '_'" in p for p in e.value.problems)
    assert load_settings(cfg, server_id="dc2").server_id == "dc2"


def test_a_bad_server_id_file_is_a_config_error(tmp_path):
    s = load_settings(None, data_dir=str(tmp_path))
    (tmp_path / "server_id").write_text("host.example.com\n")
    with pytest.raises(ConfigError, match="server id in .* is not valid"):
        s.resolved_server_id()
