"""Staging: deployed like production."""

from config.settings._deployed import *  # noqa: F403
