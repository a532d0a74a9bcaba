"""The documentation stays true: README.md, docs/*.md and benchmarks/README.md are checked against the tree.

Each check reads the Markdown and compares what it names with what exists, without running anything:

- every relative link points at an existing file (or folder), and every `#anchor` at a heading of its target
  (GitHub's anchor rule: lower-case, punctuation dropped, spaces to dashes, `-1`, `-2` for repeated headings);
- every test named as `tests/...py::test_name` (and the `::other_test` shorthand that follows one in the same
  table cell or paragraph) is a function of that file (read from its AST, never imported);
- every repository path and every dotted `ml_batch....` name in inline code exists;
- every `make <target>` in a code block or in inline code is a target of the Makefile;
- every `ml-batch ...` command line (code blocks and inline code) names real subcommands and real options of
  the click command built from `ml_batch.cli.app`, and docs/cli.md's reference table lists every command and
  every option.

No database is needed.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import shlex
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", REPO / "benchmarks" / "README.md", *(REPO / "docs").glob("*.md")])
DOC_IDS = [str(p.relative_to(REPO)) for p in DOCS]
CLI_PAGE = REPO / "docs" / "cli.md"

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_TEST_REF = re.compile(r"(tests/[\w/]+\.py)?::(test_\w+)")
_REPO_PATH = re.compile(r"^(?:ml_batch|tests|dags|plugins|include|benchmarks|docs|\.ci)(?:/[\w.*<>-]+)*/?$")
_DOTTED = re.compile(r"^ml_batch(?:\.\w+)+$")
_MAKE = re.compile(r"(?:^|(?<=[\s`(;&|]))make[ \t]+([a-z][\w-]*)")
# `ml-batch` where a shell would run it: a line's start (after a `$ ` prompt), `$(`, `&&`, `||`, `;`, `|`, a
# backtick, or `# = ` (a comment that spells out a make target); never a mention in a layout or in prose.
_ML_BATCH = re.compile(r"(?:^[ \t]*(?:\$[ \t]+)?|\$\(|&&[ \t]*|\|\|?[ \t]*|;[ \t]*|`|#[ \t]*=[ \t]*)"
                       r"(?:[\w./-]*/)?ml-batch[ \t]+([^`|;&)#\n]*)")
_PLACEHOLDER = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class Line:
    """One line of a Markdown file, with whether it sits inside a fenced code block."""

    number: int
    text: str
    in_code: bool


def lines_of(path: Path) -> list[Line]:
    """Every line of `path`, marked as fenced code or prose (the fence lines themselves count as code)."""
    out: list[Line] = []
    fence: str | None = None
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        match = _FENCE.match(text)
        if fence is None and match:
            fence = match.group(1)
            out.append(Line(number, text, True))
        elif fence is not None:
            out.append(Line(number, text, True))
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                    and not text.strip()[len(match.group(1)):].strip():
                fence = None
        else:
            out.append(Line(number, text, False))
    return out


def code_blocks(path: Path) -> Iterator[Line]:
    """The lines inside fenced code blocks (fences excluded)."""
    for line in lines_of(path):
        if line.in_code and not _FENCE.match(line.text):
            yield line


def code_spans(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every inline code span of the prose."""
    for line in lines_of(path):
        if not line.in_code:
            for match in _CODE_SPAN.finditer(line.text):
                yield line.number, match.group(2).strip()


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: its rendered text, lower-case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)      # a link shows its text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text)
    kept = "".join(c for c in text.lower()
                   if unicodedata.category(c)[0] in "LMN" or c in "-_ " or unicodedata.category(c) == "Pc")
    return kept.replace(" ", "-")


@cache
def anchors_of(path: Path) -> frozenset[str]:
    """Every anchor GitHub gives the headings of a Markdown file (repeated ones get `-1`, `-2`, ...)."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for line in lines_of(path):
        match = None if line.in_code else _HEADING.match(line.text)
        if not match:
            continue
        base = anchor(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return frozenset(result)


def links_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, target) of every link and image of the prose (inline code spans are not links)."""
    for line in lines_of(path):
        if line.in_code:
            continue
        prose = _CODE_SPAN.sub("", line.text)
        for match in _LINK.finditer(prose):
            yield line.number, match.group(1)
        ref = _REF_LINK.match(prose)
        if ref:
            yield line.number, ref.group(1)


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    """The relative links of `path` whose file, or whose anchor in it, does not exist."""
    problems = []
    for number, target in links_of(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):      # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{_shown(path, root)}:{number}: {target}"
        if not dest.exists():
            problems.append(f"{where}: no such file {_shown(dest, root)}")
        elif fragment and dest.suffix != ".md":
            problems.append(f"{where}: an anchor into a file that is not Markdown")
        elif fragment and fragment not in anchors_of(dest):
            problems.append(f"{where}: no heading with anchor #{fragment} in {_shown(dest, root)}")
    return problems


