"""The one exception type for mistakes a user can fix (bad path, bad config, bad checkpoint)."""


class UserError(Exception):
    """A problem with the user's input; its message says what to do. The CLI prints it on one line."""
