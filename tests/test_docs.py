"""The documentation's commands still run.

Every ```bash / ```sh / ```console block of README.md, CHANGELOG.md and docs/**/*.md is read:
each `handseg` command is checked against the CLI (its subcommand and every option it is given,
by click's own description of the commands), each `python -m MODULE` and `python FILE` against
the tree, and every repository path the documents name, in blocks, in `inline code` and in
relative links, must exist. The cheap commands (`--help`, `--version`, `handseg models`, masks and
cut-outs of the example photos) then run for real, each in a temporary folder of its own. The
```python examples must parse, and every handseg name they import or use must exist.
"""

from __future__ import annotations

import ast
import glob
import importlib.util
import itertools
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from handseg_cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted(p for p in {ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md"),
                                 *(ROOT / "handseg_plugins").rglob("README.md")} if p.is_file())
SHELL = {"bash", "sh", "shell", "console"}
# The commands .ci/run checks, which the README must give as they are.
CI_COMMANDS = (
    "python -m pip install .",
    "handseg cutout examples/cards.jpg examples/hand.jpg -o out",
    'python -m pip install -e ".[dev]"',
    "python -m pytest",
)
README_MAX_LINES = 250
# Commands run for real: quick, offline, writing only under their own folder.
RUNNABLE = {"models", "mask", "cutout"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".avif"}


def tracked_top_level() -> set[str]:
    """The repository's top-level names (tracked ones where git can say, so that ignored folders
    such as runs/ or cache/ are not taken for repository paths), plus folders the docs may name
    before they exist."""
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, timeout=30)
        names = {line.split("/")[0] for line in listed.stdout.splitlines() if line}
    except (OSError, subprocess.SubprocessError):
        names = set()
    if not names:
        names = {p.name for p in ROOT.iterdir() if p.name not in {".venv", "runs", "cache", "out", ".git"}}
    return names | {"docs", "research", "CHANGELOG.md"}


TOP = tracked_top_level()


@dataclass(frozen=True)
class Command:
    document: Path
    line: int
    tokens: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    inline: bool = False

    def __str__(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}: {' '.join(self.tokens)}"


# --- reading the documents


def blocks(text: str):
    """(language, first line number, lines) of each fenced block."""
    lines = text.splitlines()
    k = 0
    while k < len(lines):
        match = re.match(r"^(\s*)(```|~~~)\s*([\w+-]*)", lines[k])
        if not match:
            k += 1
            continue
        indent, fence, language = match.groups()
        body, start = [], k + 2
        k += 1
        while k < len(lines) and not lines[k].strip().startswith(fence):
            body.append(lines[k][len(indent):] if lines[k].startswith(indent) else lines[k])
            k += 1
        yield language.lower(), start, body
        k += 1


def prose(text: str) -> str:
    """The text outside fenced blocks, line numbers kept (fenced lines blanked)."""
    out, fenced = [], False
    for line in text.splitlines():
        if re.match(r"^\s*(```|~~~)", line):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else line)
    return "\n".join(out)


def split_commands(source: str) -> list[list[str]]:
    lexer = shlex.shlex(source, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands, current = [], []
    for token in lexer:
        if token in {"&&", "||", ";", "|", "&", "(", ")", ";;"}:
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    return [c for c in commands if c]


def shell_lines(language: str, start: int, body: list[str]):
    """(line number, source) of each command line of a block, continuations joined."""
    k = 0
    while k < len(body):
        line, number = body[k], start + k
        if language == "console":
            if not line.lstrip().startswith("$ "):
                k += 1
                continue
            line = line.lstrip()[2:]
        while line.rstrip().endswith("\\") and k + 1 < len(body):
            k += 1
            line = line.rstrip()[:-1] + " " + body[k]
        k += 1
        if line.strip():
            yield number, line


def simple_command(document: Path, number: int, tokens: list[str], inline: bool = False) -> Command | None:
    while tokens and tokens[0] in {"do", "then", "else", "time", "exec"}:
        tokens = tokens[1:]
    if not tokens or tokens[0] in {"for", "done", "fi", "if", "while", "case", "esac"}:
        return None
    env = []
    while tokens and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[0]):
        name, _, value = tokens[0].partition("=")
        env.append((name, value))
        tokens = tokens[1:]
    if not tokens:
        return None
    return Command(document, number, tuple(tokens), tuple(env), inline)


