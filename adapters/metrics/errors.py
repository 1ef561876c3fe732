"""The adapter's error types."""


class ConfigError(Exception):
    """A flag or config file is invalid. The message names the flag/key and what is wrong; the
    program prints it as one line and exits 1."""
