"""The one exception family of musicstems."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["MusicStemsError", "ModelLoadError", "ExportError", "CallbackError",
           "MusicStemsWarning"]


class MusicStemsError(ValueError):
    """Raised for every problem musicstems reports to its user.

    It derives from :class:`ValueError` because nearly all of them are bad input; the message
    names the argument, the value that was given and what to do instead.

    Parameters
    ----------
    message : str
        The whole sentence shown to the user, in Python words (``duration_s=45.0``).
    arguments : mapping of str -> value, optional
        The arguments the message names, the one at fault first, with the values it shows.
        A front end that spells arguments differently (the CLI's ``--duration 45``) rewrites
        the message from these instead of parsing it.
    """

    def __init__(self, message: str, *, arguments: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.arguments: dict[str, Any] = dict(arguments or {})

    @property
    def argument(self) -> str | None:
        """The name of the argument at fault, or None when the message names none."""
        return next(iter(self.arguments), None)


class ModelLoadError(MusicStemsError):
    """A generation model could not be found or loaded."""


class ExportError(MusicStemsError):
    """Audio or a manifest could not be written or read back."""


class CallbackError(MusicStemsError):
    """The user's ``callback`` raised: the song was stopped there and nothing was saved. The
    callback's own exception is chained as ``__cause__``."""


class MusicStemsWarning(UserWarning):
    """Something the user should hear about that does not stop the work: e.g. a stem that does
    not fit the song's plan is still mixed, and the warning names it."""
