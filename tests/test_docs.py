"""README.md and docs/*.md name only what exists, and a figure quoted twice says the same thing.

A newcomer copies names from the docs into a notebook or a shell; a name that is not there (a
renamed method, a moved module, a dropped flag) costs them an afternoon. So every name below is
checked against the code, not against a list:

* **segearth and app names**: ``segearth.x.y`` or ``app.x.y`` anywhere in the text imports the longest module prefix and
  finds the rest as attributes (a class's attributes as for ``Class.attr`` below), unless it is a
  logger name the code passes to ``logging.getLogger``.
* **imports**: ``from segearth... import a, b`` lines: the module imports and has each name.
* **constants**: ALL_CAPS names with an underscore in code (``MAP_MAX_SIZE``,
  ``SEGEARTH_PRECISION``) are spelled in the repository's code, except ``NAME=value`` (another
  program's environment variable) and a placeholder after a flag (``--flag PATH_OR_URL``).
* **Class.attr** in code (inline or fenced) where ``Class`` is defined in this repository
  (segearth/, app/, train/, benchmarks/, scripts/): ``attr`` is a method, property, class
  attribute, dataclass or settings field, or an attribute a method assigns to ``self``, of the
  class or one of its bases (bases from other libraries are asked at run time). Classes from other
  libraries (``Image.fromarray``) are not checked.
* **command lines**: ``segearth CMD ...`` / ``python -m segearth CMD ...``: ``CMD`` is a
  sub-command of ``segearth.cli.build_parser()`` and every ``-f``/``--flag`` one of its options.
  ``python path/to/script.py ... --flag`` and ``python -m package ...`` (a package of this
  repository): every flag is spelled as a string in that script's or package's source. A flag on
  its own in inline code (```--tiled```) is spelled as a string somewhere in the repository's code.
* **paths**: text that starts with a top-level entry of the repository (``segearth/``, ``tests/``,
  ...) names something that exists (a glob matches something); a relative link ``[..](x.md#a)``
  points to an existing file and, with ``#a``, to one of its headings (GitHub's anchors).

**Figures: the rule.** (1) *Tables*: two table rows anywhere in README.md and docs/ with the same
header row and the same first cell must agree in every cell (a table copied into a second doc
cannot drift). (2) *Figures quoted in prose in more than one place* are registered in
``FIGURES`` with the patterns that find each quotation: every quotation must be the registered
value, rounded to as many decimals as the quotation shows (0.4 s quotes 0.40 s). A registered
figure that no pattern finds any more fails too: update the registry when a sentence is rewritten
or a figure is measured again. When a figure is quoted in a second place, add it here.

The checker's own tests plant wrong names and figures in a doc string and expect each reported.
"""
from __future__ import annotations

import ast
import functools
import importlib
import re
import shlex
import subprocess
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: Where the repository's Python code lives (classes, flags, logger names).
CODE_DIRS = ("segearth", "app", "train", "benchmarks", "scripts")


@dataclass(frozen=True)
class Figure:
    """One figure quoted in more than one place; each pattern's group ``v`` is a quotation."""

    name: str
    value: str
    patterns: tuple[str, ...]


