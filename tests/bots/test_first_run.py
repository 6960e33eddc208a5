"""The first ten minutes: `parley run` on a fresh checkout, at a terminal and without one;
the terminal chat free of log lines; help for every command; the Makefile's venv check."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bots.config import setting_classes
from bots.main import COMMANDS, NO_UPSTREAM, main
from tests.fakes.upstream import DEFAULT_TEXT, FakeUpstream, Script
from tests.support.terminal import Terminal

ROOT = Path(__file__).resolve().parents[2]
PARLEY = [sys.executable, "-m", "bots.main"]


def fresh_env(**extra: str) -> dict[str, str]:
    """A person's environment with no parley setting at all."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "TERM": "xterm",
        "PYTHONPATH": str(ROOT),
        "PARLEY_HTTP_PORT": "0",
    }
    env.update(extra)
    return env


async def test_parley_run_at_a_terminal_sets_up_the_model_server_and_opens_the_chat(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.script(Script(text="OK"), Script(text="Hello there, from your new bot."))
    async with Terminal([*PARLEY, "run"], env=fresh_env(), cwd=tmp_path) as term:
        await term.expect("Choose 1 or 2 [2]: ")
        term.send("2")
        await term.expect("Server URL [http://localhost:11434/v1]: ")
        term.send(upstream.base_url)
        await term.expect("hidden): ")  # getpass has turned echo off (and flushed input)
        term.send("")
        await term.expect("The server offers: fake-model")
        await term.expect("Model [fake-model]: ")
        term.send("")
        await term.expect("ok: ")
        await term.expect("Saved in .env (readable only by you)")
        await term.expect("you> ")  # the terminal chat, right away
        term.send("hi")
        await term.expect("parley> Hello there, from your new bot.")
        term.send("/quit")
        assert await term.exit_code() == 0
    env_file = tmp_path / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    saved = env_file.read_text().splitlines()
    assert f"OPENAI_BASE_URL={upstream.base_url}" in saved and "PARLEY_MODEL=fake-model" in saved
    assert "Connect to Slack" in term.output and "SLACK_BOT_TOKEN" in term.output
    assert '{"' not in term.output  # no log line in the chat
    assert "turn_done" in (tmp_path / "parley.log").read_text()  # they went to the log file


async def test_parley_init_with_a_key_that_does_not_work_saves_nothing(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.script(Script(status=401))
    async with Terminal([*PARLEY, "init"], env=fresh_env(), cwd=tmp_path) as term:
        await term.expect("Choose 1 or 2 [2]: ")
        term.send("2")
        await term.expect("Server URL")
        term.send(upstream.base_url)
        await term.expect("hidden): ")
        term.send("sk-wrong-wrong-wrong-wrong")
        await term.expect("Model [fake-model]: ")
        term.send("")
        await term.expect("that did not work: ")
        await term.expect("check OPENAI_API_KEY")
        await term.expect("Try again? [Y/n] ")
        term.send("n")
        await term.expect("Nothing was saved.")
        assert await term.exit_code() == 2
    assert not (tmp_path / ".env").exists()
    assert "sk-wrong-wrong-wrong-wrong" not in term.output  # typed hidden, never echoed


async def test_without_a_terminal_parley_run_says_one_line_and_exits_2(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        *PARLEY,
        "run",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=fresh_env(),
        cwd=str(tmp_path),
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert err.decode() == NO_UPSTREAM + "\n" and out == b""
    assert not os.listdir(tmp_path)  # nothing created


async def test_a_failing_turn_in_the_terminal_chat_is_its_sentence_once_and_no_log_line(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.script(Script(status=500))
    env = fresh_env(OPENAI_BASE_URL=upstream.base_url, PARLEY_UPSTREAM_RETRIES="0")
    async with Terminal([*PARLEY, "console"], env=env, cwd=tmp_path) as term:
        await term.expect("you> ")
        term.send("are you there?")
        await term.expect("The model server is having trouble")
        await term.expect("you> ")
        term.send("/help")
        await term.expect("`/quit` — leave the terminal chat")
        term.send("/quit")
        assert await term.exit_code() == 0
    assert term.output.count("The model server is having trouble") == 1
    assert '{"' not in term.output and "turn_failed" not in term.output
    assert "upstream_failed" in (tmp_path / "parley.log").read_text()


async def test_the_log_level_in_dot_env_counts_for_the_terminal_chat(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("PARLEY_LOG_LEVEL=error\nPARLEY_LOG_FILE=chat.log\n")
    env = fresh_env(OPENAI_BASE_URL=upstream.base_url)
    process = await asyncio.create_subprocess_exec(
        *PARLEY,
        "console",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(tmp_path),
    )
    out, err = await asyncio.wait_for(process.communicate(b"hello\n"), 30)
    assert process.returncode == 0 and DEFAULT_TEXT in out.decode() and err == b""
    assert "turn_done" not in (tmp_path / "chat.log").read_text()  # info: below the level


def help_of(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as ended:
        main([*argv, "--help"])
    assert ended.value.code == 0
    return out.getvalue()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_explains_itself_and_lists_the_settings_it_reads(command: str) -> None:
    text = help_of(command)
    what, reads = COMMANDS[command]
    assert what.split(".")[0] in " ".join(text.split())
    for cls in reads():
        assert f"{cls.title}:" in text, (command, cls.title)
        for field in cls.model_fields.values():
            assert field.alias in text, (command, field.alias)


def test_run_reads_every_setting_and_version_is_printed() -> None:
    text = help_of("run")
    aliases = [f.alias for cls in setting_classes() for f in cls.model_fields.values()]
    assert len(aliases) == len(set(aliases))  # no two adapters claim one variable
    assert all(alias and alias in text for alias in aliases)
    titles = [cls.title for cls in setting_classes()]
    assert len(titles) == len(set(titles))
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["--version"])
    assert out.getvalue().startswith("parley ")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize(
    ("made_by", "kept"),
    [("same", True), ("older", False), ("gone", False)],
)
def test_the_makefile_makes_again_a_venv_another_python_made(
    tmp_path: Path, made_by: str, kept: bool
) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    about = (
        "import sys; "
        "print(sys.version_info >= (3, 11), sys.base_prefix, '%d.%d' % sys.version_info[:2])"
    )
    same = subprocess.run(
        [sys.executable, "-c", about], capture_output=True, text=True, check=True
    ).stdout.strip()
    answer = {"same": same, "older": "False /usr 3.9", "gone": ""}[made_by]
    python.write_text(f"#!/bin/sh\n[ -n '{answer}' ] && echo '{answer}' || exit 1\n")
    python.chmod(0o755)
    done = subprocess.run(
        ["make", "-n", f"PYTHON={sys.executable}", "lint"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert python.exists() is kept, done.stdout + done.stderr
    assert ("made by another Python" in done.stdout) is not kept
