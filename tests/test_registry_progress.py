"""The pull/push progress lines: plain lines into a pipe, redrawn lines on a terminal."""

from __future__ import annotations

import io

from minidocker.registry.progress import Progress, bar, human_size, short_id


def test_plain_output_has_one_line_per_state_change_and_no_byte_counts():
    out = io.StringIO()
    p = Progress(out, tty=False)
    p.update("aaaaaaaaaaaa", "Pulling fs layer")
    p.update("bbbbbbbbbbbb", "Pulling fs layer")
    p.update("aaaaaaaaaaaa", "Downloading", 500, 1000)     # bytes: terminal only
    p.update("aaaaaaaaaaaa", "Pull complete")
    p.update("aaaaaaaaaaaa", "Pull complete")                # no change, no line
    p.message("Digest: sha256:x")
    assert out.getvalue().splitlines() == [
        "aaaaaaaaaaaa: Pulling fs layer", "bbbbbbbbbbbb: Pulling fs layer",
        "aaaaaaaaaaaa: Pull complete", "Digest: sha256:x"]


def test_terminal_output_redraws_the_layer_line_in_place():
    out = io.StringIO()
    p = Progress(out, tty=True)
    p.update("aaaaaaaaaaaa", "Pulling fs layer")
    p.update("bbbbbbbbbbbb", "Pulling fs layer")
    p.update("aaaaaaaaaaaa", "Downloading", 1_500_000, 3_000_000)
    text = out.getvalue()
    # two lines up, rewrite the first layer's line with a bar, erase its tail, two down
    assert "\x1b[2A\raaaaaaaaaaaa: Downloading [" in text
    assert "1.5MB/3MB\x1b[K\r\x1b[2B" in text


def test_units_and_bar():
    assert human_size(999) == "999B"
    assert human_size(1_040_000) == "1.04MB"
    assert bar(25, 100).startswith("[" + "=" * 12 + ">")
    assert short_id("sha256:0123456789abcdef") == "0123456789ab"


def test_quiet_prints_nothing():
    out = io.StringIO()
    p = Progress(out, tty=False, quiet=True)
    p.update("aaaaaaaaaaaa", "Pulled")
    p.message("Digest: x")
    assert out.getvalue() == ""