FIGURES = (
    Figure("released model, 2-core CPU, fp32: time to the first mask (s)", "12.12", (
        r"fp32: first question \(set_image \+ predict\)\s+(?P<v>[\d.]+) [\d.]+x",
        r"mask takes (?P<v>[\d.]+) s in fp32",
        r"\| (?P<v>[\d.]+) s in fp32, [\d.]+ s in bf16",
        r"takes (?P<v>[\d.]+) s to the mask of a\s+new image on a 2-core CPU in fp32",
        r"\(6\.2 s of fp32's (?P<v>[\d.]+) s")),
    Figure("released model, 2-core CPU, bf16: time to the first mask (s)", "6.14", (
        r"bf16: first question \(set_image \+ predict\)\s+(?P<v>[\d.]+) [\d.]+x",
        r"fp32 \(the default there\) and\s+(?P<v>[\d.]+) s in bf16",
        r"s in fp32, (?P<v>[\d.]+) s in bf16")),
    Figure("the authors' pipeline on the same CPU: mask and answer (s)", "30.91", (
        r"baseline = mean of uncached questions 2-3: (?P<v>[\d.]+) s",
        r"the authors' pipeline: (?P<v>[\d.]+) s")),
    Figure("released model, 2-core CPU, fp32: decoding (ms a token)", "225", (
        r"\((?P<v>\d+) ms a token\) \*same CPU\*",
        r"decoding \((?P<v>\d+) ms a\s+token in fp32",
        r"instead of (?P<v>\d+) ms, so a 32-token answer")),
    Figure("released model, 2-core CPU, fp32: peak memory (GiB)", "8.1", (
        r"`auto` = fp32 \((?P<v>[\d.]+) GiB peak\)",
        r"fp32\s+model's (?P<v>[\d.]+) GiB peak",
        r"\*\*(?P<v>[\d.]+) GiB, missed\*\*")),
    Figure("H200, bf16: time to the mask of a new image (s)", "0.40", (
        r"\| bf16 \(`auto`\) \| (?P<v>[\d.]+) s \|",
        r"\| (?P<v>[\d.]+) s \*measured on a whole H200\*, plus",
        r"on an H200 the mask took (?P<v>[\d.]+) s")),
    Figure("H200, bf16: a 32-token answer after the mask (s)", "3.51", (
        r"\| bf16 \(`auto`\) \| [\d.]+ s \| (?P<v>[\d.]+) s \|",
        r"\| (?P<v>[\d.]+) s \*measured on a whole H200\* \|",
        r"32 answer tokens\s+(?P<v>[\d.]+) s")),
    Figure("what set_image keeps, released model in bf16 (MB)", "108", (r"(?P<v>\d+) MB in bf16",)),
    Figure("H200: carrying the image's state out of a call and back (ms)", "390", (
        r"(?P<v>\d+)\s+ms(?:\s+on an H200)?,?\s+against \d+\s+ms to encode",)),
    Figure("H200: encoding the image again (ms)", "150", (r"against (?P<v>\d+)\s+ms to encode",)),
)


# --- reading markdown ---------------------------------------------------------------------------
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_SPAN = re.compile(r"`([^`\n]+)`")


def code_pieces(text: str) -> list[str]:
    """Fenced blocks and inline code spans: where names, commands and flags are written."""
    fenced = _FENCE.findall(text)
    return fenced + _SPAN.findall(_FENCE.sub("", text))


def _lines(pieces: list[str]) -> list[str]:
    return [line for piece in pieces for line in piece.splitlines()]


# --- what the code defines ----------------------------------------------------------------------
def _python_files() -> list[Path]:
    return [p for d in CODE_DIRS for p in (REPO / d).rglob("*.py")]


@functools.cache
def _sources() -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in _python_files()}


@functools.cache
def logger_names() -> frozenset[str]:
    pattern = re.compile(r"getLogger\(\s*[\"']([\w.]+)[\"']")
    return frozenset(name for text in _sources().values() for name in pattern.findall(text))


@functools.cache
def flags_in_code() -> frozenset[str]:
    """Every ``--flag`` spelled as a string literal in the repository's code."""
    pattern = re.compile(r"[\"'](--?[A-Za-z][\w-]*)[\"']")
    return frozenset(flag for text in _sources().values() for flag in pattern.findall(text))


@dataclass
class ClassInfo:
    module: str
    bases: list[str]
    attributes: set[str]


