"""The one exception family of musicstems."""

__all__ = ["MusicStemsError", "ModelLoadError", "ExportError"]


class MusicStemsError(ValueError):
    """Raised for every problem musicstems reports to its user.

    It derives from :class:`ValueError` because nearly all of them are bad input; the message
    names the argument, the value that was given and what to do instead.
    """


class ModelLoadError(MusicStemsError):
    """A generation model could not be found or loaded."""


class ExportError(MusicStemsError):
    """Audio or a manifest could not be written or read back."""
