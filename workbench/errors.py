"""The one exception for user mistakes.

`WorkbenchInputError` is raised for anything a user can get wrong: an unknown model, a
malformed site address, a bad option, a missing or malformed file. The CLI and the app show it
as one line naming the input and what is accepted. Every other exception is a bug in the
workbench (or in a library it calls) and is shown as one, with its traceback.
"""
from __future__ import annotations


class WorkbenchInputError(ValueError):
    """A user mistake: the message names the input and what would be accepted."""


class MissingInputError(WorkbenchInputError, FileNotFoundError):
    """A file or directory the user named does not exist (or is not what it should be)."""
