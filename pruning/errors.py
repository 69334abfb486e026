"""The error every configuration check raises, in a module of its own that imports nothing, so that the
registries (models, protocols) below ``pruning.config`` can raise it without importing the configuration."""


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it and the fix."""
