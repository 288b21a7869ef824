"""The base class of every error a user fixes by changing their input; importing it costs nothing.

The CLI catches ``UserError`` before it has imported the modules that raise one (torch, Ray, MLflow
load only once the arguments and configs are valid), prints its message as one line and exits 2.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input (a config, a space, a name, a path) or a service it names that cannot be used; one line."""


class DataError(UserError, ValueError):
    """Task data that cannot be read as asked; the message is one line naming what is wrong."""


__all__ = ["DataError", "UserError"]
