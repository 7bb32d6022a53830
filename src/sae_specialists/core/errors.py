"""User-facing errors: each message says what is wrong, where, and how to fix it."""


class UserError(Exception):
    """An error caused by the user's input (config, texts, model or SAE files)."""


class ConfigError(UserError):
    pass


class TextsError(UserError):
    pass


class ModelError(UserError):
    pass


class SAEError(UserError):
    pass


class HubUnreachableError(UserError):
    pass


class ShardError(UserError):
    pass


def _shown(value) -> str:
    """A --config value as typed (Snakemake reads ``[99]`` as a list of strings)."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}"
    return str(value)


def config_sources(config_files, overrides=None) -> str:
    """The configuration a run actually read: its config files and any --config values."""
    files = [str(f) for f in config_files] or ["no config file"]
    text = ", ".join(files)
    if overrides:
        text += "; --config " + " ".join(f"{k}={_shown(v)}" for k, v in dict(overrides).items())
    return text


def startup_failure(err: UserError, config_files, overrides=None) -> str:
    """What a run that cannot start prints, as its last lines: which configuration was read,
    then the problem (what, where, how to fix)."""
    sources = config_sources(config_files, overrides)
    return f"sae-specialists: cannot start (configuration: {sources})\n{err}"


class exit_on_user_error:
    """``with exit_on_user_error(files, overrides): ...`` in the Snakefile: a ``UserError`` ends
    the run at once with ``startup_failure``'s lines on stderr and exit status 1, instead of
    Snakemake's exception report with traceback lines."""

    def __init__(self, config_files, overrides=None):
        self.config_files = config_files  # a list, or a callable giving it when the error comes
        self.overrides = overrides

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if kind is not None and issubclass(kind, UserError):
            files = self.config_files() if callable(self.config_files) else self.config_files
            raise SystemExit(startup_failure(err, files, self.overrides))
        return False
