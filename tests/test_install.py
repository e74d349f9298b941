"""`pip install segearth` brings what the code imports. Every third-party module that segearth/,
app/, train/, tests/ and benchmarks/ import is declared in pyproject.toml, in the core or in the
extra that installs that part of the code; every declared range admits the exact pin in
requirements.txt (what CI and the Space install); and the wheel, installed alone into a fresh
virtual environment, holds the whole package and runs the `segearth` command."""
from __future__ import annotations

import ast
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Mapping
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PROJECT = "segearth"
#: Where each part of the code gets its packages besides the core: the extra that installs it.
#: The longest matching prefix wins; the rest of segearth/ is the core library and CLI.
AREAS: dict[str, str] = {
    "segearth/notebook.py": "notebook",
    "segearth/training/": "training",
    "train/": "training",
    "app/": "app",
    "app.py": "app",
    "tests/": "tests",
    "benchmarks/": "tests",
}
#: Optional packages the core imports only inside the function that needs them, and their extra:
#: int8/int4 weights on a GPU, and `segearth eval` under `accelerate launch`.
OPTIONAL_IN_CORE = {"bitsandbytes": "gpu", "accelerate": "training"}
FIRST_PARTY = {"segearth", "app", "train", "tests", "benchmarks", "__future__"}


def declared(pyproject: Path = REPO / "pyproject.toml") -> dict[str, dict[str, Requirement]]:
    """Requirements by group ("" = core, else the extra's name), an extra that names the
    project's own extras (`segearth[app,...]`) holding theirs too."""
    project = tomllib.loads(pyproject.read_text())["project"]
    raw = {"": project.get("dependencies", []), **project.get("optional-dependencies", {})}

    def expand(group: str) -> dict[str, Requirement]:
        found: dict[str, Requirement] = {}
        for line in raw[group]:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == PROJECT:
                for extra in requirement.extras:
                    found |= expand(extra)
            else:
                found[canonicalize_name(requirement.name)] = requirement
        return found

    return {group: expand(group) for group in raw}


def pins(requirements: Path = REPO / "requirements.txt") -> dict[str, str]:
    """requirements.txt as {distribution: exact version}."""
    found = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier  # one `==` per line
            assert spec.operator == "==", line
            found[canonicalize_name(requirement.name)] = spec.version
    return found


def imports(path: Path) -> dict[str, bool]:
    """Third-party top-level modules `path` imports, each with whether every import of it is
    deferred (inside a function). Not the standard library, the project, or a module beside
    `path` (tests/ and benchmarks/ import their helpers so)."""
    tree = ast.parse(path.read_text())
    deferred = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                for n in ast.walk(f)}
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        else:
            continue
        for name in (n.split(".")[0] for n in names):
            if name in sys.stdlib_module_names or name in FIRST_PARTY or (path.parent / f"{name}.py").exists():
                continue
            found[name] = found.get(name, True) and id(node) in deferred
    return found


def area(relative: str) -> str:
    """The extra that installs the file at `relative` (a POSIX path), "" for the core."""
    matches = [prefix for prefix in AREAS if relative == prefix or relative.startswith(prefix)]
    return AREAS[max(matches, key=len)] if matches else ""


def undeclared(root: Path, groups: Mapping[str, Mapping[str, Requirement]],
               distributions: Mapping[str, list[str]]) -> list[str]:
    """One line for each import under `root` that its area's install would not bring: a module no
    installed distribution provides, or one whose distribution is declared in neither the core nor
    the area's extra (an optional core import: in its extra, and only inside a function)."""
    problems = []
    for path in sorted(p for top in ("segearth", "app", "train", "tests", "benchmarks", "app.py")
                       for p in ((root / top).rglob("*.py") if (root / top).is_dir() else [root / top])
                       if p.is_file()):
        relative = path.relative_to(root).as_posix()
        extra = area(relative)
        for module, only_deferred in imports(path).items():
            names = {canonicalize_name(d) for d in distributions.get(module, [])}
            if not names:
                problems.append(f"{relative}: {module} (no installed distribution provides it)")
                continue
            allowed = set(groups[""]) | set(groups.get(extra, {}))
            if extra == "" and module in OPTIONAL_IN_CORE and only_deferred:
                allowed |= set(groups.get(OPTIONAL_IN_CORE[module], {}))
            if not names & allowed:
                where = f"the core or [{extra}]" if extra else "the core"
                problems.append(f"{relative}: {module} ({'/'.join(sorted(names))} not declared in {where})")
    return problems


def test_every_third_party_import_is_declared_where_its_code_is_installed():
    assert undeclared(REPO, declared(), importlib.metadata.packages_distributions()) == []


def test_an_undeclared_import_is_reported(tmp_path):
    """The check above can fail: an app package imported by the core library, an optional package
    imported at module level in the core, a module nothing provides."""
    (tmp_path / "segearth").mkdir()
    (tmp_path / "app").mkdir()
    (tmp_path / "segearth" / "core.py").write_text(
        "import numpy\nimport gradio\nimport bitsandbytes\nimport no_such_module_anywhere\n")
    (tmp_path / "segearth" / "quantize.py").write_text("def load():\n    import bitsandbytes\n")
    (tmp_path / "app" / "ui.py").write_text("import gradio\nfrom numpy import zeros\n")
    groups = {"": {"numpy": Requirement("numpy")}, "app": {"gradio": Requirement("gradio")},
              "gpu": {"bitsandbytes": Requirement("bitsandbytes")}}
    distributions = {"numpy": ["numpy"], "gradio": ["gradio"], "bitsandbytes": ["bitsandbytes"]}
    assert undeclared(tmp_path, groups, distributions) == [
        "segearth/core.py: gradio (gradio not declared in the core)",
        "segearth/core.py: bitsandbytes (bitsandbytes not declared in the core)",
        "segearth/core.py: no_such_module_anywhere (no installed distribution provides it)",
    ]


