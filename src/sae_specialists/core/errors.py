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
