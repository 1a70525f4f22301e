"""The installation tells the truth: a mix with HIPS autograd is refused (on import and at build
time), the unbuilt source tree warns once, a missing compiler names the option that avoids it,
and AUTOGRAD_NATIVE=OFF builds a pure wheel that installs without a compiler."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

import autograd as ag
from autograd import _install_check

PKG = Path(ag.__file__).parent  # the package under test (installed, or the checkout's)
ROOT = Path(__file__).resolve().parents[1]  # the checkout these tests belong to
SOURCE_CHECKOUT = (ROOT / "pyproject.toml").exists() and (ROOT / "CMakeLists.txt").exists()
NUMPY_SITE = str(Path(np.__file__).parents[1])
needs_checkout = pytest.mark.skipif(not SOURCE_CHECKOUT, reason="needs the source checkout")


def _python_isolated(code: str, path: list[str], cwd: Path, **env: str
                     ) -> subprocess.CompletedProcess:
    """Run code with only ``path`` (and the dependencies' site-packages) to import from: -S
    keeps the test environment's own autograd (and any editable-install hook) out."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRAD_")}
    full.update(PYTHONPATH=os.pathsep.join(path + [NUMPY_SITE]), **env)
    return subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          cwd=cwd, env=full, timeout=120)


def _copy_package(dest: Path) -> Path:
    shutil.copytree(PKG, dest / "autograd",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "_build_config.py"))
    return dest / "autograd"


def _fake_dist_info(site: Path, name: str, version: str) -> None:
    d = site / f"{name}-{version}.dist-info"
    d.mkdir()
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


