"""`parley init`: the first set-up, in the terminal — which model server, checked, saved.

`make run` on a fresh clone lands here when no model server is configured and a person is
at the terminal: two or three questions, one tiny completion to prove the answers work, and
`.env` written (readable only by its owner). Then the terminal chat opens.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import aiohttp
from pydantic import SecretStr

from core.config import AdapterSettings
from models.openai import OpenAISettings
from models.openai import check as check_model

ENV_FILE = Path(".env")
LOCAL_SERVER = "http://localhost:11434/v1"  # Ollama's
OPENAI_MODEL = "gpt-4o-mini"
LIST_TIMEOUT = aiohttp.ClientTimeout(total=3)

INTRO = """\
parley set-up: no model server is configured yet.

Which model server should parley use?
  1) OpenAI (you need an API key)
  2) a local or OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio, Groq, ...)
"""
NEXT = """\
To connect Slack or Discord, add their tokens to {env} (see "Connect to Slack" and
"Connect to Discord" in README.md) and start parley again with `make run`.
"""

Secret = Callable[[str], str]


def interactive(stdin: TextIO, out: TextIO) -> bool:
    """Whether a person is at the terminal (CI and containers are not)."""
    return stdin.isatty() and out.isatty()


async def run_setup(
    settings: AdapterSettings,
    *,
    stdin: TextIO,
    out: TextIO,
    secret: Secret = getpass.getpass,
    env_file: Path = ENV_FILE,
) -> bool:
    """Ask, check, save. False when the person gave up (nothing is written then).

    The questions are the OpenAI-compatible adapter's (the one model adapter there is)."""
    if not isinstance(settings, OpenAISettings):
        raise TypeError("the set-up asks for an OpenAI-compatible server")
    out.write(INTRO)
    try:
        values = await _settle(settings, stdin, out, secret)
    except (EOFError, KeyboardInterrupt):
        values = None
    if values is None:
        _say(out, "\nNothing was saved.\n")
        return False
    write_env(env_file, values)
    _say(out, f"\nSaved in {env_file} (readable only by you).\n{NEXT.format(env=env_file)}\n")
    return True


async def _settle(
    settings: OpenAISettings, stdin: TextIO, out: TextIO, secret: Secret
) -> dict[str, str | None] | None:
    """Ask until the answers pass the check, or the person stops."""
    while True:
        values = await _ask(stdin, out, secret)
        if values is None:
            return None
        key = values["OPENAI_API_KEY"]
        candidate = settings.model_copy(
            update={
                "openai_api_key": SecretStr(key) if key else None,
                "openai_base_url": values["OPENAI_BASE_URL"],
            }
        )
        _say(out, "Checking it with a one-token answer... ")
        check = await check_model(candidate, values["PARLEY_MODEL"] or "")
        if check.ok:
            _say(out, f"ok: {check.detail}.\n")
            return values
        _say(out, f"that did not work: {check.detail}\n  ({check.fix})\n")
        if _read(stdin, out, "Try again? [Y/n] ").lower().startswith("n"):
            return None


async def _ask(stdin: TextIO, out: TextIO, secret: Secret) -> dict[str, str | None] | None:
    choice = _read(stdin, out, "Choose 1 or 2 [2]: ") or "2"
    if choice not in ("1", "2"):
        _say(out, "Please answer 1 or 2.\n")
        return await _ask(stdin, out, secret)
    if choice == "1":
        key = secret("OpenAI API key (typing is hidden): ").strip()
        if not key:
            _say(out, "An OpenAI API key is needed (https://platform.openai.com/api-keys).\n")
            return None
        model = _read(stdin, out, f"Model [{OPENAI_MODEL}]: ") or OPENAI_MODEL
        return {"OPENAI_API_KEY": key, "OPENAI_BASE_URL": None, "PARLEY_MODEL": model}
    url = _read(stdin, out, f"Server URL [{LOCAL_SERVER}]: ") or LOCAL_SERVER
    key = secret("API key (leave empty if the server needs none; hidden): ").strip()
    offered = await _models(url, key)
    if offered:
        _say(out, "The server offers: " + ", ".join(offered[:10]) + "\n")
    default = offered[0] if offered else ""
    model = _read(stdin, out, f"Model [{default}]: " if default else "Model: ") or default
    if not model:
        _say(out, "A model name is needed (for Ollama: `ollama pull llama3.2`, then llama3.2).\n")
        return None
    return {"OPENAI_API_KEY": key or None, "OPENAI_BASE_URL": url, "PARLEY_MODEL": model}


async def _models(url: str, key: str) -> list[str]:
    """The models an OpenAI-compatible server lists at /models (none if it will not say)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        async with (
            aiohttp.ClientSession(timeout=LIST_TIMEOUT) as session,
            session.get(url.rstrip("/") + "/models", headers=headers) as response,
        ):
            if response.status != 200:
                return []
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
        return []
    data = body.get("data") if isinstance(body, dict) else None
    return [str(m["id"]) for m in data or [] if isinstance(m, dict) and m.get("id")]


def write_env(path: Path, values: dict[str, str | None]) -> None:
    """Set (or, for None, remove) these variables in `path`, keeping every other line; the
    file ends up readable by its owner only (it holds an API key)."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [line for line in lines if _name(line) not in values]
    kept += [f"{name}={_quoted(value)}" for name, value in values.items() if value is not None]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write("\n".join(kept) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _name(line: str) -> str:
    name = line.split("=", 1)[0].strip()
    return name.removeprefix("export ").strip()


def _quoted(value: str) -> str:
    if value and all(c.isalnum() or c in "-_./:@+" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _read(stdin: TextIO, out: TextIO, prompt: str) -> str:
    _say(out, prompt)
    line = stdin.readline()
    if not line:  # end of input (Ctrl-D): an empty answer would ask again forever
        raise EOFError
    return line.strip()


def _say(out: TextIO, text: str) -> None:
    out.write(text)
    out.flush()