def block_commands() -> list[Command]:
    found = []
    for document in DOCUMENTS:
        for language, start, body in blocks(document.read_text(encoding="utf-8")):
            if language not in SHELL:
                continue
            for number, line in shell_lines(language, start, body):
                for tokens in split_commands(line):
                    command = simple_command(document, number, tokens)
                    if command:
                        found.append(command)
    return found


def inline_spans() -> list[tuple[Path, int, str]]:
    spans = []
    for document in DOCUMENTS:
        for number, line in enumerate(prose(document.read_text(encoding="utf-8")).splitlines(), 1):
            for match in re.finditer(r"`([^`]+)`", line):
                spans.append((document, number, match.group(1)))
    return spans


def inline_commands() -> list[Command]:
    """`handseg SUBCOMMAND ...` and `python -m MODULE ...` written in the prose."""
    found = []
    for document, number, span in inline_spans():
        if not re.match(r"^(handseg [a-z]|python3? -m |python3? \S+\.py)", span):
            continue
        try:
            for tokens in split_commands(span):
                command = simple_command(document, number, tokens, inline=True)
                if command:
                    found.append(command)
        except ValueError:  # an unbalanced quote in prose: not a command
            continue
    return found


BLOCK_COMMANDS = block_commands()
INLINE_COMMANDS = inline_commands()
ALL_COMMANDS = BLOCK_COMMANDS + INLINE_COMMANDS


# --- paths and modules


def expand_braces(word: str) -> list[str]:
    match = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if not match:
        return [word]
    head, tail = word[:match.start()], word[match.end():]
    return list(itertools.chain.from_iterable(expand_braces(head + part + tail) for part in match.group(1).split(",")))


def repo_path(word: str) -> str | None:
    """`word` as a repository path (relative to the root), or None when it is not one."""
    word = word.strip("'\"()[],;:")
    if word.startswith("-") and "=" in word:
        word = word.split("=", 1)[1]
    if not word or any(c in word for c in "$<>~") or "..." in word or word.startswith(("/", "..", "http")):
        return None
    first = word.split("/")[0]
    if first not in TOP or first.startswith("."):
        return None
    if first == word and "." not in word and not (ROOT / word).is_dir() and first not in {"docs", "research"}:
        return None
    return word.rstrip(".")


def path_exists(path: str) -> bool:
    if any(c in path for c in "*?["):
        return bool(glob.glob(str(ROOT / path)))
    return (ROOT / path).exists()


def is_placeholder(name: str) -> bool:
    """`research.MODULE`, `MODEL.onnx`: a part in capitals stands for the reader's own."""
    return any(re.fullmatch(r"[A-Z][A-Z0-9_]+", part) for part in re.split(r"[./]", name))


def module_exists(name: str) -> bool:
    """A module importable by that name (found without running it), a module file or package
    under the root, or a name defined at the top of an existing module (a placeholder such as
    `research.MODULE` passes)."""
    if is_placeholder(name):
        return True
    if (ROOT / (name.replace(".", "/") + ".py")).is_file() or (ROOT / name.replace(".", "/")).is_dir():
        return True
    try:
        if importlib.util.find_spec(name) is not None:
            return True
    except (ImportError, ValueError):
        pass
    parent, _, attribute = name.rpartition(".")
    if not parent:
        return False
    source = ROOT / (parent.replace(".", "/") + ".py")
    if not source.is_file():
        source = ROOT / parent.replace(".", "/") / "__init__.py"
    if not source.is_file():
        return False
    return attribute in top_level_names(source)


def top_level_names(source: Path) -> set[str]:
    """Names a module defines or imports at its top, inside top-level `if` and `try` blocks too
    (`if TYPE_CHECKING:` imports of names served lazily)."""
    names = set()
    body = list(ast.parse(source.read_text(encoding="utf-8")).body)
    while body:
        node = body.pop()
        if isinstance(node, (ast.If, ast.Try)):
            body += node.body + node.orelse + getattr(node, "finalbody", []) + \
                [n for handler in getattr(node, "handlers", []) for n in handler.body]
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


# --- the CLI


def resolve(tokens: tuple[str, ...]) -> tuple[click.Command, list[str], list[str]]:
    """The click command `handseg TOKENS...` names, its path of names, and the tokens after it.
    Raises AssertionError for a subcommand that does not exist."""
    command: click.Command = main
    names = ["handseg"]
    rest = list(tokens[1:])
    context = click.Context(main, info_name="handseg")
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(context, rest[0])
        listed = ", ".join(command.list_commands(context))
        assert sub is not None, f"`{' '.join(names)} {rest[0]}`: no such command (has: {listed})"
        command, names, rest = sub, names + [rest[0]], rest[1:]
    return command, names, rest


