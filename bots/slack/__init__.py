"""The Slack front door: mentions and DMs answered in threads, streamed, on the shared engine.

`SlackFrontDoor` is imported on first use: `bots.slack.mode` (what `run` and `doctor` check
at start) must not pull slack-bolt into a terminal chat's start-up.
"""

from typing import TYPE_CHECKING, Any

from bots.slack.mode import slack_mode

if TYPE_CHECKING:
    from bots.slack.app import SlackFrontDoor

__all__ = ["SlackFrontDoor", "slack_mode"]


def __getattr__(name: str) -> Any:
    if name == "SlackFrontDoor":
        from bots.slack.app import SlackFrontDoor

        return SlackFrontDoor
    raise AttributeError(name)