def _class_info(node: ast.ClassDef, module: str) -> ClassInfo:
    attributes: set[str] = set()
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            attributes.add(item.name)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            attributes.add(item.target.id)
        elif isinstance(item, ast.Assign):
            attributes.update(t.id for t in item.targets if isinstance(t, ast.Name))
    for sub in ast.walk(node):  # self.x = ... in any method
        targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target] if isinstance(
            sub, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            for t in ast.walk(target):
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                    attributes.add(t.attr)
    bases = [ast.unparse(b).rsplit(".", 1)[-1].split("[")[0] for b in node.bases]
    return ClassInfo(module, bases, attributes)


@functools.cache
def class_index() -> dict[str, list[ClassInfo]]:
    """Classes defined in the repository's code, by name (a name may be defined twice)."""
    index: dict[str, list[ClassInfo]] = {}
    for path, text in _sources().items():
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                index.setdefault(node.name, []).append(_class_info(node, module))
    return index


def _runtime_has(info: ClassInfo, name: str, attr: str) -> bool:
    try:
        cls = getattr(importlib.import_module(info.module), name)
    except (ImportError, AttributeError):
        return False
    return hasattr(cls, attr)


def class_has(name: str, attr: str, seen: frozenset[str] = frozenset()) -> bool | None:
    """Whether repository class ``name`` has ``attr``; None when ``name`` is not ours."""
    infos = class_index().get(name)
    if not infos or name in seen:
        return None
    for info in infos:
        if attr in info.attributes:
            return True
        for base in info.bases:
            found = class_has(base, attr, seen | {name})
            if found or (found is None and base not in ("object", "Generic", "Protocol")
                         and _runtime_has(info, name, attr)):
                return True
    return False


# --- the checks: each returns a list of problems ------------------------------------------------
def _resolve(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name) and err.name.split(".")[0] in ("segearth", "app"):
                continue  # no such module: try the name as an attribute of its parent
            raise
        for i, attr in enumerate(parts[cut:]):
            if hasattr(obj, attr):
                obj = getattr(obj, attr)
            elif isinstance(obj, type) and class_has(obj.__name__, attr) and i == len(parts) - cut - 1:
                return True  # an instance attribute (a dataclass field, self.x)
            else:
                return False
        return True
    return False


_DOTTED = re.compile(r"(?<![\w./-])(?:segearth|app)(?:\.[A-Za-z_]\w*)+")
#: `app.py` and the like are files (the path check's business), not names.
_FILE_SUFFIXES = {"py", "md", "json", "html", "css", "js", "txt", "toml"}


def check_segearth_names(text: str) -> list[str]:
    names = {n for n in _DOTTED.findall(text) if n.rpartition(".")[2] not in _FILE_SUFFIXES}
    return [f"`{name}` does not exist" for name in sorted(names)
            if name not in logger_names() and not _resolve(name)]


_FROM_IMPORT = re.compile(r"^\s*from\s+(segearth[\w.]*)\s+import\s+\(?([\w\s,]+)\)?", re.M)


def check_imports(text: str) -> list[str]:
    problems = []
    for module_name, names in _FROM_IMPORT.findall("\n".join(code_pieces(text))):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            problems.append(f"`from {module_name} import ...`: no module {module_name}")
            continue
        for name in filter(None, (n.strip() for n in names.split(","))):
            name = name.split()[0]  # "x as y"
            if not hasattr(module, name):
                try:
                    importlib.import_module(f"{module_name}.{name}")
                except ModuleNotFoundError:
                    problems.append(f"`from {module_name} import {name}`: {module_name} has no {name}")
    return problems


_CONSTANT = re.compile(r"(?<![\w.$=-])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b(?!=)")


def check_constants(text: str) -> list[str]:
    """ALL_CAPS names in code (``BF16_MIN_IOU``, ``SEGEARTH_PRECISION``) are spelled somewhere in
    the repository's code; ``NAME=value`` (another program's environment variable) and a
    placeholder after a flag (``--mask2former PATH_OR_URL``) are not names."""
    code = "\n".join(_sources().values())
    names = {m[1] for piece in code_pieces(text) for m in _CONSTANT.finditer(piece)
             if not re.search(r"(?:^|\s)--?[\w-]+\s+$", piece[:m.start()])}
    return [f"`{name}` is not in the repository's code" for name in sorted(names)
            if not re.search(rf"\b{name}\b", code)]


_CLASS_ATTR = re.compile(r"(?<![\w.])([A-Z][A-Za-z0-9_]*)\.([A-Za-z_]\w*)")


def check_class_attributes(text: str) -> list[str]:
    pairs = {m.groups() for piece in code_pieces(text) for m in _CLASS_ATTR.finditer(piece)}
    return [f"`{cls}.{attr}`: {cls} has no {attr}" for cls, attr in sorted(pairs)
            if class_has(cls, attr) is False]


@functools.cache
def segearth_commands() -> dict[str, frozenset[str]]:
    """Each sub-command of ``segearth`` with its option strings; "" is the top level."""
    from segearth.cli import build_parser

    parser = build_parser()
    commands = {"": frozenset(s for a in parser._actions for s in a.option_strings)}
    for action in parser._actions:
        for name, sub in (getattr(action, "choices", None) or {}).items():
            if hasattr(sub, "_actions"):
                commands[name] = frozenset(s for a in sub._actions for s in a.option_strings)
    return commands


def _is_flag(token: str) -> bool:
    return token.startswith("-") and not re.match(r"-[\d.]", token) and token != "-"


def _check_segearth_command(args: list[str], line: str) -> list[str]:
    commands = segearth_commands()
    if not args or _is_flag(args[0]):
        allowed, name = commands[""], ""
    elif args[0] in commands:
        allowed, name = commands[args[0]] | commands[""], args[0]
    elif args[0].isupper():  # a placeholder: COMMAND
        allowed, name = frozenset().union(*commands.values()), args[0]
    else:
        return [f"`{line}`: segearth has no command {args[0]!r}"]
    return [f"`{line}`: `segearth {name}` has no option {flag}" for flag in
            (a.split("=")[0] for a in args if _is_flag(a)) if flag not in allowed]


def _with_imports(paths: list[Path]) -> str:
    """The source of ``paths`` and of every repository module they import, transitively: a
    script's options may be defined by the library module it calls (``train/train.py``)."""
    seen: set[Path] = set()
    while paths:
        path = paths.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [
                a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.split(".")[0] in CODE_DIRS:
                    base = REPO.joinpath(*name.split("."))
                    paths += [base.with_suffix(".py"), base / "__init__.py"]
    return "\n".join(p.read_text(encoding="utf-8") for p in seen)


def _script_source(token: str) -> str | None:
    path = REPO / token
    return _with_imports([path]) if path.is_file() else None


def check_commands(text: str) -> list[str]:
    problems = []
    for line in _lines(code_pieces(text)):
        line = line.strip().removeprefix("$ ")
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue  # not a shell line (unbalanced quotes in prose code)
        if len(tokens) == 1 and _is_flag(tokens[0]) or (tokens and _is_flag(tokens[0]) and len(tokens) == 2
                                                        and not _is_flag(tokens[1])):
            if tokens[0].split("=")[0] not in flags_in_code():  # `--flag` or `--flag VALUE` alone
                problems.append(f"`{line}`: no code in this repository has the option {tokens[0]}")
            continue
        for i, token in enumerate(tokens):
            if token in ("segearth", "segearth)") and (i == 0 or tokens[i - 1] in ("-m", "$(which", "nice")):
                problems += _check_segearth_command(tokens[i + 1:], line)
                break
            source = None
            if token.endswith(".py") and "/" in token:
                source = _script_source(token)
                if source is None:
                    break  # the path check reports it
            elif token == "-m" and i + 1 < len(tokens) and (REPO / tokens[i + 1]).is_dir():
                source = _with_imports(list((REPO / tokens[i + 1]).rglob("*.py")))
            if source is not None:
                start = i + (2 if token == "-m" else 1)
                for flag in (a.split("=")[0] for a in tokens[start:] if _is_flag(a)):
                    if f'"{flag}"' not in source and f"'{flag}'" not in source:
                        problems.append(f"`{line}`: {tokens[start - 1]} has no option {flag}")
                break
    return problems


@functools.cache
def _top_level_folders() -> tuple[str, ...]:
    """The repository's own top-level folders: tracked by git (not outputs such as test-artifacts/)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return tuple(sorted({line.split("/")[0] for line in tracked.splitlines() if "/" in line}))


def check_paths(text: str) -> list[str]:
    names = "|".join(re.escape(n) for n in _top_level_folders())
    pattern = re.compile(rf"(?<![\w./@:-])((?:{names})/[^\s`'\"()\[\],;:<>|]*)")
    problems = []
    for path in sorted(set(pattern.findall(text))):
        path = path.rstrip(".")
        if not any(REPO.glob(path.rstrip("/"))) and not (REPO / path).exists():
            problems.append(f"`{path}` is not in the repository")
    return problems


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#{1,6}\s+(.+)$", _FENCE.sub("", text), re.M)}


def check_links(text: str, folder: Path) -> list[str]:
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _FENCE.sub("", text)):
        if re.match(r"[a-z]+:", target):
            continue  # http:, mailto:
        file_part, _, anchor = target.partition("#")
        path = (folder / file_part).resolve() if file_part else None
        if path is not None and not path.exists():
            problems.append(f"link to {target}: {file_part} does not exist")
        elif anchor and (path is None or path.suffix == ".md"):
            linked = path.read_text(encoding="utf-8") if path is not None else text
            if anchor not in anchors(linked):
                problems.append(f"link to {target}: no heading with the anchor #{anchor}")
    return problems


def table_rows(text: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Every table row with its table's header: (header cells, row cells)."""
    rows, header = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            header = None
            continue
        cells = tuple(c.strip() for c in line.strip("|").split("|"))
        if header is None:
            header = cells
        elif not all(re.fullmatch(r":?-+:?", c) for c in cells):
            rows.append((header, cells))
    return rows


def check_tables(docs: dict[str, str]) -> list[str]:
    seen: dict[tuple, tuple[str, tuple[str, ...]]] = {}
    problems = []
    for doc, text in docs.items():
        for header, cells in table_rows(text):
            key = (header, cells[0])
            if key in seen and seen[key][1] != cells:
                problems.append(f"table row {cells[0]!r} under {' | '.join(header)!r}: {doc} says "
                                f"{' | '.join(cells[1:])!r}, {seen[key][0]} says {' | '.join(seen[key][1][1:])!r}")
            seen.setdefault(key, (doc, cells))
    return problems


def _same_figure(quoted: str, value: str) -> bool:
    decimals = len(quoted.partition(".")[2])
    return Decimal(value).quantize(Decimal(1).scaleb(-decimals)) == Decimal(quoted)


def check_figures(docs: dict[str, str], figures: tuple[Figure, ...] = FIGURES) -> list[str]:
    problems = []
    for figure in figures:
        found = 0
        for doc, text in docs.items():
            for pattern in figure.patterns:
                for match in re.finditer(pattern, text):
                    found += 1
                    if not _same_figure(match["v"].rstrip("."), figure.value):
                        problems.append(f"{doc} quotes {figure.name} as {match['v']}, registered {figure.value} "
                                        f"({match.group(0)!r})")
        if not found:
            problems.append(f"{figure.name}: no doc quotes it any more; update FIGURES in {Path(__file__).name}")
    return problems


def check_doc(text: str, folder: Path) -> list[str]:
    """Every name check on one doc's text (figures are checked across all docs)."""
    return (check_segearth_names(text) + check_imports(text) + check_class_attributes(text)
            + check_constants(text) + check_commands(text) + check_paths(text) + check_links(text, folder))


# --- the docs -----------------------------------------------------------------------------------
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_docs_name_only_what_exists(doc: Path) -> None:
    problems = check_doc(_read(doc), doc.parent)
    assert not problems, f"{doc.relative_to(REPO)}:\n  " + "\n  ".join(problems)


def test_figures_quoted_twice_agree() -> None:
    docs = {str(p.relative_to(REPO)): _read(p) for p in DOCS}
    problems = check_tables(docs) + check_figures(docs)
    assert not problems, "\n  ".join(["figures disagree:", *problems])


def test_readme_is_short() -> None:
    """A newcomer's page: the rest belongs in docs/ (issue 29)."""
    assert len(_read(REPO / "README.md").splitlines()) <= 160


# --- the checker itself: planted mistakes are found, real names are not -------------------------
GOOD = """
`segearth.checkpoints.load` and `segearth.Result`; `Predictor.from_pretrained` and `Result.found`.
`app.py` starts `app.ui.build_app`.
The run log goes to the logger `segearth.app.runs`.

```python
from segearth import Predictor, write_result
from segearth.pipelines import predict_geo
```

```bash
segearth predict scene.png -q "Where?" --tiled --bands 4,3,2 --out out/
python -m segearth eval --checkpoint C --dataset earthreason --root D
segearth --help
python benchmarks/first_mask.py --device cuda
OMP_NUM_THREADS=2 python -m train --config train/configs/demo.json --mask2former PATH_OR_URL
```

`SEGEARTH_PRECISION=int8` and `MAP_MAX_SIZE`.

`--min-region-px N` in `segearth/cli.py`, tests in `tests/app/`, [design](design.md#design-notes).
"""

BAD = {
    "module": "`segearth.no_such_module.thing`",
    "attribute": "`segearth.checkpoints.save_pretrained`",
    "app attribute": "`app.config.NoSuchSettings`",
    "class method": "`SegEarthR1.from_pretrained(folder)`",
    "constant": "`auto` follows `segearth.runtime`'s `BF16_AGREES_ON_NO_CPU`",
    "import": "```python\nfrom segearth import Predictor, NoSuchThing\n```",
    "import module": "```python\nfrom segearth.no_such import x\n```",
    "command": "```bash\nsegearth frobnicate scene.png\n```",
    "flag": "`segearth predict scene.png -q Where --no-such-flag`",
    "flag on its own": "`--no-such-flag-anywhere`",
    "script flag": "`python benchmarks/first_mask.py --no-such-flag`",
    "path": "see `segearth/no_such_file.py`",
    "vendor path": "Leaflet is in app/static/vendor/leaflet/leaflet.js",
    "link": "[speed](no_such_doc.md)",
    "anchor": "[design](design.md#no-such-heading)",
}


def test_checker_passes_real_names() -> None:
    assert check_doc(GOOD, REPO / "docs") == []


@pytest.mark.parametrize("kind", list(BAD))
def test_checker_finds_a_planted_wrong_name(kind: str) -> None:
    assert check_doc(GOOD + "\n" + BAD[kind] + "\n", REPO / "docs")  # GOOD alone has none


def test_checker_finds_disagreeing_figures() -> None:
    table = "| precision | time |\n|---|---|\n| bf16 | {} |\n"
    assert check_tables({"a.md": table.format("0.40 s"), "b.md": table.format("0.40 s")}) == []
    assert len(check_tables({"a.md": table.format("0.40 s"), "b.md": table.format("0.45 s")})) == 1

    figure = Figure("H200 mask", "0.40", (r"the mask took (?P<v>[\d.]+) s",))
    assert check_figures({"a.md": "the mask took 0.4 s"}, (figure,)) == []  # coarser, same figure
    assert len(check_figures({"a.md": "the mask took 0.5 s"}, (figure,))) == 1
    assert len(check_figures({"a.md": "nothing quoted"}, (figure,))) == 1  # the registry rotted