def option_names(command: click.Command) -> set[str]:
    names = set(main.context_settings.get("help_option_names", ["--help"]))
    for param in command.params:
        if isinstance(param, click.Option):
            names |= set(param.opts) | set(param.secondary_opts)
    return names


def is_handseg(command: Command) -> bool:
    return Path(command.tokens[0]).name == "handseg"


def is_python(command: Command) -> bool:
    return re.fullmatch(r"python(3(\.\d+)?)?", Path(command.tokens[0]).name) is not None


# --- the checks


def test_the_readme_is_short_and_gives_the_set_up_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES, f"README.md has {len(readme.splitlines())} lines"
    lines = {" ".join(line.split()) for language, start, body in blocks(readme) if language in SHELL
             for _, line in shell_lines(language, start, body)}
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").replace(" --quiet", "")
    for command in CI_COMMANDS:
        assert command in lines, f"README.md no longer gives `{command}` as a command of its own (.ci/run checks it)"
        assert command.split(" -o ")[0] in ci, f".ci/run no longer runs `{command}`: update CI_COMMANDS here"


def test_the_documents_have_commands_to_check():
    # a parser that silently finds nothing would pass every other test
    handseg = [c for c in BLOCK_COMMANDS if is_handseg(c)]
    assert len(handseg) >= 10 and any(c.tokens[1:2] == ("cutout",) for c in handseg)
    assert any(is_python(c) and "-m" in c.tokens for c in BLOCK_COMMANDS)


@pytest.mark.parametrize("command", [c for c in ALL_COMMANDS if is_handseg(c)], ids=str)
def test_handseg_commands_and_their_options_exist(command: Command):
    cli, names, rest = resolve(command.tokens)
    known = option_names(cli)
    for token in rest:
        if token == "--":
            break
        if re.match(r"^--?[A-Za-z]", token):
            name = token.split("=", 1)[0]
            listed = ", ".join(sorted(known))
            assert name in known, f"{command}: `{' '.join(names)}` has no option {name} (has: {listed})"


@pytest.mark.parametrize("command", [c for c in ALL_COMMANDS if is_python(c)], ids=str)
def test_python_commands_name_modules_and_files_that_exist(command: Command):
    args = list(command.tokens[1:])
    while args and args[0] in {"-u", "-O", "-B", "-I", "-X"}:
        args = args[1:]
    if not args or args[0] == "-c":
        return
    if args[0] == "-m":
        assert len(args) > 1 and module_exists(args[1]), f"{command}: no module {args[1:2]}"
    elif not args[0].startswith("-"):
        script = args[0]
        assert (ROOT / script).is_file() or Path(script).is_absolute(), f"{command}: no file {script}"


def path_references() -> list[tuple[str, str]]:
    """(where, path) of every repository path named in a shell block or in inline code."""
    found = []
    for command in BLOCK_COMMANDS:
        for token in command.tokens:
            for word in expand_braces(token):
                path = repo_path(word)
                if path:
                    found.append((str(command), path))
    for document, number, span in inline_spans():
        for token in span.split():
            for word in expand_braces(token):
                path = repo_path(word)
                if path:
                    found.append((f"{document.relative_to(ROOT)}:{number}: `{span}`", path))
    return found


def test_every_repository_path_named_exists():
    missing = [f"{where} -> {path}" for where, path in path_references() if not path_exists(path)]
    assert not missing, "paths named in the docs that do not exist:\n" + "\n".join(missing)


