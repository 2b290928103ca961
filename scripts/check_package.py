"""Check the package as a user gets it: build, look inside, install in a fresh venv, run it.

CI (``.ci/run``) runs this in full; ``tests/test_packaging.py`` runs the same steps with
``--offline``. The steps:

1. build the sdist and, from it, the wheel (``python -m build``, as pip builds from an sdist),
   from a copy of the files git knows, as a fresh clone has them;
2. fail if either lacks a file the demo, ``init`` or the docs need (``REQUIRED``), or if the
   sdist holds a symlink (config/ is the one home of the example and the unit; the package
   points at them with symlinks that the build must turn into files);
3. install the wheel in a fresh venv: with its dependencies from the package index, or with
   ``--offline`` from this interpreter's site-packages (put after the venv's own, so the
   installed wheel, not this checkout, is what runs);
4. run ``health-gateway demo --duration 5`` there and expect readings delivered;
5. run ``health-gateway init`` into a temporary layout, then ``check-config`` on the written
   example: it must name the care provider's missing token, and pass once it is there.

Usage: ``.venv/bin/python scripts/check_package.py [--offline] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Files an installed wheel must carry, and who needs each.
REQUIRED = {
    "gateway/demo.toml": "`health-gateway demo` builds its config from it",
    "gateway/example.toml": "`health-gateway init` writes the config from it (README, docs)",
    "gateway/health-gateway.service": "`init --systemd-dir` writes the unit from it (docs)",
    "gateway/static/index.html": "the hub page",
    "gateway/static/app.js": "the hub page",
    "gateway/static/app.css": "the hub page",
    "gateway/py.typed": "type information for code that imports the package",
    "gateway/locale/sv.po": "the hub page and summaries in Swedish (the default locale)",
    "gateway/locale/en.po": "the hub page and summaries in English",
}
DEMO_SECONDS = 5


class PackageCheckFailed(Exception):
    """One step failed; the message says which and why."""


def run(
    *args: str | Path, timeout: float = 600, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own tools, no shell)
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )


def export_source(dest: Path) -> Path:
    """The files git knows (committed or new, not ignored), copied as they are, links as links.

    Building in the checkout itself would let a stale ``*.egg-info/SOURCES.txt`` from an
    earlier build put files in the sdist that the project's own rules leave out; a fresh
    clone (CI) has none, and neither has this copy.
    """
    listed = run("git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed.returncode != 0:
        raise PackageCheckFailed(f"git ls-files failed: {listed.stderr.strip()}")
    for name in filter(None, listed.stdout.split("\0")):
        source, target = ROOT / name, dest / name
        if not os.path.lexists(source):
            continue  # deleted in the work tree, not yet committed
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return dest


def build(out: Path, source: Path) -> tuple[Path, Path]:
    """The sdist and the wheel built from it, with this interpreter's setuptools."""
    result = run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source)
    if result.returncode != 0:
        raise PackageCheckFailed(f"build failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise PackageCheckFailed(f"expected one sdist and one wheel in {out}")
    return sdists[0], wheels[0]


def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def sdist_members(sdist: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(sdist) as archive:
        members = archive.getmembers()
    # Strip the "name-version/" folder every member sits in.
    return {m.name.split("/", 1)[1]: m for m in members if "/" in m.name}


def check_contents(sdist: Path, wheel: Path) -> list[str]:
    """Every problem with what the two archives hold (empty: none)."""
    problems = []
    in_wheel = wheel_files(wheel)
    in_sdist = sdist_members(sdist)
    for path, why in REQUIRED.items():
        if path not in in_wheel:
            problems.append(f"the wheel lacks {path} ({why})")
        member = in_sdist.get(path)
        if member is None:
            problems.append(f"the sdist lacks {path} ({why})")
        elif not member.isfile():
            problems.append(f"the sdist holds {path} as a link, not a file")
    problems += [f"the sdist holds a symlink: {name}" for name, m in in_sdist.items() if m.issym()]
    return problems


def fresh_venv(path: Path, *, offline: bool) -> Path:
    """A new venv; offline, it sees this interpreter's packages after its own. Its bin/."""
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    if offline:
        site = run(
            path / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"
        )
        here = sysconfig.get_path("purelib")
        # A plain path line: appended to sys.path, its own .pth files (this checkout's
        # editable install) are not run, so `gateway` resolves to the installed wheel.
        Path(site.stdout.strip(), "zz-dependencies-from-the-test-venv.pth").write_text(here + "\n")
    return path / "bin"


def install(bin_dir: Path, wheel: Path, *, offline: bool) -> None:
    options = ["--no-deps", "--no-index"] if offline else []
    result = run(bin_dir / "python", "-m", "pip", "install", "--quiet", *options, wheel)
    if result.returncode != 0:
        raise PackageCheckFailed(f"pip install of the wheel failed:\n{result.stderr[-3000:]}")
    where = run(bin_dir / "python", "-c", "import gateway; print(gateway.__file__)", cwd="/")
    if not where.stdout.strip().startswith(str(bin_dir.parent)):
        raise PackageCheckFailed(
            f"the venv imports gateway from {where.stdout.strip() or where.stderr}, not the wheel"
        )


def run_demo(bin_dir: Path, work: Path) -> str:
    result = run(
        bin_dir / "health-gateway",
        "demo",
        "--duration",
        str(DEMO_SECONDS),
        "--port",
        "0",
        cwd=work,  # not the checkout: nothing may come from the source tree
        timeout=120,
    )
    summary = re.search(
        r"Summary: (\d+) readings taken, (\d+) delivered to the care platform", result.stdout
    )
    if result.returncode != 0 or summary is None or int(summary[2]) == 0:
        raise PackageCheckFailed(
            f"the installed demo did not deliver readings (exit {result.returncode}):\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return summary[0]


def init_and_check(bin_dir: Path, work: Path) -> list[str]:
    """init into work/, check-config before and after the provider's tokens; what was seen."""
    config_dir, data_dir, unit_dir = work / "etc", work / "data", work / "systemd"
    unit_dir.mkdir()
    user = ["--user", "root"] if os.geteuid() == 0 else []
    hub = bin_dir / "health-gateway"
    init = run(
        hub,
        "init",
        "--config-dir",
        config_dir,
        "--data-dir",
        data_dir,
        "--systemd-dir",
        unit_dir,
        *user,
        cwd=work,
    )
    if init.returncode != 0:
        raise PackageCheckFailed(f"init failed: {init.stderr.strip()}")
    unit = (unit_dir / "health-gateway.service").read_text()
    if f"ExecStart={hub} run --config {config_dir}/config.toml" not in unit:
        raise PackageCheckFailed("the unit init wrote does not start this installation")
    config = config_dir / "config.toml"
    before = run(hub, "check-config", config, cwd=work)
    if before.returncode != 2 or "care-platform.token_file" not in before.stderr:
        raise PackageCheckFailed(
            f"check-config did not name the missing care platform token: {before.stderr.strip()}"
        )
    for name in ("care-token", "analytics-token"):
        path = config_dir / name
        path.write_text("a-token-from-the-care-provider-0123456789\n")
        path.chmod(0o600)
    after = run(hub, "check-config", config, cwd=work)
    if after.returncode != 0:
        raise PackageCheckFailed(f"check-config of the written example failed: {after.stderr}")
    return [before.stderr.strip(), after.stdout.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--offline", action="store_true", help="dependencies from this venv")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hgw-package-") as temporary:
        work = args.keep or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        try:
            sdist, wheel = build(work / "dist", export_source(work / "source"))
            print(f"check-package: built {sdist.name} and {wheel.name}")
            problems = check_contents(sdist, wheel)
            if problems:
                raise PackageCheckFailed("; ".join(problems))
            print(
                f"check-package: both carry the {len(REQUIRED)} files the demo, init and docs need"
            )
            bin_dir = fresh_venv(work / "venv", offline=args.offline)
            install(bin_dir, wheel, offline=args.offline)
            source = "offline" if args.offline else "from the index"
            print(f"check-package: installed in a fresh venv ({source})")
            print(f"check-package: demo --duration {DEMO_SECONDS}: {run_demo(bin_dir, work)}")
            for line in init_and_check(bin_dir, work):
                print(f"check-package: {line}")
        except PackageCheckFailed as exc:
            print(f"check-package: FAILED: {exc}", file=sys.stderr)
            return 1
    print("check-package: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
