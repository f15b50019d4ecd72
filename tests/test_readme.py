"""The README cannot drift from the code: every command in its bash blocks is covered, its links resolve.

Each command in a ```bash block is covered in exactly one way:
- the Quick start's test command: it must be the command `.ci/run` runs;
- the Quick start's app command: `python app.py --help` must work (launching a server is not a test);
- a cheap command (CHEAP_COMMANDS, listed verbatim): run as written, in a scratch copy of the repository;
- a command that needs checkpoints, a server or a long time: parsed by the parser of the CLI it calls, with its
  input files checked to exist; a benchmark: its `--help` must work;
- `python -m pytest PATHS`: part of the suite `.ci/run` runs; the paths must exist;
- a package install (PACKAGE_INSTALLS): the extras it names exist in pyproject.toml (tests/test_packaging.py
  builds the wheel).
Anything else fails `test_every_readme_command_is_covered`.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CI_SCRIPT = REPO / ".ci" / "run"

QUICK_START_APP = "pip install -r requirements.txt && python app.py"
QUICK_START_TESTS = "pip install -r requirements-dev.txt && python -m pytest -q"
CHEAP_COMMANDS = (
    "python app.py --help",
    "python -m everything --help",
    "python -m everything assets/coffee.jpg --out out/everything_random --random-weights --points-per-side 8",
    "python -m compare params",
    "python -m compare assets/coffee.jpg --reference vit_t --models fastsam-s --random-weights --distances 100,200 "
    "--prompts-per-image 2 --warmup 0 --out out/compare_random",
)
PACKAGE_INSTALLS = ("pip install .", 'pip install -e ".[onnx,dev]"')
# Environment variables a README command may set; each must be read somewhere in the code.
KNOWN_ENV = ("MOBILE_SAM_CACHE_DIR", "MOBILE_SAM_RANDOM_WEIGHTS", "MOBILE_SAM_NOTEBOOK_QUICK", "PORT")
COMMAND_TIMEOUT_S = 300


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def code_blocks(language: str) -> list[tuple[str, str]]:
    """(heading of the enclosing section, block text) for every fenced block of the language."""
    blocks, heading, current, inside = [], "", [], None
    for line in readme_text().splitlines():
        if inside is None and line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        fence = line.strip()
        if inside is None and fence.startswith("```"):
            inside = fence[3:].strip()
            current = []
        elif inside is not None and fence == "```":
            if inside == language:
                blocks.append((heading, "\n".join(current)))
            inside = None
        elif inside is not None:
            current.append(line)
    return blocks


def block_commands(block: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blank lines dropped."""
    commands, pending = [], ""
    for raw in block.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        commands.append(" ".join((pending + line).split()))
        pending = ""
    assert not pending, f"a bash block ends with a continuation line: {pending!r}"
    return commands


def readme_commands() -> list[str]:
    return [command for _, block in code_blocks("bash") for command in block_commands(block)]


def split_env(command: str) -> tuple[dict[str, str], list[str]]:
    """Leading VAR=value assignments and the argv after them."""
    tokens = shlex.split(command)
    env = {}
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):
        name, _, value = tokens.pop(0).partition("=")
        env[name] = value
    return env, tokens


def classify(command: str) -> str:
    """How the command is covered: ci, app, run, parse-app, parse-everything, parse-compare, help, pytest, or
    uncovered."""
    if command == QUICK_START_TESTS:
        return "ci"
    if command == QUICK_START_APP:
        return "app"
    if command in CHEAP_COMMANDS:
        return "run"
    if command in PACKAGE_INSTALLS:
        return "package"
    env, argv = split_env(command)
    if any(name not in KNOWN_ENV for name in env) or argv[:1] != ["python"]:
        return "uncovered"
    if argv[1:2] == ["app.py"]:
        return "parse-app"
    if argv[1:3] == ["-m", "everything"]:
        return "parse-everything"
    if argv[1:3] == ["-m", "compare"]:
        return "parse-compare"
    if argv[1:3] == ["-m", "mobile_sam.onnx"]:
        return "parse-onnx"
    if argv[1:3] == ["-m", "distill"]:
        return "parse-distill"
    if argv[1:2] == ["-m"] and len(argv) == 3 and argv[2].startswith("benchmarks."):
        return "help"
    if argv[1:3] == ["-m", "pytest"]:
        return "pytest"
    return "uncovered"


def commands_of(kind: str) -> list[str]:
    return [c for c in readme_commands() if classify(c) == kind]


