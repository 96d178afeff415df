"""What a new machine and a new user meet: the Debian packages ``make deps`` asks apt for resolve, the Node.js
example's zeromq binding loads after ``npm ci``, the wheel works outside the checkout, and ``ps`` names every
process after its role.

The apt checks only simulate (``apt-get install --simulate`` changes nothing). The "node missing" case is
simulated against this machine's dpkg status without the packages that provide node and npm, so a machine with a
vendor Node.js (whose ``nodejs`` conflicts with Debian's ``npm``) checks the list a machine without one would get.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from emotiond.core.procfs import command_line, descendants

from support.clients import node_example  # noqa: F401
from support.daemon import REPO, child_env, child_pids

DEBIAN_PACKAGES = REPO / ".ci" / "debian-packages"
SCRIPT_NEEDS = ("sed",)  # what .ci/debian-packages runs besides sh builtins
DPKG_STATUS = Path("/var/lib/dpkg/status")
APT_LISTS = Path("/var/lib/apt/lists")


# ---------------------------------------------------------------- Debian packages

def packages_with_only(tmp_path: Path, *commands: str) -> list[str]:
    """What ``.ci/debian-packages --names`` asks for on a PATH that holds only the script's basics and
    ``commands`` (symlinks to the real ones)."""
    bin_dir = tmp_path / ("bin-" + "-".join(commands) if commands else "bin-bare")
    bin_dir.mkdir()
    for command in (*SCRIPT_NEEDS, *commands):
        real = shutil.which(command)
        assert real, f"{command} is needed on this machine for this check (make deps installs it)"
        (bin_dir / command).symlink_to(real)
    done = subprocess.run([str(DEBIAN_PACKAGES), "--names"], env={"PATH": str(bin_dir)}, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def owning_packages(*commands: str) -> set[str]:
    """The installed Debian packages that provide these commands here (none for a node from nvm or a tarball)."""
    owners = set()
    for command in commands:
        real = shutil.which(command)
        if real is None:
            continue
        found = subprocess.run(["dpkg-query", "-S", os.path.realpath(real)], capture_output=True, text=True,
                               timeout=30)
        for line in found.stdout.splitlines() if found.returncode == 0 else []:  # "pkg[:arch][, ...]: path"
            owners |= {name.strip().split(":")[0] for name in line.split(": ", 1)[0].split(",")}
    return owners


def dpkg_status_without(packages: set[str], out: Path) -> Path:
    """A copy of this machine's dpkg status in which ``packages`` are not installed."""
    stanzas = DPKG_STATUS.read_text(encoding="utf-8").strip("\n").split("\n\n")
    kept = [s for s in stanzas if re.match(r"Package: (\S+)", s).group(1) not in packages]
    out.write_text("\n\n".join(kept) + "\n", encoding="utf-8")
    return out


def simulate_install(packages: list[str], status: Path = DPKG_STATUS) -> subprocess.CompletedProcess:
    return subprocess.run(["apt-get", "install", "--simulate", "--no-install-recommends",
                           "-o", f"Dir::State::status={status}", *packages],
                          capture_output=True, text=True, timeout=180, env={**os.environ, "LC_ALL": "C"})


def test_apt_lists_resolve_with_and_without_node(tmp_path):
    """The list ``make deps`` installs resolves with no conflict, whether node is there (a vendor Node.js that
    bundles npm: never Debian's nodejs or npm) or missing (Debian's nodejs and npm, together)."""
    assert shutil.which("apt-get"), "this check needs Debian's apt-get"
    recipe = subprocess.run(["make", "-n", "apt"], cwd=REPO, capture_output=True, text=True, timeout=30).stdout
    assert '"$(.ci/debian-packages --names)"' in recipe and "apt-get install" in recipe, recipe
    assert any(APT_LISTS.glob("*_Packages*")), "apt has no package lists here: run apt-get update (make apt does)"

    missing_all = packages_with_only(tmp_path)
    assert {"nodejs", "npm"} <= set(missing_all), missing_all
    assert {"xvfb", "x11-apps", "xdotool", "prometheus", "ffmpeg", "mosquitto-clients"} <= set(missing_all), missing_all
    with_node = packages_with_only(tmp_path, "node", "npm")
    assert "nodejs" not in with_node and "npm" not in with_node, with_node
    assert set(with_node) == set(missing_all) - {"nodejs", "npm"}

    resolved = simulate_install(with_node)
    assert resolved.returncode == 0, f"apt-get install --simulate {' '.join(with_node)}:\n{resolved.stdout[-3000:]}" \
                                     f"\n{resolved.stderr[-3000:]}"
    no_node = dpkg_status_without(owning_packages("node", "npm"), tmp_path / "status")
    resolved = simulate_install(missing_all, no_node)
    assert resolved.returncode == 0, f"apt-get install --simulate {' '.join(missing_all)}:\n{resolved.stdout[-3000:]}" \
                                     f"\n{resolved.stderr[-3000:]}"
    assert re.search(r"^Inst nodejs ", resolved.stdout, re.M) and re.search(r"^Inst npm ", resolved.stdout, re.M)