@pytest.mark.parametrize("path", DOCS, ids=DOC_IDS)
def test_every_relative_link_points_at_an_existing_file_and_heading(path: Path) -> None:
    assert broken_links(path) == []


def test_the_anchor_rule_is_githubs() -> None:
    assert anchor("Odd values: category strings, NaN and ±Infinity") == "odd-values-category-strings-nan-and-infinity"
    assert anchor("Retention: `ml-batch prune`") == "retention-ml-batch-prune"
    assert anchor("Read-only analyst role: `ml-batch db grant-analyst ROLE`") == \
        "read-only-analyst-role-ml-batch-db-grant-analyst-role"
    assert anchor("Performance: realized and estimated") == "performance-realized-and-estimated"


def test_a_link_to_a_missing_heading_or_file_is_found(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# Top: `one` two\n\n## Top: one two\n")
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("# Here\n\n[ok](#here) [bad](#nowhere) [gone](missing.md) [up](../README.md#top-one-two-1)\n"
                    "[bad anchor](../README.md#nope) `[not a link](nowhere.md)`\n\n```\n[code](nowhere.md)\n```\n")
    assert broken_links(page, tmp_path) == [
        "docs/page.md:3: #nowhere: no heading with anchor #nowhere in docs/page.md",
        "docs/page.md:3: missing.md: no such file docs/missing.md",
        "docs/page.md:4: ../README.md#nope: no heading with anchor #nope in README.md",
    ]


# -- tests named by the docs ---------------------------------------------------------------------------------
def cells_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each table cell and each paragraph of the prose: the scope of `::name`."""
    paragraph: list[str] = []
    start = 0
    for line in [*lines_of(path), Line(0, "", False)]:
        if line.in_code or not line.text.strip() or line.text.lstrip().startswith("|"):
            if paragraph:
                yield start, " ".join(paragraph)
                paragraph = []
            if not line.in_code and line.text.lstrip().startswith("|"):
                for cell in re.split(r"(?<!\\)\|", line.text):
                    yield line.number, cell
            continue
        if not paragraph:
            start = line.number
        paragraph.append(line.text)


def named_tests(path: Path, root: Path = REPO) -> Iterator[tuple[int, str, str]]:
    """(line number, test file, test function) for every test the page names, shorthand resolved."""
    for number, cell in cells_of(path):
        current: str | None = None
        for match in _TEST_REF.finditer(cell):
            current = match.group(1) or current
            if current is None:
                raise AssertionError(f"{_shown(path, root)}:{number}: ::{match.group(2)} follows no test file")
            yield number, current, match.group(2)


@cache
def functions_of(test_file: Path) -> frozenset[str]:
    """The test functions of a file: module-level functions and methods of its classes."""
    tree = ast.parse(test_file.read_text())
    names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    return frozenset(names)


def missing_tests(path: Path, root: Path = REPO) -> list[str]:
    """The `tests/...py::test_name` references of `path` that name no existing test."""
    problems = []
    for number, file, name in named_tests(path, root):
        test_file = root / file
        if not test_file.is_file():
            problems.append(f"{_shown(path, root)}:{number}: no test file {file}")
        elif name not in functions_of(test_file):
            problems.append(f"{_shown(path, root)}:{number}: no test {name} in {file}")
    return problems


@pytest.mark.parametrize("path", DOCS, ids=DOC_IDS)
def test_every_test_the_docs_name_exists(path: Path) -> None:
    assert missing_tests(path) == []


def test_the_shorthand_is_read_against_the_last_file_of_its_cell(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test_one():\n    pass\n\nclass TestB:\n    def test_two(self):\n"
                                                 "        pass\n")
    page = tmp_path / "page.md"
    page.write_text("| `tests/test_a.py::test_one`, `::test_two`, `::test_three` | x |\n\n"
                    "See `tests/test_a.py::test_two` and\n`::test_four`; `tests/test_b.py::test_one`.\n")
    assert missing_tests(page, tmp_path) == ["page.md:1: no test test_three in tests/test_a.py",
                                             "page.md:3: no test test_four in tests/test_a.py",
                                             "page.md:3: no test file tests/test_b.py"]
    page.write_text("| `tests/test_a.py::test_one` | `::test_one` |\n")
    with pytest.raises(AssertionError, match="::test_one follows no test file"):
        missing_tests(page, tmp_path)


# -- paths and dotted names ------------------------------------------------------------------------------------
@cache
def _ignored_patterns() -> tuple[tuple[bool, str], ...]:
    """.gitignore's patterns as (negated, pattern): what git ignores is output (results, state), not source."""
    lines = (REPO / ".gitignore").read_text().splitlines()
    return tuple((line.startswith("!"), line.lstrip("!").rstrip("/")) for line in lines
                 if line.strip() and not line.startswith("#"))


def _is_output(text: str) -> bool:
    ignored = False
    for negated, pattern in _ignored_patterns():
        if fnmatch.fnmatch(text, pattern) or fnmatch.fnmatch(text.split("/")[0], pattern):
            ignored = not negated
    return ignored


def _path_exists(text: str) -> bool:
    pattern = _PLACEHOLDER.sub("*", text.rstrip("/"))
    if "*" in pattern:
        return any(REPO.glob(pattern))
    return (REPO / pattern).exists() or _is_output(pattern)


@cache
def schema_relations() -> frozenset[str]:
    """The tables (ml_batch/db/tables.py) and views (the migrations) of ml-batch's schema: `ml_batch.runs` in
    the docs is a table, not a module."""
    tables = re.findall(r"sa\.Table\(\s*\"(\w+)\"", (REPO / "ml_batch" / "db" / "tables.py").read_text())
    views = [name for migration in (REPO / "ml_batch" / "db" / "migrations" / "versions").glob("*.py")
             for name in re.findall(r"CREATE (?:OR REPLACE )?VIEW \{\w+\}\.(\w+)", migration.read_text())]
    return frozenset(tables + views)


def _module_defines(module: str, attribute: str) -> bool:
    """Whether `ml_batch` module `module` (a dotted name) defines or imports `attribute`, read from its AST."""
    base = REPO / Path(*module.split("."))
    source = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    if not source.is_file():
        return False
    if (base / attribute).is_dir() or (base / f"{attribute}.py").is_file():
        return True
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == attribute:
            return True
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == attribute for t in targets):
                return True
        if isinstance(node, ast.ImportFrom | ast.Import) and any(
                (a.asname or a.name.split(".")[0]) == attribute for a in node.names):
            return True
    return False


