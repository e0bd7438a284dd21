"""The one error every settings check raises (config.py and config_backends.py)."""


class ConfigError(Exception):
    """A setting is wrong; the message is one line a person can act on."""
