"""checksum: the one checksum syntax; speed: the one speed figure."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from freight.engine.checksum import HEX_DIGITS, digest, normalize_checksum, parse_checksum
from freight.engine.files import PartFile
from freight.engine.speed import SpeedMeter
from freight.errors import InputError
from hypothesis import given
from hypothesis import strategies as st


@given(algo=st.sampled_from(sorted(HEX_DIGITS)), data=st.binary(max_size=64),
       sep=st.sampled_from([":", "="]), upper=st.booleans())
def test_every_spelling_normalises_to_algo_colon_hex(
    algo: str, data: bytes, sep: str, upper: bool
) -> None:
    hexdigest = hashlib.new(algo, data).hexdigest()
    text = f" {algo.upper() if upper else algo} {sep} {hexdigest.upper() if upper else hexdigest} "
    assert parse_checksum(text) == (algo, hexdigest)
    assert normalize_checksum(text) == f"{algo}:{hexdigest}"


@pytest.mark.parametrize("text", [
    "", "sha256", "sha256:", "crc32:0000", "sha256:xyz", "md5:" + "0" * 31, "sha1=" + "a" * 41,
])
def test_bad_checksums_are_input_errors(text: str) -> None:
    with pytest.raises(InputError):
        normalize_checksum(text)


@pytest.mark.parametrize("algo", sorted(HEX_DIGITS))
def test_digest_of_a_part_file(tmp_path: Path, algo: str) -> None:
    data = bytes(range(256)) * 5000
    part = PartFile(str(tmp_path / "f.part"))
    try:
        part.pwrite(data, 0)
        assert digest(part, algo, len(data) - 7) == hashlib.new(algo, data[:-7]).hexdigest()
    finally:
        part.close()


def test_speed_over_the_window() -> None:
    meter = SpeedMeter(window=2.0)
    assert meter.speed() == 0.0
    meter.add(10.0, 0)
    assert meter.speed() == 0.0
    meter.add(11.0, 1000)
    assert meter.speed() == pytest.approx(1000.0)
    meter.add(13.5, 6000)  # the samples older than 2 s fall out
    meter.add(14.0, 7000)
    assert meter.speed() == pytest.approx(2000.0)
    meter.add(14.0, 5000)  # a restart from zero never shows a negative speed
    assert meter.speed() == 0.0