def dotted_name_exists(name: str) -> bool:
    """Whether `ml_batch.a.b.c` is a module, or a module's function, class or variable (one attribute deep);
    `ml_batch.<table>` is a table or view of ml-batch's schema."""
    parts = name.split(".")
    if len(parts) == 2 and parts[1] in schema_relations():
        return True
    if (REPO / Path(*parts)).is_dir() or (REPO / Path(*parts)).with_suffix(".py").is_file():
        return True
    for cut in range(len(parts) - 1, 0, -1):
        module, rest = parts[:cut], parts[cut:]
        if (REPO / Path(*module)).is_dir() or (REPO / Path(*module)).with_suffix(".py").is_file():
            return len(rest) <= 2 and _module_defines(".".join(module), rest[0])
    return False


def missing_names(path: Path) -> list[str]:
    """Repository paths and `ml_batch....` names in the inline code of `path` that do not exist."""
    problems = []
    for number, span in code_spans(path):
        if _REPO_PATH.match(span) and not _path_exists(span):
            problems.append(f"{path.relative_to(REPO)}:{number}: no such path {span}")
        elif _DOTTED.match(span) and not dotted_name_exists(span):
            problems.append(f"{path.relative_to(REPO)}:{number}: no such name {span}")
    return problems


@pytest.mark.parametrize("path", DOCS, ids=DOC_IDS)
def test_every_path_and_module_the_docs_name_exists(path: Path) -> None:
    assert missing_names(path) == []


