"""Sidecar settings: file < environment < flags, every problem located where the bad value was written."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli.command import build_parser
from proxy.settings.cli import settings_markdown
from proxy.settings.fields import FIELDS
from proxy.settings.load import SettingsError, resolve
from proxy.settings.model import SidecarFile

REPO = Path(__file__).resolve().parents[2]

FILE = """\
listen: 0.0.0.0:9000
experiments: [exp/a.yaml, /abs/b.yaml]
limits:
  headerTimeout: 4s
  maxConnections: 100
rateLimit: {rate: 50, burst: 5, key: claim:sub}
drain: {delay: 0}
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "outrider.yaml"
    path.write_text(text)
    return str(path)


def flags(*argv: str) -> dict[str, object]:
    return vars(build_parser().parse_args(["run", *argv]))


def test_defaults_are_the_safe_defaults() -> None:
    conf = resolve(None, flags(), {}).settings
    assert conf == SidecarFile()
    assert conf.admin.startswith("127.0.0.1:")
    limits = conf.limits
    assert (limits.header_timeout, limits.body_min_rate, limits.max_connections, limits.keepalive) == (
        10.0,
        1024,
        4096,
        75.0,
    )
    assert (conf.drain.delay, conf.drain.timeout, conf.retries.budget, conf.retries.min) == (
        5.0,
        15.0,
        0.2,
        3,
    )


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(tmp_path, FILE)
    env = {"OUTRIDER_HEADER_TIMEOUT": "7", "OUTRIDER_LISTEN": "127.0.0.1:1", "OUTRIDER_RATE_BURST": "9"}
    resolved = resolve(
        path, flags("--listen", "127.0.0.1:2", "--trusted-proxies", "10.0.0.0/8, ::1/128"), env
    )
    conf = resolved.settings
    assert conf.listen == "127.0.0.1:2"  # flag beats environment beats file
    assert conf.limits.header_timeout == 7.0  # environment beats file
    assert conf.limits.max_connections == 100  # file beats default
    assert (conf.rate_limit.rate, conf.rate_limit.burst, conf.rate_limit.key) == (50.0, 9, "claim:sub")
    assert conf.drain.delay == 0.0
    assert conf.trusted_proxies == ["10.0.0.0/8", "::1/128"]
    assert resolved.experiment_files == [str(tmp_path / "exp/a.yaml"), "/abs/b.yaml"]


def test_file_problems_have_file_line_column(tmp_path: Path) -> None:
    path = write(tmp_path, "listen: 127.0.0.1:1\nlimits:\n  headerTimout: 4s\n  keepalive: soon\n")
    with pytest.raises(SettingsError) as info:
        resolve(path, flags(), {})
    problems = info.value.problems
    assert f"{path}:3:3: limits.headerTimout: unknown key 'headerTimout'" in problems[0]
    assert "headerTimeout" in problems[0]  # the allowed keys come from the settings model
    assert problems[1].startswith(f"{path}:4:14: limits.keepalive: bad duration 'soon'")


def test_environment_and_flag_problems_name_their_source(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        resolve(
            None,
            flags("--max-connections", "-3", "--trusted-proxies", "10.0.0.0/8,example.com"),
            {"OUTRIDER_AUTH_LEEWAY": "120"},
        )
    text = str(info.value)
    assert "$OUTRIDER_AUTH_LEEWAY: auth.leeway:" in text
    assert "--max-connections: limits.maxConnections:" in text
    assert "--trusted-proxies: trustedProxies: 'example.com' is not an IP network" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("listen: [1, 2\n", ":1:"),  # half-written YAML
        ("- a\n- b\n", "expected a mapping of settings"),
        ("a: 1\na: 2\n", "duplicate"),
    ],
)
def test_broken_files_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        resolve(write(tmp_path, text), flags(), {})
    assert expected in str(info.value)


def test_every_setting_has_a_flag_an_environment_variable_and_a_model_field() -> None:
    parser_flags = set(flags())
    for field in FIELDS:
        assert field.dest in parser_flags
        assert field.env_var.startswith("OUTRIDER_")
    assert len({f.env for f in FIELDS}) == len(FIELDS)


def test_docs_settings_md_is_current() -> None:
    assert (REPO / "docs" / "settings.md").read_text() == settings_markdown(), "run `make schema`"


def test_the_shadow_bounds_reach_the_dispatcher_and_the_compare_pool(tmp_path: Path) -> None:
    from proxy.settings.build import shadow_limits

    path = write(tmp_path, "shadows:\n  queue: 500\n  breakerOpen: 250ms\n  compareMode: thread\n")
    env = {"OUTRIDER_SHADOW_WORKERS": "4"}
    conf = resolve(path, flags("--shadow-compare-workers", "2"), env).settings
    limits = shadow_limits(conf.shadows)
    assert (limits.queue, limits.workers, limits.breaker_open_s, limits.breaker_failures) == (500, 4, 0.25, 5)
    assert (limits.compare.mode, limits.compare.workers, limits.compare.queue) == ("thread", 2, 16)
    with pytest.raises(SettingsError, match=r"--shadow-compare-mode"):
        resolve(path, flags("--shadow-compare-mode", "gpu"), {})
