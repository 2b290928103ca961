"""The package as a user gets it: built from the files git knows, installed from the wheel into
a fresh venv, run from there (issue: `pip install .` could not run the demo).

The steps are scripts/check_package.py's, which CI also runs in full (dependencies from the
package index); here the fresh venv borrows this venv's dependencies so the test needs no
network, and every step's result is asserted.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_check_package():
    spec = importlib.util.spec_from_file_location(
        "check_package", ROOT / "scripts" / "check_package.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def check():
    return load_check_package()


@pytest.fixture(scope="module")
def built(check, tmp_path_factory):
    work = tmp_path_factory.mktemp("package")
    sdist, wheel = check.build(work / "dist", check.export_source(work / "source"))
    return work, sdist, wheel


def test_the_wheel_and_sdist_carry_the_demo_config_the_example_and_the_unit(check, built):
    _work, sdist, wheel = built
    files = check.wheel_files(wheel)
    for path in (
        "gateway/demo.toml",
        "gateway/example.toml",
        "gateway/health-gateway.service",
        "gateway/static/index.html",
    ):
        assert path in files, path
    assert check.check_contents(sdist, wheel) == []
    # the packaged example and unit are config/'s files, byte for byte (one home for each)
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("gateway/example.toml") == (ROOT / "config/example.toml").read_bytes()
        assert (
            archive.read("gateway/health-gateway.service")
            == (ROOT / "config/health-gateway.service").read_bytes()
        )
    assert not any(name.startswith(("tests/", "bench/")) for name in files)


def test_a_missing_file_is_named_with_who_needs_it(check, built, tmp_path):
    _work, sdist, wheel = built
    stripped = tmp_path / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(stripped, "w") as target:
        for item in source.infolist():
            if item.filename != "gateway/demo.toml":
                target.writestr(item, source.read(item))
    assert check.check_contents(sdist, stripped) == [
        "the wheel lacks gateway/demo.toml (`health-gateway demo` builds its config from it)"
    ]


def test_the_installed_wheel_runs_the_demo_and_init_without_the_source_tree(check, built):
    work, _sdist, wheel = built
    bin_dir = check.fresh_venv(work / "venv", offline=True)
    check.install(bin_dir, wheel, offline=True)
    where = subprocess.run(
        [bin_dir / "python", "-c", "import gateway; print(gateway.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    )
    assert where.stdout.startswith(str(work / "venv")), where.stdout
    assert not where.stdout.startswith(str(ROOT) + "/gateway")

    summary = check.run_demo(bin_dir, work)
    counts = re.fullmatch(
        r"Summary: (\d+) readings taken, (\d+) delivered to the care platform", summary
    )
    assert counts is not None, summary
    assert int(counts[1]) > 0 and int(counts[2]) > 0, summary

    before, after = check.init_and_check(bin_dir, work)
    assert "care-platform.token_file" in before and "does not exist" in before
    assert after.endswith("OK (1 subjects, 1 devices, 4 destinations, 1 alert rules)")


def test_the_script_ci_runs_fails_when_the_build_fails(check, tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = \n")  # not valid TOML
    with pytest.raises(check.PackageCheckFailed, match="build failed"):
        check.build(tmp_path / "dist", tmp_path)