def test_a_missing_path_or_name_is_found() -> None:
    assert _path_exists("ml_batch/db/sql/") and _path_exists("ml_batch/db/migrations/versions/")
    assert not _path_exists("ml_batch/resources/")
    assert dotted_name_exists("ml_batch.categories") and dotted_name_exists("ml_batch.jsonvalues.json_safe")
    assert not dotted_name_exists("ml_batch.lifecycle.RunLease")
    assert not dotted_name_exists("ml_batch.jsonvalues.no_such_function")
    assert dotted_name_exists("ml_batch.runs") and dotted_name_exists("ml_batch.quarantine_published")
    assert not dotted_name_exists("ml_batch.no_such_table")
    assert _path_exists("benchmarks/results/latest.json")            # written by `make bench`, ignored by git
    assert not _path_exists("benchmarks/results/backfill_baseline.jsonx")


# -- make targets ----------------------------------------------------------------------------------------------
@cache
def make_targets() -> frozenset[str]:
    """The targets the Makefile defines (rules and .PHONY names)."""
    targets: set[str] = set()
    for line in (REPO / "Makefile").read_text().splitlines():
        rule = re.match(r"^([A-Za-z0-9_.-]+(?:[ \t]+[A-Za-z0-9_.-]+)*)[ \t]*:(?!=)(.*)$", line)
        if not rule:
            continue
        if rule.group(1) == ".PHONY":
            targets.update(rule.group(2).split())
        else:
            targets.update(rule.group(1).split())
    return frozenset(targets)


def make_commands(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, target) of every `make <target>` in the code blocks and inline code of `path`."""
    for line in code_blocks(path):
        for match in _MAKE.finditer(line.text.split(" #")[0]):
            yield line.number, match.group(1)
    for number, span in code_spans(path):
        target = _MAKE.match(span) if span.startswith("make ") else None
        if target:
            yield number, target.group(1)


def unknown_make_targets(path: Path) -> list[str]:
    """The `make` targets `path` names that the Makefile does not define."""
    return [f"{path.relative_to(REPO)}:{number}: make {target}"
            for number, target in make_commands(path) if target not in make_targets()]


@pytest.mark.parametrize("path", DOCS, ids=DOC_IDS)
def test_every_make_target_the_docs_name_is_in_the_makefile(path: Path) -> None:
    assert unknown_make_targets(path) == []


def test_the_makefile_targets_are_read() -> None:
    assert {"demo", "test", "setup", "bench", "db-up", "db-down"} <= make_targets()
    assert "PYTHON" not in make_targets() and "nope" not in make_targets()


# -- ml-batch command lines ------------------------------------------------------------------------------------
# Typer builds its commands on the click it ships (`typer._click` in Typer 0.29), so the commands are read by
# what they have (subcommands, params) rather than by isinstance against a `click` import.
Command = Any


@cache
def cli() -> Command:
    """The click command behind `ml-batch`, built from the Typer app (nothing is run)."""
    import typer.main

    import ml_batch.cli

    command = typer.main.get_command(ml_batch.cli.app)
    assert _is_group(command)
    return command


def _is_group(command: Command) -> bool:
    return hasattr(command, "list_commands")


def _subcommand(group: Command, name: str) -> Command | None:
    return group.get_command(group.context_class(group), name)


def _subcommands(group: Command) -> list[str]:
    return list(group.list_commands(group.context_class(group)))


def _options(command: Command) -> dict[str, Any]:
    """Flag -> option of a command (`--help` included); a flag option takes no value."""
    options = {flag: param for param in command.params if param.param_type_name == "option"
               for flag in [*param.opts, *param.secondary_opts]}
    return options | {"--help": None}


def _takes_value(option: Any) -> bool:
    return option is not None and not (option.is_flag or option.count)


def _arguments(command: Command) -> float:
    return sum(float("inf") if p.nargs < 0 else p.nargs for p in command.params if p.param_type_name == "argument")


def _tokens(args: str) -> list[str]:
    args = args.replace("[", " ").replace("]", " ")
    try:
        words = shlex.split(args)
    except ValueError:
        words = args.split()
    kept = []
    for word in words:
        if word in {"...", "…"} or word.startswith(("...", "…")) or word in {"|", ">", "2>&1"}:
            break
        kept.append(word)
    return kept


def command_problems(words: list[str]) -> list[str]:
    """What is wrong with `ml-batch <words>`: an unknown subcommand, an option the command lacks, too many
    arguments. Option values are skipped (a flag takes none); nothing is executed."""
    command = cli()
    names = ["ml-batch"]
    positional = 0
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word.startswith("-") and word != "-":
            flag = word.split("=", 1)[0]
            options = _options(command)
            if flag not in options:
                return [f"{' '.join(names)} has no option {flag}"]
            if _takes_value(options[flag]) and "=" not in word:
                i += 1                                                      # its value
            continue
        if _is_group(command):
            if word.isupper():
                return []                       # a placeholder (`ml-batch COMMAND --help`): any subcommand
            sub = _subcommand(command, word)
            if sub is None:
                return [f"{' '.join(names)} has no subcommand {word!r}"]
            command, positional = sub, 0
            names.append(word)
            continue
        positional += 1
        if positional > _arguments(command):
            return [f"{' '.join(names)} takes no argument {word!r} here"]
    return []


def command_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, words after `ml-batch`) of every command line in code blocks and inline code."""
    for line in code_blocks(path):
        for match in _ML_BATCH.finditer(line.text):
            yield line.number, _tokens(match.group(1))
    for number, span in code_spans(path):
        command = _ML_BATCH.match(span)
        if command:
            yield number, _tokens(command.group(1))


