"""A yes/no setting (`forward.preserveHost`): the flag alone means true; file, environment and a flag value
all spell it; a value that is not a yes/no is refused where it was written."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli.command import build_parser
from proxy.settings.load import SettingsError, resolve


def flags(*argv: str) -> dict[str, object]:
    return vars(build_parser().parse_args(["run", *argv]))


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        ((), {}, False),
        (("--preserve-host",), {}, True),
        (("--preserve-host", "false"), {"OUTRIDER_PRESERVE_HOST": "true"}, False),
        ((), {"OUTRIDER_PRESERVE_HOST": "1"}, True),
    ],
)
def test_preserve_host_spellings(argv: tuple[str, ...], environ: dict[str, str], expected: bool) -> None:
    assert resolve(None, flags(*argv), environ).settings.forward.preserve_host is expected


def test_preserve_host_in_the_file_and_a_bad_value(tmp_path: Path) -> None:
    path = tmp_path / "outrider.yaml"
    path.write_text("forward:\n  preserveHost: true\n")
    assert resolve(str(path), flags(), {}).settings.forward.preserve_host is True
    with pytest.raises(SettingsError) as caught:
        resolve(None, flags("--preserve-host", "maybe"), {})
    assert caught.value.problems[0].startswith("--preserve-host: forward.preserveHost:")
