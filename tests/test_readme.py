"""The README runs as written. Its ```sh blocks are run verbatim, in order, in ONE bash
process (``set -euo pipefail``) against a real ``fidelia serve --demo`` (what ``make run``
starts) on a fresh database, and every answer the README documents must be what the command
printed. The conventions (also stated at the top of README.md):

- ```sh blocks run; commands that are not part of the run (``make run`` itself, synopses,
  sample output) go in ```console or ```text blocks. ```bash / ```shell are not used.
- ``# -> ANSWER`` right under a command (or at the end of its last line) is what it prints;
  following comment lines that start with ``#`` and two spaces continue it. A JSON answer is
  a subset: the keys shown must be there with equal values; ``...`` stands for any value
  (``"id": ...``), any further array items (``[..., {...}]``), or, inside a string, any text
  (``"fk_live_..."``). A trailing ``NNN`` is the HTTP status, printed by
  ``curl -w ' %{http_code}\\n'``. A text answer is the whole output, ``...`` matching anything.
- Every curl fails on an HTTP error (``-f``) unless it prints the status and its answer
  shows it (an error shown on purpose).
- The CLI is ``.venv/bin/fidelia``; ``127.0.0.1:8000`` is the server.

The test rewrites only ``.venv/bin/`` (to this interpreter's directory) and the port. It also
checks the README's sample of what ``make run`` prints against what the server printed.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.postgres import free_port

README = Path(__file__).resolve().parent.parent / "README.md"
BIN = Path(sys.executable).parent
FIDELIA = BIN / "fidelia"
FENCE = re.compile(r"^```(\w*)\s*$")
ANSWER = re.compile(r"(?:^|\s)# -> (.*)$")
CONTINUED = re.compile(r"^#  (.*)$")


@dataclass
class Command:
    line: int  # README line number of its first line
    text: str
    answer: str | None = None
    answer_line: int = 0
    curls: list[str] = field(default_factory=list)


def parses(text: str) -> bool:
    """True when bash reads ``text`` as complete commands."""
    if text.rstrip().endswith("\\"):
        return False
    result = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    return result.returncode == 0


def sh_blocks(markdown: str) -> list[tuple[int, list[str]]]:
    """(README line number of the block's first line, its lines) for each ```sh block."""
    blocks: list[tuple[int, list[str]]] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if opened is None:
            i += 1
            continue
        kind, start, i = opened.group(1), i + 1, i + 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        assert kind not in ("bash", "shell", "zsh"), (
            f"README.md:{start}: use ```sh for a block the test runs, ```console or ```text "
            "for one it does not"
        )
        if kind == "sh":
            blocks.append((start + 1, lines[start:i]))
        i += 1
    return blocks


def commands(markdown: str) -> list[Command]:
    """Every command of the runnable blocks, in order, with its documented answer."""
    found: list[Command] = []
    for first, lines in sh_blocks(markdown):
        i = 0
        while i < len(lines):
            line, number = lines[i], first + i
            stripped = line.strip()
            if not stripped or (stripped.startswith("#") and not stripped.startswith("# -> ")):
                i += 1
                continue
            if stripped.startswith("# -> "):
                assert found and found[-1].answer is None and found[-1].line >= first, (
                    f"README.md:{number}: an answer must follow its command"
                )
                i = _answer(found[-1], stripped[len("# -> ") :], lines, i, first)
                continue
            text = line
            while not parses(text):
                i += 1
                assert i < len(lines), f"README.md:{number}: the command never ends"
                text += "\n" + lines[i]
            command = Command(number, text)
            found.append(command)
            same_line = ANSWER.search(lines[i])
            if same_line and lines[i].lstrip()[:1] != "#":
                i = _answer(command, same_line.group(1), lines, i, first)
            else:
                i += 1
    return found


def _answer(command: Command, start: str, lines: list[str], i: int, first: int) -> int:
    """Read an answer (and its continuation lines) from line i; return the next line."""
    command.answer_line = first + i
    parts = [start]
    i += 1
    while i < len(lines) and CONTINUED.match(lines[i].strip()):
        parts.append(CONTINUED.match(lines[i].strip()).group(1))  # type: ignore[union-attr]
        i += 1
    json_like = start.lstrip()[:1] in "{["
    command.answer = (" " if json_like else "\n").join(p.strip() for p in parts)
    return i


# --- answers: JSON with "..." -------------------------------------------------------------


class Anything:
    def __repr__(self) -> str:
        return "..."


ANY = Anything()


@dataclass
class Text:
    pattern: re.Pattern[str]
    shown: str


@dataclass
class Items:
    items: list[Any]
    open: bool  # "..." among them: these items, in this order, among others


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
LITERALS = {"true": True, "false": False, "null": None}


class Expected:
    """A documented JSON answer: JSON where ``...`` may stand for values, members, items."""

    def __init__(self, text: str) -> None:
        self.s, self.i = text, 0

    def parse(self) -> tuple[Any, int | None]:
        value = self.value()
        rest = self.s[self.i :].strip()
        if rest and not re.fullmatch(r"\d{3}", rest):
            raise ValueError(f"after the JSON: {rest!r}")
        return value, int(rest) if rest else None

    def skip(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def value(self) -> Any:
        self.skip()
        s, i = self.s, self.i
        if s.startswith("...", i):
            self.i += 3
            return ANY
        if s[i] == "{":
            return self.obj()
        if s[i] == "[":
            return self.arr()
        if s[i] == '"':
            text, self.i = json.decoder.scanstring(s, i + 1)  # type: ignore[attr-defined]
            if "..." not in text:
                return text
            pattern = ".*".join(re.escape(p) for p in text.split("..."))
            return Text(re.compile(pattern, re.S), text)
        for word, literal in LITERALS.items():
            if s.startswith(word, i):
                self.i += len(word)
                return literal
        number = NUMBER.match(s, i)
        if number is None:
            raise ValueError(f"not JSON at {s[i : i + 20]!r}")
        self.i = number.end()
        return json.loads(number.group())

    def obj(self) -> dict[str, Any]:
        members: dict[str, Any] = {}
        self.i += 1
        while True:
            self.skip()
            if self.s[self.i] == "}":
                self.i += 1
                return members
            if self.s.startswith("...", self.i):
                self.i += 3
            else:
                key = self.value()
                self.skip()
                assert self.s[self.i] == ":", f"':' expected at {self.s[self.i :][:20]!r}"
                self.i += 1
                members[key] = self.value()
            self.skip()
            if self.s[self.i] == ",":
                self.i += 1

    def arr(self) -> Items:
        items, open_ = [], False
        self.i += 1
        while True:
            self.skip()
            if self.s[self.i] == "]":
                self.i += 1
                return Items(items, open_)
            item = self.value()
            if item is ANY:
                open_ = True
            else:
                items.append(item)
            self.skip()
            if self.s[self.i] == ",":
                self.i += 1


def mismatches(expected: Any, actual: Any, path: str = "$") -> list[str]:
    if expected is ANY:
        return []
    if isinstance(expected, Text):
        ok = isinstance(actual, str) and expected.pattern.fullmatch(actual)
        return [] if ok else [f"{path}: {actual!r} is not {expected.shown!r}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: {actual!r} is not an object"]
        errors = []
        for key, value in expected.items():
            if key not in actual:
                errors.append(f"{path}.{key}: missing")
            else:
                errors += mismatches(value, actual[key], f"{path}.{key}")
        return errors
    if isinstance(expected, Items):
        if not isinstance(actual, list):
            return [f"{path}: {actual!r} is not an array"]
        if not expected.open:
            if len(actual) != len(expected.items):
                return [f"{path}: {len(actual)} items, the README shows {len(expected.items)}"]
            errors = []
            for n, (e, a) in enumerate(zip(expected.items, actual, strict=True)):
                errors += mismatches(e, a, f"{path}[{n}]")
            return errors
        rest = iter(enumerate(actual))
        for e in expected.items:
            if not any(not mismatches(e, a, f"{path}[{n}]") for n, a in rest):
                return [f"{path}: no item (in order) matches {e!r}"]
        return []
    same_kind = type(expected) is type(actual) or (
        isinstance(expected, int | float)
        and isinstance(actual, int | float)
        and not isinstance(expected, bool)
        and not isinstance(actual, bool)
    )
    return [] if same_kind and expected == actual else [f"{path}: {actual!r}, not {expected!r}"]


def check_answer(answer: str, output: str) -> list[str]:
    if answer.lstrip()[:1] not in "{[":
        pattern = ".*".join(re.escape(p) for p in answer.split("..."))
        shown = "\n".join(line.strip() for line in output.strip().splitlines())
        return [] if re.fullmatch(pattern, shown, re.S) else ["the output differs"]
    expected, status = Expected(answer).parse()
    try:
        actual, end = json.JSONDecoder().raw_decode(output.strip())
    except ValueError:
        return ["the output is not JSON"]
    rest = output.strip()[end:].strip()
    errors = mismatches(expected, actual)
    if status is not None and rest != str(status):
        errors.append(f"HTTP status {rest or '(not printed)'}, the README shows {status}")
    elif status is None and rest:
        errors.append(f"more output after the JSON: {rest[:80]!r}")
    return errors


# --- static rules -------------------------------------------------------------------------


def test_readme_examples_follow_the_conventions():
    """Checked without a server: every curl fails on HTTP errors or shows its status, every
    CLI call goes through .venv/bin/, and the answers parse."""
    found = commands(README.read_text(encoding="utf-8"))
    assert len(found) > 50
    problems = []
    for command in found:
        where = f"README.md:{command.line}"
        if re.search(r"(?:^|[\s;(|&])fidelia\s", command.text):
            problems.append(f"{where}: run the CLI as .venv/bin/fidelia")
        for segment in re.split(r"(?<![\w/-])(?=curl\s)", command.text)[1:]:
            clusters = re.findall(r"(?:^|\s)-([a-zA-Z]+)(?=\s)", segment)
            fails = any("f" in c for c in clusters) or "--fail" in segment
            shows = "%{http_code}" in segment and bool(
                command.answer and re.search(r"\s\d{3}$", command.answer)
            )
            if not (fails or shows):
                problems.append(
                    f"{where}: curl without -f must print the status (-w ' %{{http_code}}\\n') "
                    "and its answer must show it"
                )
        if command.answer is not None and command.answer.lstrip()[:1] in "{[":
            try:
                Expected(command.answer).parse()
            except (ValueError, AssertionError, IndexError) as exc:
                problems.append(f"README.md:{command.answer_line}: answer unreadable: {exc}")
    assert not problems, "\n".join(problems)


def test_answer_matching():
    """The matcher itself: subsets, "...", open arrays, statuses."""
    out = '{"ok":true,"pin":"106126","n":1,"items":[{"a":1},{"a":2,"b":3}],"s":"fk_live_x"} 201'
    shown = '{"ok": true, "s": "fk_live_...", ..., "items": [..., {"a": 2}]} 201'
    assert check_answer(shown, out) == []
    assert check_answer('{"pin": ..., "n": 1.0, "items": [{"a": 1}, {"a": 2}]} 201', out) == []
    assert check_answer('{"ok": true} 201', out) == []
    assert check_answer('{"ok": 1} 201', out)  # a boolean is not a number
    assert check_answer('{"ok": true} 422', out)
    assert check_answer('{"ok": true}', out)  # the status was printed but not shown
    assert check_answer('{"items": [{"a": 2}]} 201', out)  # closed array: exact length
    assert check_answer('{"items": [..., {"a": 2}, {"a": 1}]} 201', out)  # in order
    assert check_answer('{"x": ...} 201', out)  # a key shown must be there
    assert check_answer("loja: sandbox = ...", "loja: sandbox = True\n") == []
    assert check_answer("loja: sandbox = False", "loja: sandbox = True\n")


# --- the run ------------------------------------------------------------------------------


def script(found: list[Command], answers: Path, port: int) -> str:
    """One bash script: every command, each answered one's output also kept in a file."""
    out = [
        "set -Eeuo pipefail",
        "__readme_line=0",
        "trap 'echo \"README.md:$__readme_line failed (exit $?)\" >&2' ERR",
    ]
    for command in found:
        text = command.text.replace(".venv/bin/", f"{BIN}/").replace(
            "127.0.0.1:8000", f"127.0.0.1:{port}"
        )
        out.append(f"__readme_line={command.line}")
        if command.answer is None:
            out.append(text)
        else:
            kept = answers / str(command.line)
            out += ["{ " + text, f"}} > {kept}", f"cat {kept}"]
    out.append("echo __README_DONE__")
    return "\n".join(out) + "\n"


def make_run_prints(markdown: str) -> list[str]:
    """The lines of the README's sample of what `make run` prints (```text "Demo merchant:")."""
    sample = re.search(r"^```text\n(Demo merchant:.*?)^```$", markdown, re.S | re.M)
    assert sample, "README.md shows what `make run` prints in a ```text block"
    return [line.rstrip() for line in sample.group(1).splitlines() if line.strip()]


def clean_environment(data_home: Path) -> dict[str, str]:
    """This process's environment without any FIDELIA_ setting, data under ``data_home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIDELIA_")}
    env["XDG_DATA_HOME"] = str(data_home)
    return env


def test_readme_runs_as_written(tmp_path):
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: scripts/ensure-services.sh installs it")
    found = commands(README.read_text(encoding="utf-8"))
    port, work, answers = free_port(), tmp_path / "work", tmp_path / "answers"
    work.mkdir()
    answers.mkdir()
    env = clean_environment(tmp_path / "data")
    log = tmp_path / "server.log"
    started = time.monotonic()
    with log.open("w") as sink:
        server = subprocess.Popen(
            [str(FIDELIA), "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)],
            env=env,  # serve's public URL is its own address, as `make run` sets it
            cwd=work,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        printed = [line.rstrip() for line in log.read_text().splitlines()]
        for shown in make_run_prints(README.read_text(encoding="utf-8")):
            shown = shown.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace(
                "/home/you/.local/share", str((tmp_path / "data").resolve())
            )
            pattern = re.compile(".*".join(re.escape(p) for p in shown.split("...")))
            assert any(pattern.fullmatch(line) for line in printed), (shown, printed)

        result = subprocess.run(
            ["bash"],
            input=script(found, answers, port),
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=150,
        )
    finally:
        server.terminate()
        server.wait(timeout=20)
    trace = f"stdout:\n{result.stdout[-6000:]}\nstderr:\n{result.stderr[-4000:]}"
    assert result.returncode == 0 and "__README_DONE__" in result.stdout, trace

    problems = []
    for command in found:
        if command.answer is None:
            continue
        output = (answers / str(command.line)).read_text()
        if not output.strip():
            problems.append(f"README.md:{command.line}: printed nothing; an answer is shown")
            continue
        answer = command.answer.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        errors = check_answer(answer, output)
        if errors:
            problems.append(
                f"README.md:{command.answer_line}: "
                + "; ".join(errors[:5])
                + f"\n    printed: {output.strip()[:600]}"
            )
    assert not problems, "\n".join(problems)
    print(f"README: {len(found)} commands in {time.monotonic() - started:.1f} s")
