"""Two ways an installation goes wrong silently, made loud.

1. **A mixed installation.** ``autograd`` on PyPI (the HIPS project) installs the same top-level
   package ``autograd`` as this distribution, ``autograd-engine``. pip does not know they clash:
   installing one over the other overwrites some files and leaves the rest, so ``import
   autograd`` runs half of each. On import (and at build time, see ``CMakeLists.txt``) we look
   for the other distribution's metadata beside our package and refuse with the fix.
2. **The uncompiled source tree.** Python started in the repository root imports ``autograd/``
   from there, where the native core and the compiled engine are not built, and runs the NumPy
   backend. :func:`warn_if_source_tree` says so once, naming the command that fixes it.

Also a script for the build: ``python autograd/_install_check.py DIR...`` exits 1 with the
message when a directory (a site-packages) holds the HIPS distribution.
"""
from __future__ import annotations

import os
import re
import sys

OURS = "autograd-engine"
THEIRS = "autograd"  # the HIPS project's distribution name on PyPI

# A distribution's metadata directory: NAME-VERSION.dist-info (or .egg-info), where NAME is
# normalized with "_" for "-"; ours is autograd_engine-*, theirs exactly autograd-*.
# (setuptools' older egg-info directories add -pyX.Y). Other projects named autograd-something
# (autograd_gamma-*) never match: the version must follow "autograd-" directly.
_THEIRS_METADATA = re.compile(r"^autograd-(\d[^-]*)(-py[\d.]+)?\.(dist-info|egg-info)$",
                              re.IGNORECASE)
_OURS_METADATA = re.compile(r"^autograd[_.-]engine-(\d[^-]*)(-py[\d.]+)?\.(dist-info|egg-info)$",
                            re.IGNORECASE)


class MixedInstallationError(ImportError):
    """``autograd-engine`` and HIPS ``autograd`` are installed into one environment."""


def _find(directory: str, pattern: re.Pattern) -> str | None:
    """The version of the distribution whose metadata matches ``pattern`` in ``directory``."""
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    for name in names:
        m = pattern.match(name)
        if m:
            return m.group(1)
    return None


def conflict_message(directory: str, theirs: str | None, ours: str | None = None,
                     note: str = "") -> str:
    """The error naming both distributions and the fix."""
    ours_text = f"{OURS} {ours}" if ours else OURS
    theirs_text = f"{THEIRS} {theirs}" if theirs else THEIRS
    return (f"a mixed installation in {directory}: both {ours_text} (this project, imported as "
            f"`autograd`) and {theirs_text} (the HIPS autograd project from PyPI{note}) are "
            f"installed there, and both install the top-level package `autograd`, so their files "
            f"are mixed and neither works. Fix: give each its own environment, e.g. "
            f"`python -m venv .venv && .venv/bin/pip install {OURS}`; to repair this one, "
            f"`pip uninstall -y {THEIRS} {OURS}` and then reinstall the one you need.")


def find_conflict(directory: str) -> str | None:
    """The message for a mixed installation in ``directory`` (a site-packages), or None."""
    theirs = _find(directory, _THEIRS_METADATA)
    if theirs is None:
        return None
    return conflict_message(directory, theirs, _find(directory, _OURS_METADATA))


def check_mixed_installation(package_dir: str) -> None:
    """Raise :class:`MixedInstallationError` when HIPS autograd's metadata sits beside the
    package in ``package_dir``, or when the ``autograd`` being imported is not ours (HIPS's
    ``__init__.py`` was installed over ours and our submodules are loaded under it)."""
    site = os.path.dirname(os.path.abspath(package_dir))
    message = find_conflict(site)
    if message is None:
        top = sys.modules.get("autograd")
        if top is not None and not getattr(top, "_AUTOGRAD_ENGINE", False):
            message = conflict_message(site, None, _find(site, _OURS_METADATA),
                                       note=", whose __init__.py replaced ours")
    if message is not None:
        raise MixedInstallationError("autograd: " + message)


class SourceTreeWarning(UserWarning):
    """``autograd`` was imported from an unbuilt source checkout."""


def _is_source_checkout(package_dir: str) -> bool:
    root = os.path.dirname(os.path.abspath(package_dir))
    return all(os.path.exists(os.path.join(root, name))
               for name in ("pyproject.toml", "CMakeLists.txt", "csrc"))


def source_tree_message(package_dir: str, missing: list[str]) -> str:
    """The warning for an import of the unbuilt checkout at ``package_dir``."""
    root = os.path.dirname(os.path.abspath(package_dir))
    shadowed = ""
    try:
        from importlib.metadata import PackageNotFoundError, distribution
        try:
            dist = distribution(OURS)
            installed = os.path.join(str(dist.locate_file("")), "autograd")
            if (os.path.isdir(installed)
                    and os.path.abspath(installed) != os.path.abspath(package_dir)):
                shadowed = (f" An installed {OURS} {dist.version} ({installed}) is shadowed "
                            f"by this directory: run Python from any other directory to use it.")
        except PackageNotFoundError:
            pass
    except Exception:  # metadata is a courtesy here; never fail an import over it
        pass
    return (f"autograd is running from its source tree {package_dir} where "
            f"{' and '.join(missing)} not built, so the NumPy backend and the uncompiled "
            f"engine run (slower; same numbers).{shadowed} To build the compiled core in place: "
            f"cd {root} && pip install -e . (for incremental rebuilds see the README's "
            f"Development section). Set AUTOGRAD_BACKEND=numpy to choose the NumPy backend "
            f"deliberately and silence this.")


def warn_if_source_tree(package_dir: str, native: bool, compiled_engine: bool) -> None:
    """Warn (once: this runs on the package's first import) when the package was imported from
    a source checkout without its compiled parts, unless the NumPy backend was asked for."""
    if native and compiled_engine:
        return
    if os.environ.get("AUTOGRAD_BACKEND", "").strip().lower() == "numpy":
        return
    if not _is_source_checkout(package_dir):
        return
    missing = []
    if not native:
        missing.append("the native core (autograd._C) is")
    if not compiled_engine:
        missing.append("the compiled engine (autograd._cengine) is")
    if len(missing) == 2:
        missing = ["the native core (autograd._C) and the compiled engine (autograd._cengine) "
                   "are"]
    import warnings
    warnings.warn(source_tree_message(package_dir, missing), SourceTreeWarning, stacklevel=3)


def main(argv: list[str]) -> int:
    """Build-time check: exit 1 with the message if HIPS autograd is installed in any
    directory of ``argv`` (the site-packages this build installs into)."""
    for directory in argv:
        theirs = _find(directory, _THEIRS_METADATA)
        if theirs is not None:
            print(f"autograd-engine cannot be installed into {directory}: {THEIRS} {theirs} "
                  f"(the HIPS autograd project from PyPI) is installed there, and both install "
                  f"the top-level package `autograd`, so installing this one would mix their "
                  f"files and neither would work. Fix: install {OURS} into its own environment, "
                  f"e.g. `python -m venv .venv && .venv/bin/pip install {OURS}`; or, if this "
                  f"environment does not need HIPS autograd, `pip uninstall -y {THEIRS}` first.",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