def bad_command_lines(path: Path) -> list[str]:
    """The `ml-batch ...` command lines of `path` that name something the CLI does not have."""
    return [f"{path.relative_to(REPO)}:{number}: ml-batch {' '.join(words)}: {problem}"
            for number, words in command_lines(path) for problem in command_problems(words)]


@pytest.mark.parametrize("path", DOCS, ids=DOC_IDS)
def test_every_ml_batch_command_line_names_real_subcommands_and_options(path: Path) -> None:
    assert bad_command_lines(path) == []


def test_a_wrong_command_line_is_found() -> None:
    assert command_problems(_tokens("runs -m credit_default --limit 5")) == []
    assert command_problems(_tokens("runs cleanup [-m MODEL] [--stale-hours N] [--json]")) == []
    assert command_problems(_tokens("-v db grant-analyst analysts")) == []
    assert command_problems(_tokens("db frobnicate")) == ["ml-batch db has no subcommand 'frobnicate'"]
    assert command_problems(_tokens("train --model m --as_of 2026-01-01")) == ["ml-batch train has no option --as_of"]
    assert command_problems(_tokens("db url extra")) == ["ml-batch db url takes no argument 'extra' here"]
    assert command_problems(_tokens("COMMAND --help")) == []


def _leaf_commands(group: Command, prefix: str = "") -> Iterator[tuple[str, Command]]:
    """(full name, command) of every command a user runs; a group that runs on its own (`runs`) counts."""
    for name in _subcommands(group):
        sub = _subcommand(group, name)
        assert sub is not None
        full = f"{prefix}{name}"
        if _is_group(sub):
            if sub.invoke_without_command:
                yield full, sub
            yield from _leaf_commands(sub, f"{full} ")
        else:
            yield full, sub


def reference_rows(page: Path) -> dict[str, str]:
    """docs/cli.md's reference table: command (without its arguments) -> its `arguments and options` cell."""
    rows: dict[str, str] = {}
    in_table = False
    for line in lines_of(page):
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.text)[1:-1]] if not line.in_code else []
        if cells[:2] == ["command", "arguments and options"]:
            in_table = True
        elif in_table and cells and not set(cells[0]) <= set("-: "):
            words = cells[0].strip("`").split()
            rows[" ".join(w for w in words if not w.isupper())] = cells[1]
        elif in_table and not cells:
            in_table = False
    return rows


def test_the_cli_reference_lists_every_command_and_every_option() -> None:
    rows = reference_rows(CLI_PAGE)
    commands = dict(_leaf_commands(cli()))
    assert sorted(rows) == sorted(commands)
    missing = {}
    for name, command in commands.items():
        listed = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", rows[name]))
        declared = set(_options(command)) - {"--help"}
        if declared - listed or listed - declared:
            missing[name] = {"undocumented": sorted(declared - listed), "not options": sorted(listed - declared)}
    assert missing == {}
