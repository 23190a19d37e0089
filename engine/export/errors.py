"""The one error export raises for what a user can fix (a wrong file, format or backbone)."""


class ExportError(ValueError):
    """The export cannot be made; the message names the file and the reason. Nothing is left
    at the output path."""


class ExportCancelledError(ExportError):
    """The user stopped the export (``export_model``'s ``cancelled``); nothing was written."""
