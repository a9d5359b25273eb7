"""The browser packages `make dist` ships (tools/build_extension.py): one manifest per browser,
deterministic archives, and a Firefox package that Mozilla's linter (`web-ext lint`) passes."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "extension"
EXTENSION_ID = (EXTENSION / "EXTENSION_ID").read_text().strip()
#: Where `make web-ext` puts the linter (.ci/run runs it before the tests).
WEB_EXT = ROOT / ".tools" / "web-ext" / "node_modules" / ".bin" / "web-ext"


def _load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_extension",
                                                  ROOT / "tools" / "build_extension.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = _load_builder()


def _manifest(package: Path) -> dict[str, object]:
    with zipfile.ZipFile(package) as zf:
        return dict(json.loads(zf.read("manifest.json")))


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    return {b: builder.build(b, EXTENSION, out) for b in ("chromium", "firefox")}


def test_each_package_holds_every_file_the_browser_loads(packages: dict[str, Path]) -> None:
    wanted = {p.relative_to(EXTENSION).as_posix() for p in EXTENSION.rglob("*") if p.is_file()}
    wanted -= {"ids.json", "EXTENSION_ID"}  # Freight's own, not the browser's
    assert {"manifest.json", "popup.html", "options.html", "js/background.js",
            "css/popup.css", "icons/128.png"} <= wanted
    for package in packages.values():
        with zipfile.ZipFile(package) as zf:
            names = zf.namelist()
            assert names == sorted(names)
            assert set(names) == wanted
            for name in wanted - {"manifest.json"}:
                assert zf.read(name) == (EXTENSION / name).read_bytes(), name
            assert {i.date_time for i in zf.infolist()} == {builder.FIXED_TIME}
    assert packages["firefox"].name == "freight-0.1.0-firefox.xpi"
    assert packages["chromium"].name == "freight-0.1.0-chromium.zip"


def test_each_browser_gets_only_its_own_manifest_keys(packages: dict[str, Path]) -> None:
    source = json.loads((EXTENSION / "manifest.json").read_text())
    firefox = _manifest(packages["firefox"])
    assert firefox["background"] == {"scripts": ["js/background.js"], "type": "module"}
    assert "key" not in firefox and "minimum_chrome_version" not in firefox
    assert firefox["browser_specific_settings"] == {"gecko": {
        **source["browser_specific_settings"]["gecko"],
        "data_collection_permissions": {"required": ["none"]}}}
    chromium = _manifest(packages["chromium"])
    assert chromium["background"] == {"service_worker": "js/background.js", "type": "module"}
    assert "browser_specific_settings" not in chromium
    # The key stays: it fixes the ID the native host's manifest allows.
    from freight.cli.browsers import extension_id_from_key

    assert extension_id_from_key(str(chromium["key"])) == EXTENSION_ID
    for manifest in (firefox, chromium):  # the rest is the source's, unchanged
        assert manifest["permissions"] == source["permissions"]
        assert manifest["version"] == source["version"]


def test_the_packages_are_the_same_bytes_every_build(packages: dict[str, Path],
                                                     tmp_path: Path) -> None:
    for browser, package in packages.items():
        again = builder.build(browser, EXTENSION, tmp_path)
        assert again.read_bytes() == package.read_bytes(), browser


def test_the_build_script_refuses_a_folder_without_a_manifest(tmp_path: Path) -> None:
    assert builder.main(["--source", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def _web_ext_lint(folder: Path) -> dict[str, list[dict[str, str]]]:
    web_ext = os.environ.get("WEB_EXT") or (str(WEB_EXT) if WEB_EXT.exists() else None) \
        or shutil.which("web-ext")
    if web_ext is None:
        pytest.fail(f"web-ext is missing: run `make web-ext` (it installs {WEB_EXT})")
    res = subprocess.run([web_ext, "lint", "--source-dir", str(folder), "--output", "json",
                          "--no-config-discovery"], capture_output=True, text=True, timeout=180)
    try:
        report = json.loads(res.stdout)
    except ValueError:
        raise AssertionError(f"web-ext lint gave no report: {res.stdout}{res.stderr}") from None
    return {kind: report[kind] for kind in ("errors", "warnings", "notices")}


def test_web_ext_lint_passes_the_firefox_package(packages: dict[str, Path],
                                                 tmp_path: Path) -> None:
    unpacked = tmp_path / "firefox"
    with zipfile.ZipFile(packages["firefox"]) as zf:
        zf.extractall(unpacked)
    report = _web_ext_lint(unpacked)
    # No error, and no warning or notice either: every one found so far had a fix in the
    # Firefox manifest (tools/build_extension.py).
    assert report == {"errors": [], "warnings": [], "notices": []}, report


def test_web_ext_lint_sees_what_the_firefox_build_removes() -> None:
    # The source manifest serves both browsers; the linter flags its Chromium-only key, so a
    # clean report above means the build changed something, not that the linter saw nothing.
    report = _web_ext_lint(EXTENSION)
    assert report["errors"] == [], report
    codes = {w["code"] for w in report["warnings"]}
    assert "MANIFEST_FIELD_UNSUPPORTED" in codes, report
