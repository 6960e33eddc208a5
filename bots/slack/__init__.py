"""The Slack front door: mentions and DMs answered in threads, streamed, on the shared engine."""

from bots.slack.app import SlackFrontDoor, slack_mode

__all__ = ["SlackFrontDoor", "slack_mode"]