# ------------------------------------------------------------------ mixed installation
def test_hips_metadata_beside_ours_is_refused_on_import(tmp_path):
    _copy_package(tmp_path)
    _fake_dist_info(tmp_path, "autograd_engine", "0.1.0")
    _fake_dist_info(tmp_path, "autograd", "1.7.0")
    result = _python_isolated("import autograd", [str(tmp_path)], cwd=tmp_path)
    assert result.returncode != 0
    err = result.stderr.strip().splitlines()[-1]
    assert err.startswith("autograd._install_check.MixedInstallationError: autograd: a mixed "
                          "installation in " + str(tmp_path))
    for part in ("autograd-engine 0.1.0", "autograd 1.7.0", "HIPS", "own environment",
                 "pip uninstall -y autograd autograd-engine"):
        assert part in err, part
    # Without the other distribution's metadata the same files import fine.
    shutil.rmtree(tmp_path / "autograd-1.7.0.dist-info")
    ok = _python_isolated("import autograd; print(autograd.tensor([1.0]).sum().item())",
                          [str(tmp_path)], cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip() == "1.0", ok.stderr


def test_hips_init_installed_over_ours_is_refused_from_our_submodules(tmp_path):
    pkg = _copy_package(tmp_path)
    # HIPS autograd's files overwrite ours where the names clash (its __init__.py), and its
    # own modules sit beside ours.
    (pkg / "__init__.py").write_text("from .wrap_util import unary_to_nary\n")
    (pkg / "wrap_util.py").write_text("def unary_to_nary(f):\n    return f\n")
    result = _python_isolated("import autograd; from autograd import nn", [str(tmp_path)],
                              cwd=tmp_path)
    assert result.returncode != 0
    assert "MixedInstallationError" in result.stderr
    assert "whose __init__.py replaced ours" in result.stderr and "autograd-engine" in result.stderr


def test_only_the_hips_distribution_counts(tmp_path):
    for name in ("autograd_gamma-0.5.0.dist-info", "autograd_engine-0.1.0.dist-info",
                 "autograd-engine-0.1.0.dist-info", "autograd_extras-1.0-py3.11.egg-info",
                 "autograd"):
        (tmp_path / name).mkdir()
    assert _install_check.find_conflict(str(tmp_path)) is None
    (tmp_path / "autograd-1.5-py3.11.egg-info").mkdir()  # an old setuptools install of HIPS
    message = _install_check.find_conflict(str(tmp_path))
    assert message is not None and "autograd 1.5 (the HIPS" in message
    assert "autograd-engine 0.1.0 (this project" in message


def test_build_time_check_names_both_distributions(tmp_path, capsys):
    assert _install_check.main([str(tmp_path)]) == 0
    _fake_dist_info(tmp_path, "autograd", "1.6.2")
    assert _install_check.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "autograd-engine cannot be installed into" in err and "autograd 1.6.2" in err


def _cmake() -> str | None:
    return shutil.which("cmake") or shutil.which("cmake", path=os.path.dirname(sys.executable))


def _generator() -> list[str]:
    ninja = shutil.which("ninja") or shutil.which("ninja", path=os.path.dirname(sys.executable))
    return ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"] if ninja else []


@needs_checkout
@pytest.mark.skipif(_cmake() is None, reason="cmake is not installed")
def test_cmake_refuses_to_build_into_an_environment_with_hips_autograd(tmp_path):
    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    _fake_dist_info(Path(site), "autograd", "1.7.0")
    result = subprocess.run([_cmake(), "-S", str(ROOT), "-B", str(tmp_path / "b"), *_generator(),
                             f"-DPython_EXECUTABLE={python}"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0
    out = " ".join((result.stdout + result.stderr).split())
    assert "autograd-engine cannot be installed into" in out and "autograd 1.7.0" in out
    assert "AUTOGRAD_CHECK_ENVIRONMENT=OFF" in out


@needs_checkout
@pytest.mark.skipif(_cmake() is None, reason="cmake is not installed")
def test_cmake_without_a_compiler_names_the_numpy_only_option(tmp_path):
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"),
           "CC": str(tmp_path / "no-such-compiler")}
    result = subprocess.run([_cmake(), "-S", str(ROOT), "-B", str(tmp_path / "b"), *_generator(),
                             f"-DPython_EXECUTABLE={sys.executable}"], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode != 0
    out = " ".join((result.stdout + result.stderr).split())
    assert "No C++ compiler found" in out and "AUTOGRAD_NATIVE=OFF pip install ." in out


# ------------------------------------------------------------------ the source tree
def _source_tree(tmp_path: Path) -> Path:
    _copy_package(tmp_path)
    for name in ("pyproject.toml", "CMakeLists.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / "csrc").mkdir()
    return tmp_path


def test_importing_the_unbuilt_source_tree_warns_once_with_the_fix(tmp_path):
    root = _source_tree(tmp_path)
    code = "import autograd; import autograd.nn; print(autograd.backend.active())"
    result = _python_isolated(code, [""], cwd=root)  # "" = the working directory, as python -c
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numpy"
    assert result.stderr.count("SourceTreeWarning") == 1
    for part in (f"running from its source tree {root / 'autograd'}", "native core (autograd._C)",
                 "compiled engine", f"cd {root} && pip install -e .", "AUTOGRAD_BACKEND=numpy"):
        assert part in " ".join(result.stderr.split()), part


def test_asking_for_native_in_the_source_tree_gives_the_hint_that_works(tmp_path):
    root = _source_tree(tmp_path)
    result = _python_isolated("import autograd", [""], cwd=root, AUTOGRAD_BACKEND="native")
    assert result.returncode != 0
    err = " ".join(result.stderr.split())
    assert f"not built in this source tree ({root})" in err and "pip install -e ." in err


def test_choosing_numpy_deliberately_or_a_built_install_does_not_warn(tmp_path):
    root = _source_tree(tmp_path)
    quiet = _python_isolated("import autograd", [""], cwd=root, AUTOGRAD_BACKEND="numpy")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    # A plain directory of the package (an installed copy, not a checkout) never warns.
    other = tmp_path / "site"
    other.mkdir()
    _copy_package(other)
    plain = _python_isolated("import autograd", [str(other)], cwd=other)
    assert plain.returncode == 0 and plain.stderr == "", plain.stderr


# ------------------------------------------------------------------ no compiler, wheels
def _venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(path)
    return path / "bin" / "python"


def _pip(python: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=900, env=env)


@needs_checkout
@pytest.mark.slow
@pytest.mark.build
def test_numpy_only_wheel_installs_without_a_compiler_and_refuses_hips(tmp_path):
    # Build: the documented switch, no compiler anywhere on the way.
    no_compiler = {**os.environ, "AUTOGRAD_NATIVE": "OFF", "CC": "/bin/false", "CXX": "/bin/false"}
    built = _pip(Path(sys.executable), "wheel", "--no-deps", "-v", "-w", str(tmp_path / "dist"),
                 str(ROOT), env=no_compiler)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "installed WITHOUT the native core (AUTOGRAD_NATIVE=OFF)" in built.stdout + built.stderr
    wheels = glob.glob(str(tmp_path / "dist" / "autograd_engine-*.whl"))
    assert len(wheels) == 1 and wheels[0].endswith("-py3-none-any.whl"), wheels
    # Install into a fresh environment: binary packages only, no compiler.
    python = _venv(tmp_path / "env")
    env = {k: v for k, v in no_compiler.items() if not k.startswith("AUTOGRAD_")}
    installed = _pip(python, "install", "--only-binary=:all:", wheels[0], env=env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    check = ("import autograd as ag; i = ag.backend.info(); print(i['backend'], i['engine'], "
             "i['native_build']); x = ag.tensor([1.0, 2.0], requires_grad=True); "
             "(x * x).sum().backward(); print(x.grad.tolist())")
    run = subprocess.run([str(python), "-c", check], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("numpy python off (installed with AUTOGRAD_NATIVE=OFF")
    assert lines[1] == "[2.0, 4.0]"
    # HIPS autograd installed over ours: our submodules refuse, naming both.
    hips = _pip(python, "install", "--no-deps", "--only-binary=:all:", "autograd", env=env)
    if hips.returncode != 0:
        pytest.skip(f"HIPS autograd could not be fetched from PyPI: {hips.stderr[-300:]}")
    mixed = subprocess.run([str(python), "-c", "import autograd; from autograd import nn"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert mixed.returncode != 0 and "MixedInstallationError" in mixed.stderr
    assert "autograd-engine 0.1.0" in mixed.stderr and "HIPS" in mixed.stderr
    # Building from source into an environment holding HIPS autograd stops at configure time.
    build = _pip(python, "install", "--no-deps", str(ROOT), env=env)
    out = " ".join((build.stdout + build.stderr).split())
    assert build.returncode != 0 and "autograd-engine cannot be installed into" in out, out[-2000:]
    assert "HIPS autograd project" in out and "own environment" in out
    # And ours installed over HIPS: the first import refuses.
    for args in (("uninstall", "-y", "autograd", "autograd-engine"),
                 ("install", "--no-deps", "--only-binary=:all:", "autograd"),
                 ("install", "--no-deps", wheels[0])):
        assert _pip(python, *args, env=env).returncode == 0
    mixed = subprocess.run([str(python), "-c", "import autograd"], capture_output=True,
                           text=True, cwd=tmp_path, env=env, timeout=120)
    assert mixed.returncode != 0 and "MixedInstallationError" in mixed.stderr
    assert "autograd-engine 0.1.0" in mixed.stderr and "autograd 1." in mixed.stderr


def _dev_build_dir() -> Path | None:
    dirs = sorted(ROOT.glob("build/cp3*"))
    return dirs[0] if dirs and (dirs[0] / "CMakeCache.txt").exists() else None


@needs_checkout
@pytest.mark.slow
@pytest.mark.build
@pytest.mark.skipif(_dev_build_dir() is None
                    and os.environ.get("AUTOGRAD_TEST_NATIVE_WHEEL") != "1",
                    reason="a native wheel is a full compile without a development build dir "
                           "(build/<tag>); set AUTOGRAD_TEST_NATIVE_WHEEL=1 to run it anyway")
def test_native_wheel_installs_in_a_fresh_environment_without_a_compiler(tmp_path):
    args = ["wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(ROOT)]
    if _dev_build_dir() is not None:  # incremental: reuse the development build (seconds)
        args[1:1] = ["--no-build-isolation", f"-Cbuild-dir={_dev_build_dir()}"]
    built = _pip(Path(sys.executable), *args)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels = glob.glob(str(tmp_path / "dist" / "autograd_engine-*.whl"))
    assert len(wheels) == 1 and "-cp3" in wheels[0] and "linux" in wheels[0], wheels
    python = _venv(tmp_path / "env")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRAD_")}
    env.update(CC="/bin/false", CXX="/bin/false")
    installed = _pip(python, "install", "--only-binary=:all:", wheels[0], env=env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    check = ("import autograd as ag; i = ag.backend.info(); print(i['backend'], i['engine']); "
             "x = ag.randn(4, 3, requires_grad=True); (x @ x.T).sum().backward(); "
             "print(x.grad.shape); import autograd._C as C; print(C.__file__)")
    run = subprocess.run([str(python), "-c", check], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[:2] == ["native compiled", "(4, 3)"]
    assert lines[2].startswith(str(tmp_path / "env"))  # the wheel's copy, not the checkout's
    data = Path(lines[2]).read_bytes()
    assert str(ROOT).encode() not in data  # no build-machine paths (RUNPATH is $ORIGIN-based)


@needs_checkout
def test_cibuildwheel_configuration_is_valid():
    import tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    assert "cp311-*" in config["build"] and "pp*" in config["skip"]
    assert any("backend.info()" in c for c in config["test-command"])
    cibw = shutil.which("cibuildwheel") or shutil.which(
        "cibuildwheel", path=os.path.dirname(sys.executable))
    if cibw is None:
        pytest.skip("cibuildwheel is not installed (pip install cibuildwheel)")
    result = subprocess.run([cibw, "--print-build-identifiers", "--platform", "linux",
                             str(ROOT)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ids = result.stdout.split()
    assert "cp311-manylinux_x86_64" in ids and not any("musllinux" in i for i in ids)


@needs_checkout
def test_every_environment_variable_is_in_the_readme_table():
    """One table documents every variable the code, the tests, the build or CI read."""
    import re
    pattern = re.compile(r"(?:environ(?:\.get)?\(?\[?|getenv\(|setenv\(|ENV\{)\s*[\"']?"
                         r"([A-Z][A-Z0-9_]{3,})")
    found = set()
    for folder in ("autograd", "tests", "examples", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            found |= set(pattern.findall(path.read_text()))
    found |= set(pattern.findall((ROOT / "CMakeLists.txt").read_text()))
    found |= {"AUTOGRAD_NATIVE"}  # read by scikit-build-core through pyproject.toml's override
    found -= {"PATH", "PYTHONPATH", "CC", "CXX"}  # set by tests for their subprocesses
    table = (ROOT / "README.md").read_text().split("### Environment variables", 1)[1]
    table = table.split("\n\n", 2)[1]
    documented = set(re.findall(r"^\| `([A-Z_0-9]+)` \|", table, re.M))
    assert found <= documented, f"not in the README's table: {sorted(found - documented)}"
    assert "AUTOGRAD_MNIST_DIR" in documented
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "if.env.AUTOGRAD_NATIVE" in pyproject
