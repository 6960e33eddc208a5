"""The terminal front door: `parley console`, a chat in your shell on the same engine."""

from __future__ import annotations

import asyncio
import getpass
from typing import TextIO

from core.commands import parse_command
from core.engine import Engine
from core.model import ConversationKey, Turn
from core.sink import Sign, SinkDefaults

PROMPT = "you> "
BANNER = "parley — type a message, /help for commands, /quit to leave."
QUIT = {"/quit", "/exit", "/q"}
QUIT_HELP = "• `/quit` — leave the terminal chat (Ctrl-D too)\n"


class ConsoleSink(SinkDefaults):
    """Prints a reply as it grows: every edit only appends what is new."""

    max_chars = 1_000_000
    flush_interval: float | None = 0.05  # a terminal has no edit budget: keep it lively

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self._shown = ""
        self._sign = ""  # the sign on the terminal line now (erased when the answer starts)
        self._started = False

    async def post(self, text: str, *, sign: Sign | None = None) -> int:
        if sign is not None:
            self._show_sign(text)
            return 0
        self._begin()
        self._write(text)
        self._shown = text
        return 0

    async def edit(self, ref: object, text: str, *, sign: Sign | None = None) -> None:
        if sign is not None:
            self._show_sign(text)
            return
        self._begin()
        if text.startswith(self._shown):
            self._write(text[len(self._shown) :])
        else:  # a rewrite (rare in a terminal): show the new text whole
            self._write("\n" + text)
        self._shown = text

    async def notice(self, text: str) -> None:
        self._write(f"parley> {text}\n")

    def end(self) -> None:
        """Close the reply's line."""
        if self._started:
            self._write("\n")

    def _show_sign(self, text: str) -> None:
        """On a terminal, the sign stands after the prompt until the answer replaces it;
        piped output gets the answer only."""
        if not self._tty:
            return
        self._erase_sign()
        if not self._started:
            self._write("parley> ")
            self._started = True
        self._write(text)
        self._sign = text

    def _erase_sign(self) -> None:
        if self._sign:
            width = len(self._sign)
            self._write("\b" * width + " " * width + "\b" * width)
            self._sign = ""

    def _begin(self) -> None:
        if self._sign:
            self._erase_sign()
        elif not self._started:
            self._write("parley> ")
        self._started = True

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


async def run_console(engine: Engine, *, channel: str, stdin: TextIO, out: TextIO) -> None:
    """Read lines until EOF or /quit; each line is a turn in conversation `channel`."""
    key = ConversationKey("console", "local", channel)
    author = _whoami()
    interactive = stdin.isatty()
    if interactive:
        out.write(BANNER + "\n")
    loop = asyncio.get_running_loop()
    while True:
        if interactive:
            out.write(PROMPT)
            out.flush()
        line = await loop.run_in_executor(None, stdin.readline)
        if not line:
            break
        text = line.rstrip("\n")
        if text.strip().lower() in QUIT:
            break
        if not text.strip():
            continue
        sink = ConsoleSink(out)
        # The terminal's operator runs this parley: they may change any setting.
        await engine.handle(Turn(key, author, text, author_name=author, admin=True), sink)
        sink.end()
        command = parse_command(text)
        if command is not None and command.name in ("help", "unknown"):
            out.write(QUIT_HELP)
            out.flush()


def _whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "console"