DOTTED = re.compile(r"^(handseg_core|handseg_training|handseg_plugins|handseg_cli|research)"
                    r"(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def test_every_module_named_in_the_prose_exists():
    missing = []
    for document, number, span in inline_spans():
        for word in re.findall(r"[A-Za-z_][\w.]*", span):
            word = word.rstrip(".")
            if DOTTED.match(word) and not re.search(r"\.(py|md|toml|json|onnx|txt)$", word) and not module_exists(word):
                missing.append(f"{document.relative_to(ROOT)}:{number}: {word}")
    assert not missing, "modules named in the docs that do not exist:\n" + "\n".join(missing)


def python_blocks() -> list[tuple[Path, int, str]]:
    return [(document, start, "\n".join(body)) for document in DOCUMENTS
            for language, start, body in blocks(document.read_text(encoding="utf-8")) if language in {"python", "py"}]


def dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


PYTHON_BLOCKS = python_blocks()


@pytest.mark.parametrize("document, line, source", PYTHON_BLOCKS,
                         ids=[f"{d.relative_to(ROOT)}:{n}" for d, n, _ in PYTHON_BLOCKS])
def test_python_examples_parse_and_name_what_exists(document: Path, line: int, source: str):
    where = f"{document.relative_to(ROOT)}:{line}"
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        pytest.fail(f"{where}: the example does not parse ({exc.msg}, its line {exc.lineno})")
    missing = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and DOTTED.match(node.module + ".x"):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if DOTTED.match(alias.name + ".x")]
        elif isinstance(node, ast.Attribute) and isinstance(getattr(node, "ctx", None), ast.Load):
            name = dotted(node)
            if name and DOTTED.match(name):
                names = [name]
        missing += [name for name in names if not module_exists(name)]
    assert not missing, f"{where}: the example names what does not exist: {', '.join(sorted(set(missing)))}"


def slug(heading: str) -> str:
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(document: Path) -> set[str]:
    text = prose(document.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.+?)\s*#*$", text, re.MULTILINE)}


def test_every_relative_link_leads_somewhere():
    broken = []
    for document in DOCUMENTS:
        for number, line in enumerate(prose(document.read_text(encoding="utf-8")).splitlines(), 1):
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"^[a-z]+:", target):
                    continue
                path, _, fragment = target.partition("#")
                where = (document.parent / path).resolve() if path else document
                if not where.exists():
                    broken.append(f"{document.relative_to(ROOT)}:{number}: {target} (no such file)")
                elif fragment and where.suffix == ".md" and fragment not in anchors(where):
                    broken.append(f"{document.relative_to(ROOT)}:{number}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


# --- running the cheap ones


def runnable(command: Command) -> bool:
    if not is_handseg(command) or command.inline:
        return False
    try:
        _, names, rest = resolve(command.tokens)
    except AssertionError:  # no such command: test_handseg_commands_and_their_options_exist says so
        return False
    if "--help" in rest or "-h" in rest or names == ["handseg"]:
        return True
    if len(names) != 2 or names[1] not in RUNNABLE:
        return False
    if names[1] == "models":
        return True
    cli = resolve(command.tokens)[0]
    takes_value = {name for p in cli.params if isinstance(p, click.Option) and not p.is_flag for name in p.opts}
    inputs, k = [], 0
    while k < len(rest):
        token = rest[k]
        if token in takes_value:
            value = rest[k + 1] if k + 1 < len(rest) else ""
            if Path(value).suffix.lower() in IMAGE_SUFFIXES and not (ROOT / value).is_file():
                return False  # e.g. -b beach.jpg: a file of the reader's
            k += 2
            continue
        if not token.startswith("-"):
            inputs.append(token)
        k += 1
    return bool(inputs) and all(repo_path(i) and path_exists(repo_path(i)) for i in inputs)


RUNS = sorted({c.tokens + tuple(f"{k}={v}" for k, v in c.env): c for c in BLOCK_COMMANDS if runnable(c)}.values(),
              key=str)
LAUNCH = "import sys; from handseg_cli import main; sys.argv[0] = 'handseg'; sys.exit(main())"


def test_some_commands_run_for_real():
    assert any(c.tokens[1:2] == ("cutout",) for c in RUNS) and any(c.tokens[1:2] == ("models",) for c in RUNS)


@pytest.mark.parametrize("command", RUNS, ids=str)
def test_the_cheap_commands_run(command: Command, tmp_path: Path):
    for name in ("examples", "tests"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    env = {**os.environ, **dict(command.env)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    done = subprocess.run([sys.executable, "-c", LAUNCH, *command.tokens[1:]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{command}: exit code {done.returncode}\n{done.stdout}\n{done.stderr}"
    _, names, rest = resolve(command.tokens)
    if names[1:] in (["mask"], ["cutout"]) and "--help" not in rest:
        out = tmp_path / rest[rest.index("-o") + 1] if "-o" in rest else tmp_path / rest[rest.index("--output") + 1]
        for source in (t for t in rest if Path(t).suffix.lower() in IMAGE_SUFFIXES and (ROOT / t).is_file()):
            assert (out / (Path(source).stem + ".png")).is_file(), f"{command}: wrote no {Path(source).stem}.png"
            if "--json" in rest:
                assert (out / (Path(source).stem + ".json")).is_file(), f"{command}: wrote no {Path(source).stem}.json"
