"""Errors a user can act on: the CLI prints their message (no traceback) and exits non-zero."""


class LsmapError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class InputError(LsmapError):
    """An input file or dataset is unusable; the message names the file and the problem."""


class UnreadableInputError(InputError):
    """Part of an input mosaic cannot be read (corrupt or missing chunk); names file and window."""


class StorageError(LsmapError):
    """A storage URI cannot be reached or written; the message names the URI and why."""
