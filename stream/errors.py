"""One error hierarchy; each class says whether retrying can help."""

from __future__ import annotations


class ModstreamError(Exception):
    """Base class for modstream's own errors."""

    retriable: bool = False


class ConfigError(ModstreamError):
    """A setting is missing or invalid; the message names the field and the bad value."""


class BrokerUnavailable(ModstreamError):
    """The Kafka cluster cannot be reached right now."""

    retriable = True