def test_npm_ci_leaves_a_zeromq_binding_that_loads(tmp_path, node_example):  # noqa: F811
    """npm 11 blocks install scripts by default; zeromq must still load its native binding (it ships one
    prebuilt), both after a fresh ``npm ci`` from the lock file and in examples/node."""
    fresh = tmp_path / "node"
    fresh.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(node_example / name, fresh / name)
    done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=fresh, capture_output=True, text=True,
                          timeout=200)
    assert done.returncode == 0, f"npm ci failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    load = "const zmq = require('zeromq'); const s = new zmq.Subscriber(); s.close(); console.log(zmq.version)"
    for folder in (fresh, node_example):
        loaded = subprocess.run(["node", "-e", load], cwd=folder, capture_output=True, text=True, timeout=60)
        assert loaded.returncode == 0, f"zeromq does not load in {folder}:\n{loaded.stderr[-2000:]}"
        assert re.fullmatch(r"\d+\.\d+\.\d+", loaded.stdout.strip()), loaded.stdout


# ---------------------------------------------------------------- the wheel outside the checkout

@dataclass
class WheelVenv:
    wheel: Path
    venv: Path
    elsewhere: Path  # a working directory with nothing of the checkout in it
    env: dict[str, str]

    @property
    def emotiond(self) -> str:
        return str(self.venv / "bin" / "emotiond")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def run(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(list(command), cwd=self.elsewhere, env=self.env, capture_output=True, text=True,
                              timeout=timeout)


def checkout_copy(out: Path) -> Path:
    """The checkout as a fresh clone plus local changes would have it (tracked and untracked files, nothing
    ignored), so building never writes build/ or egg-info into the working tree."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, out / name)
    return out


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WheelVenv]:
    """The wheel built from the checkout, installed into a new venv that borrows the dev venv's dependencies.

    A path line in a .pth file is appended to sys.path, but .pth files inside that folder are not processed, so
    the dev venv's editable-install finder stays off and ``emotiond`` can only come from the wheel. The wheel
    is installed before the .pth exists, so pip never sees the dev venv's emotiond. The build is isolated, as
    ``pip install .`` does it (pip takes setuptools from its cache, filled by ``make venv``).
    """
    root = tmp_path_factory.mktemp("wheel")
    source = checkout_copy(root / "src")
    dist = root / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", str(dist), str(source)], capture_output=True,
                           text=True, timeout=150)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = dist.glob("emotiond-*.whl")

    venv = root / "venv"
    base_python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([str(base_python), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=30)
    installed = subprocess.run([*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps",
                                "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=90)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path("
                                "'purelib'))"], capture_output=True, text=True, check=True).stdout.strip())
    (site / "emotiond-dev-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")

    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    env = child_env(root / "runtime", PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "EMOTIOND_CONFIG", "PYTHONSTARTUP"):
        env.pop(name, None)
    yield WheelVenv(wheel, venv, elsewhere, env)


def test_wheel_ships_config_and_no_tests(wheel_venv):
    """Run-time files ship as package data, the repo's config/ is their source, and tests stay out."""
    names = zipfile.ZipFile(wheel_venv.wheel).namelist()
    tracked = subprocess.run(["git", "ls-files", "config"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked
    missing = {f"emotiond/{name}" for name in tracked} - set(names)
    assert not missing, sorted(missing)
    assert "emotiond/benchmarks/fer_baseline.py" in names
    assert not [n for n in names if re.search(r"(^|/)(tests?|conftest|examples|\.ci)(/|\.py$)", n)], names


def test_wheel_imports_from_the_venv_not_the_checkout(wheel_venv):
    shown = wheel_venv.run(wheel_venv.python, "-c", "import emotiond, emotiond.core.settings as s; "
                           "print(emotiond.__file__); print(s.shipped_config('messages.json'))")
    assert shown.returncode == 0, shown.stderr
    module, messages = (Path(line) for line in shown.stdout.split())
    assert module.is_relative_to(wheel_venv.venv), module
    assert messages.is_relative_to(wheel_venv.venv) and messages.is_file(), messages
    assert not str(module).startswith(str(REPO) + os.sep)


def test_wheel_runs_the_demo_from_another_directory(wheel_venv):
    """``make demo``, from the installed program: every frame of the demo comes out as an event."""
    daemon = subprocess.Popen([wheel_venv.emotiond, "run", "--source", "demo", "--metrics-port", "0"],
                              cwd=wheel_venv.elsewhere, env=wheel_venv.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        events = wheel_venv.run(wheel_venv.emotiond, "events", "--until-eos", "--timeout", "120", timeout=150)
        assert daemon.wait(60) == 0
    finally:
        if daemon.poll() is None:  # its children too: the daemon runs in a session of its own
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(10)
    log = daemon.stdout.read()
    assert events.returncode == 0, events.stderr[-2000:] + log[-3000:]
    results = [json.loads(line) for line in events.stdout.splitlines() if line.strip()]
    assert sorted(r["seq"] for r in results) == list(range(300)), log[-3000:]
    assert sum(len(r["faces"]) for r in results) > 300


def test_wheel_commands_and_shipped_files_work_from_another_directory(wheel_venv):
    for command in (("view", "--help"), ("bench", "--help"), ("config", "show")):
        done = wheel_venv.run(wheel_venv.emotiond, *command)
        assert done.returncode == 0, f"emotiond {' '.join(command)}:\n{done.stderr[-2000:]}"
    assert "[bus]" in done.stdout, done.stdout

    architectures = wheel_venv.run(wheel_venv.emotiond, "train", "--list-architectures")
    assert architectures.returncode == 0, architectures.stderr
    assert "mini_xception" in architectures.stdout.replace("-", "_"), architectures.stdout

    # A preset by name: an unknown key makes the loaded preset name itself in the error, before any training.
    preset = wheel_venv.run(wheel_venv.emotiond, "train", "--config", "fer2013-cnn4", "--set", "train.nonsense=1")
    assert preset.returncode == 2, preset.stderr
    expected = f"{wheel_venv.venv}/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages/" \
               "emotiond/config/training/fer2013-cnn4.toml: train.nonsense: unknown key"
    assert expected in preset.stderr, preset.stderr

    loaded = wheel_venv.run(wheel_venv.python, "-c", "from importlib.resources import files; "
                            "from emotiond.clients.messages import load_messages; print(len(load_messages())); "
                            "print((files('emotiond.benchmarks') / 'fer_baseline.py').is_file())")
    assert loaded.returncode == 0, loaded.stderr
    count, baseline = loaded.stdout.split()
    shipped = json.loads((REPO / "config" / "messages.json").read_text(encoding="utf-8"))
    assert int(count) == len(shipped) and baseline == "True", loaded.stdout


# ---------------------------------------------------------------- process names

RESOURCE_TRACKER = "from multiprocessing.resource_tracker import main"


def test_ps_names_every_process_after_its_role(start_daemon, default_model):
    """Without titles, every child is ``python3 -c from multiprocessing.spawn import spawn_main...``."""
    daemon = start_daemon("--source", "demo", "--loop", workers=2)
    daemon.wait_ready(2)
    assert command_line(daemon.process.pid) == "emotiond: supervisor"
    titles = {name: command_line(pid) for name, pid in child_pids(daemon).items()}
    assert titles == {"proxy": "emotiond: proxy", "capture": "emotiond: capture", "w1": "emotiond: worker w1",
                      "w2": "emotiond: worker w2", "history": "emotiond: history"}
    # Python's own resource tracker, which the spawn context starts, runs no emotiond code and keeps its command.
    unnamed = {pid: title for pid in descendants(daemon.process.pid) if (title := command_line(pid)) is not None
               and not title.startswith("emotiond: ") and RESOURCE_TRACKER not in title}
    assert not unnamed, unnamed
    assert daemon.stop() == 0


def test_wheel_claims_one_import_name_and_installs_beside_python_daemon(wheel_venv):
    """Installed, the project is ``emotiond`` alone, so python-daemon's ``daemon`` package still imports."""
    names = zipfile.ZipFile(wheel_venv.wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"emotiond"}, top_level
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", wheel_venv.python]
    installed = subprocess.run([*pip, "install", "-q", "python-daemon"], capture_output=True, text=True, timeout=200)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    both = wheel_venv.run(wheel_venv.python, "-c", "import daemon, emotiond.core.settings as s; "
                          "print(daemon.DaemonContext.__module__, s.DEFAULT_MODEL_NAME)")
    assert both.returncode == 0, both.stderr
    assert both.stdout.split() == ["daemon.daemon", "fer-mini-xception"]