def test_every_declared_range_admits_the_pin_ci_and_the_space_install():
    pinned = pins()
    for group, requirements in declared().items():
        for name, requirement in requirements.items():
            assert name in pinned, f"{name} ([{group}]) is not pinned in requirements.txt"
            assert requirement.specifier.contains(pinned[name], prereleases=True), \
                f"{requirement} ([{group}]) does not admit requirements.txt's {name}=={pinned[name]}"


def core_closure() -> set[str]:
    """The core's distributions and everything they require, transitively, without extras."""
    todo = list(declared()[""].values())
    found = {PROJECT}
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in found or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        found.add(name)
        try:
            todo += [Requirement(line) for line in importlib.metadata.requires(name) or []]
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


#: A module for the fresh environment's start-up (a .pth line imports it): the path finder finds
#: no module that only an extra's distribution provides, and no metadata but the core's, as in an
#: install of the core alone.
BLOCKER = """import re
import sys
from importlib.machinery import PathFinder
BLOCKED = frozenset({blocked!r})
CORE = frozenset({core!r})
class CoreOnly:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return None if name.partition(".")[0] in BLOCKED else PathFinder.find_spec(name, path, target)
    @classmethod
    def find_distributions(cls, *args, **kwargs):
        return (d for d in PathFinder.find_distributions(*args, **kwargs)
                if re.sub(r"[-_.]+", "-", d.metadata["Name"] or "").lower() in CORE)
    @classmethod
    def invalidate_caches(cls):
        PathFinder.invalidate_caches()
sys.meta_path[sys.meta_path.index(PathFinder)] = CoreOnly
"""


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run outside the source tree, with no PYTHONPATH, so nothing but the install is imported."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done


def test_the_wheel_alone_in_a_fresh_environment_runs_the_command(tmp_path):
    """Build the wheel from a copy of the source (no download: setuptools from this environment),
    install it without dependencies into a fresh virtual environment that sees this environment's
    packages through a .pth file, less those only the extras bring, and run `segearth --help`
    there: the core alone runs the command, the package comes from the wheel, holds every module and data file of the source, and its declared requirements are met."""
    source = tmp_path / "source"
    shutil.copytree(REPO / PROJECT, source / PROJECT, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", source)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "-w", tmp_path / "dist", source, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob(f"{PROJECT}-*.whl")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                    cwd=tmp_path).stdout.strip())
    outer = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "outer_environment.pth").write_text("".join(f"{path}\n" for path in outer))
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel,
        cwd=tmp_path)

    closure = core_closure()
    blocked = sorted(module for module, names in importlib.metadata.packages_distributions().items()
                     if not {canonicalize_name(n) for n in names} & closure)
    (site / "core_only.py").write_text(BLOCKER.format(blocked=blocked, core=sorted(closure)))
    (site / "core_only.pth").write_text("import core_only\n")
    assert "gradio" in blocked
    refused = subprocess.run([python, "-c", "import gradio"], cwd=tmp_path, capture_output=True, text=True)
    assert "No module named 'gradio'" in refused.stderr  # the core alone, in force

    help_text = run(venv / "bin" / PROJECT, "--help", cwd=tmp_path).stdout  # with the core alone
    assert all(command in help_text for command in ("predict", "eval", "redundancy", "convert"))
    found = f"import importlib.util; print(importlib.util.find_spec('{PROJECT}').origin)"  # no import
    package = Path(run(python, "-c", found, cwd=tmp_path).stdout.strip()).parent
    assert package == site / PROJECT  # the wheel's copy, not the source tree's
    installed = {p.relative_to(package) for p in package.rglob("*") if "__pycache__" not in p.parts}
    packaged = {p.relative_to(REPO / PROJECT) for p in (REPO / PROJECT).rglob("*.py")
                if "__pycache__" not in p.parts}
    for name, patterns in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
            "package-data"].items():
        folder = REPO.joinpath(*name.split("."))
        packaged |= {p.relative_to(REPO / PROJECT) for pattern in patterns for p in folder.glob(pattern)
                     if p.is_file()}
    assert packaged - installed == set()

    with zipfile.ZipFile(wheel) as archive:
        metadata = next(archive.read(n).decode() for n in archive.namelist()
                        if n.endswith(".dist-info/METADATA"))
    extras = [""] + [line.split(":", 1)[1].strip() for line in metadata.splitlines()
                     if line.startswith("Provides-Extra:")]
    assert set(extras) == set(declared())
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.split(":", 1)[1].strip())
        if canonicalize_name(requirement.name) == PROJECT:
            continue
        version = importlib.metadata.version(requirement.name)
        assert requirement.specifier.contains(version, prereleases=True), \
            f"the wheel requires {requirement}; this environment has {version}"