def normalised(command: str) -> list[list[str]]:
    """A command's parts split at &&, with `python -m pip` written `pip` and pip's quiet flags dropped."""
    parts = []
    for part in command.split("&&"):
        tokens = shlex.split(part)
        if tokens[:3] == ["python", "-m", "pip"]:
            tokens = ["pip", *tokens[3:]]
        if tokens[:1] == ["pip"]:
            tokens = [t for t in tokens if t not in ("-q", "--quiet")]
        parts.append(tokens)
    return parts


def assets_exist(argv: list[str]) -> None:
    for token in argv:
        if token.startswith("assets/"):
            assert glob.glob(str(REPO / token)), f"{token} is named in the README but does not exist"


def parse_or_fail(parse, argv: list[str], command: str):
    try:
        return parse(argv)
    except SystemExit as exit_:
        pytest.fail(f"README command does not parse (exit {exit_.code}): {command}")


def scratch_copy(tmp_path: Path) -> Path:
    """A folder that looks like the repository (symlinks to its top-level entries) where outputs can land."""
    root = tmp_path / "repo"
    root.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in (".git", "out"):
            (root / entry.name).symlink_to(entry)
    return root


def run_shell(command: str, cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MOBILE_SAM_CACHE_DIR"] = str(tmp_path / "empty_cache")  # no command here may need a checkpoint
    env["YOLO_OFFLINE"] = "1"
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )


# -- coverage --------------------------------------------------------------------------------------------
def test_readme_has_bash_commands():
    assert len(readme_commands()) >= len(CHEAP_COMMANDS) + 2


def test_every_readme_command_is_covered():
    uncovered = [c for c in readme_commands() if classify(c) == "uncovered"]
    assert not uncovered, f"README commands no test covers (run them in tests/test_readme.py): {uncovered}"


@pytest.mark.parametrize("command", CHEAP_COMMANDS)
def test_cheap_command_is_in_the_readme(command):
    assert command in readme_commands(), f"listed as a README command but not in the README: {command}"


# -- Quick start ---------------------------------------------------------------------------------------
def test_quick_start_is_exactly_the_two_commands():
    blocks = [block for heading, block in code_blocks("bash") if heading == "Quick start"]
    assert len(blocks) == 1
    assert block_commands(blocks[0]) == [QUICK_START_APP, QUICK_START_TESTS]


def test_quick_start_test_command_is_what_ci_runs():
    lines = [
        line.strip()
        for line in CI_SCRIPT.read_text().splitlines()
        if "pytest" in line and not line.strip().startswith("#")
    ]
    assert len(lines) == 1, f".ci/run should run pytest exactly once, found {lines}"
    assert normalised(lines[0]) == normalised(QUICK_START_TESTS)


