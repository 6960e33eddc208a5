"""A program on a pseudo-terminal, for the tests of what a person at a terminal sees.

The program gets the terminal as its controlling tty, so `isatty()` is true and `getpass`
reads from it, exactly as when someone runs `make run`. Output is read through the event
loop (the fakes in the same loop keep answering); waits are on the text, with a timeout.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import termios
from pathlib import Path


def _take_terminal() -> None:  # in the child, before exec
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """`async with Terminal(argv, env=..., cwd=...) as term:` then `expect` and `send`."""

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path) -> None:
        self._argv, self._env, self._cwd = argv, env, cwd
        self.output = ""
        self._fd = -1
        self._grew = asyncio.Event()
        self._closed = False
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Terminal:
        master, slave = pty.openpty()
        self.process = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=self._env,
            cwd=str(self._cwd),
            preexec_fn=_take_terminal,
        )
        os.close(slave)
        self._fd = master
        asyncio.get_running_loop().add_reader(master, self._read)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        self._stop_reading()

    def _read(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except OSError:  # the program exited: EIO on Linux
            data = b""
        if not data:
            self._stop_reading()
        else:
            self.output += data.decode(errors="replace").replace("\r\n", "\n")
        self._grew.set()

    def _stop_reading(self) -> None:
        if not self._closed:
            self._closed = True
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)

    async def expect(self, text: str, *, timeout: float = 20.0) -> None:
        """Wait until `text` has been printed (fails the test after `timeout`)."""
        try:
            async with asyncio.timeout(timeout):
                while text not in self.output:
                    if self._closed:
                        raise AssertionError(f"exited before printing {text!r}:\n{self.output}")
                    self._grew.clear()
                    await self._grew.wait()
        except TimeoutError:
            raise AssertionError(f"no {text!r} within {timeout} s:\n{self.output}") from None

    def send(self, line: str) -> None:
        """Type `line` and Enter."""
        os.write(self._fd, (line + "\n").encode())

    async def exit_code(self, *, timeout: float = 20.0) -> int:
        """Wait for the program to end; its exit status."""
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)
