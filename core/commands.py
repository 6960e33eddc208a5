"""Commands: the same words on every front door, answered without the model."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from core.model import ChannelSettings, Command

__all__ = ["CHANGES", "HELP", "NAMES", "Command", "CommandResult", "parse_command", "run_command"]

NAMES = ("reset", "model", "system", "memory", "help")
MODEL_NAME = re.compile(r"^[\w.:/@+\-]{1,200}$")

HELP = """\
Here is what I understand (the same words work everywhere):
• `reset` — forget this channel's conversation
• `model [NAME]` — show this channel's model, or switch to NAME
• `system [TEXT]` — show this channel's system prompt, or set it (`system default` restores it)
• `memory on|off` — remember this channel's conversation, or answer each message on its own
• `help` — this list
Anything else is a question for the model."""


def parse_command(text: str) -> Command | None:
    """Recognise a command; None means the text is a prompt for the model.

    With a leading slash every word is a command (unknown ones get help). Without one,
    only exact forms count, so "help me write a poem" still goes to the model.
    """
    stripped = text.strip()
    slash = stripped.startswith("/")
    parts = (stripped[1:] if slash else stripped).split(maxsplit=1)
    if not parts:
        return Command("help") if slash else None
    word, arg = parts[0].lower(), (parts[1].strip() if len(parts) > 1 else "")
    if word not in NAMES:
        return Command("unknown", word) if slash else None
    if not slash and not _bare_form_ok(word, arg):
        return None
    return Command(word, arg)


def _bare_form_ok(word: str, arg: str) -> bool:
    if word in ("reset", "help"):
        return not arg
    if word == "memory":
        return arg.lower() in ("", "on", "off")
    if word == "model":
        return not arg or MODEL_NAME.match(arg) is not None
    return True  # system [TEXT]


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The answer to show, and the channel's settings after the command."""

    reply: str
    settings: ChannelSettings
    reset: bool = False

    def changes(self, current: ChannelSettings) -> bool:
        """Whether carrying it out changes the channel for everyone in it."""
        return self.reset or self.settings != current


CHANGES = {
    "reset": "reset this channel's conversation",
    "model": "change this channel's model",
    "system": "change this channel's system prompt",
    "memory": "turn this channel's memory on or off",
}
"""What each command that changes a channel does, for the sentence refusing a non-admin."""


def run_command(
    command: Command,
    current: ChannelSettings,
    *,
    default_model: str,
    models: list[str],
    default_system: str,
) -> CommandResult:
    """Decide a command's answer and new settings; storage effects are the caller's job."""
    if command.name == "reset":
        return CommandResult("", current, reset=True)
    if command.name == "model":
        return _model(command.arg, current, default_model, models)
    if command.name == "system":
        return _system(command.arg, current, default_system)
    if command.name == "memory":
        return _memory(command.arg, current)
    if command.name == "unknown":
        return CommandResult(f"I don't know the command `{command.arg}`.\n{HELP}", current)
    return CommandResult(HELP, current)


def _model(arg: str, current: ChannelSettings, default: str, models: list[str]) -> CommandResult:
    active = current.model or default
    choices = ", ".join(f"`{m}`" for m in models)
    if not arg:
        return CommandResult(f"This channel uses `{active}`. Available: {choices}.", current)
    if not MODEL_NAME.match(arg):
        return CommandResult(f"`{arg[:60]}` is not a model name. Available: {choices}.", current)
    if arg not in models:  # only PARLEY_MODELS (and the default): no surprise bills
        return CommandResult(f"I can't switch to `{arg}`: the models here are {choices}.", current)
    new = replace(current, model=None if arg == default else arg)
    return CommandResult(f"This channel now uses `{arg}`.", new)


def _system(arg: str, current: ChannelSettings, default: str) -> CommandResult:
    if not arg:
        shown = current.system_prompt if current.system_prompt is not None else default
        origin = "custom" if current.system_prompt is not None else "default"
        return CommandResult(f"This channel's system prompt ({origin}):\n> {shown}", current)
    if arg.lower() == "default":
        return CommandResult(
            "This channel's system prompt is back to the default.",
            replace(current, system_prompt=None),
        )
    return CommandResult("System prompt set for this channel.", replace(current, system_prompt=arg))


def _memory(arg: str, current: ChannelSettings) -> CommandResult:
    choice = arg.lower()
    if choice == "on":
        return CommandResult(
            "Memory is on: I'll remember this channel's conversation.",
            replace(current, memory=True),
        )
    if choice == "off":
        return CommandResult(
            "Memory is off: I'll answer each message on its own and store nothing new.",
            replace(current, memory=False),
        )
    state = "on" if current.memory else "off"
    return CommandResult(
        f"Memory is {state} in this channel. Use `memory on` or `memory off`.", current
    )