def test_quick_start_app_command_starts_the_app_cli(tmp_path):
    assert (REPO / "requirements.txt").is_file() and (REPO / "requirements-dev.txt").is_file()
    result = run_shell("python app.py --help", scratch_copy(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--random-weights" in result.stdout


# -- commands run as written -----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("command", CHEAP_COMMANDS)
def test_cheap_readme_command_runs(command, tmp_path):
    root = scratch_copy(tmp_path)
    result = run_shell(command, root, tmp_path)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    argv = shlex.split(command)
    if "--out" in argv:
        out = root / argv[argv.index("--out") + 1]
        assert out.is_dir() and any(out.iterdir()), f"{command} wrote nothing into {out}"
    if "--random-weights" in argv:
        written = " ".join(p.read_text(errors="ignore") for p in root.glob("out/**/*.md"))
        assert "meaningless" in (result.stdout + result.stderr + written).lower(), "random weights not announced"


# -- commands checked against their parser ---------------------------------------------------------------
@pytest.mark.parametrize("command", commands_of("parse-app"))
def test_app_command_parses(command):
    import app

    env, argv = split_env(command)
    parse_or_fail(app.parse_args, argv[2:], command)


@pytest.mark.parametrize("command", commands_of("parse-everything"))
def test_everything_command_parses(command):
    from everything.__main__ import build_parser
    from everything.compare_cli import compare_parser
    from everything.eval_cli import eval_parser

    _, argv = split_env(command)
    assets_exist(argv)
    if argv[3:4] == ["eval"]:
        parse_or_fail(eval_parser().parse_args, argv[4:], command)
    elif argv[3:4] == ["compare"]:
        parse_or_fail(compare_parser().parse_args, argv[4:], command)
    else:
        parse_or_fail(build_parser().parse_args, argv[3:], command)


@pytest.mark.parametrize("command", commands_of("parse-compare"))
def test_compare_command_parses(command):
    from compare.cli import comparison_parser, params_parser

    _, argv = split_env(command)
    assets_exist(argv)
    args = argv[3:]
    if args[:1] == ["params"]:
        parse_or_fail(params_parser().parse_args, args[1:], command)
    else:
        parse_or_fail(comparison_parser().parse_args, args, command)


@pytest.mark.parametrize("command", commands_of("parse-onnx"))
def test_onnx_command_parses(command):
    from mobile_sam.onnx.__main__ import build_parser

    _, argv = split_env(command)
    parse_or_fail(build_parser().parse_args, argv[3:], command)


@pytest.mark.parametrize("command", commands_of("parse-distill"))
def test_distill_command_parses(command):
    from distill.__main__ import build_parser

    _, argv = split_env(command)
    parse_or_fail(build_parser().parse_args, argv[3:], command)


@pytest.mark.parametrize("command", PACKAGE_INSTALLS)
def test_package_install_command_is_in_the_readme_with_existing_extras(command):
    import tomllib

    assert command in readme_commands(), f"listed as a README command but not in the README: {command}"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = re.findall(r"\[([^\]]*)\]", command)
    assert all(extra in extras for group in named for extra in group.split(",")), command


@pytest.mark.parametrize("command", commands_of("help"))
def test_benchmark_command_exists(command, tmp_path):
    result = run_shell(f"{command} --help", scratch_copy(tmp_path), tmp_path)
    assert result.returncode == 0, f"{command} --help failed:\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("command", commands_of("pytest"))
def test_pytest_command_names_existing_tests(command):
    _, argv = split_env(command)
    paths = [token for token in argv[3:] if not token.startswith("-")]
    assert paths and all((REPO / p).exists() for p in paths), command


def test_environment_variables_in_commands_are_read_by_the_code():
    code = "".join(
        p.read_text(errors="ignore")
        for pattern in ("*.py", "mobile_sam/*.py", "notebooks/*.ipynb")
        for p in REPO.glob(pattern)
    )
    for command in readme_commands():
        for name in split_env(command)[0]:
            assert name in code, f"{name} is set in a README command but read nowhere"


# -- Python snippets -----------------------------------------------------------------------------------
def test_python_blocks_compile():
    blocks = code_blocks("python")
    assert blocks
    for heading, block in blocks:
        compile(block, f"README.md ({heading})", "exec")


@pytest.mark.slow
def test_library_api_snippet_runs_with_random_weights(tmp_path, monkeypatch):
    import torch

    import samkit.checkpoints
    from mobile_sam import sam_model_registry

    [snippet] = [block for heading, block in code_blocks("python") if heading == "Library API"]
    torch.manual_seed(0)
    weights = tmp_path / "random_vit_t.pt"
    torch.save(sam_model_registry["vit_t"](None).state_dict(), weights)
    monkeypatch.setattr(samkit.checkpoints, "resolve_checkpoint", lambda name, *a, **k: weights)
    monkeypatch.chdir(REPO)
    namespace: dict = {}
    exec(compile(snippet, "README.md (Library API)", "exec"), namespace)
    assert namespace["masks"].shape == (3, 400, 600) and namespace["masks"].dtype == bool
    assert namespace["logits"].shape == (3, 256, 256)
    assert namespace["box_masks"].shape == (1, 400, 600)


# -- front matter and links ------------------------------------------------------------------------------
def front_matter() -> dict[str, str]:
    text = readme_text()
    assert text.startswith("---\n"), "the README must start with the Hugging Face Spaces front matter"
    block = text[4 : text.index("\n---\n", 4)]
    return {
        key.strip(): value.strip().strip('"') for key, _, value in (line.partition(":") for line in block.splitlines())
    }


def test_space_front_matter_matches_the_project():
    meta = front_matter()
    pinned = re.search(r"^gradio==(\S+)$", (REPO / "requirements.txt").read_text(), re.MULTILINE)
    assert meta["sdk"] == "gradio"
    assert pinned and meta["sdk_version"] == pinned.group(1)
    assert (REPO / meta["app_file"]).is_file()
    assert meta["python_version"] == "3.11"


def heading_anchors() -> set[str]:
    anchors = set()
    for line in readme_text().splitlines():
        if re.match(r"#{1,6} ", line):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return anchors


def prose() -> str:
    """The README without fenced code blocks and inline code."""
    without_blocks = re.sub(r"^```.*?^```", "", readme_text(), flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", without_blocks)


def test_local_links_and_images_exist():
    targets = re.findall(r"\]\(([^)\s]+)\)", prose())
    assert targets
    anchors = heading_anchors()
    for target in targets:
        if target.startswith(("http://", "https://")):
            continue
        if target.startswith("#"):
            assert target[1:] in anchors, f"no heading for the link {target}"
        else:
            assert (REPO / target).exists(), f"the README links to {target}, which does not exist"
