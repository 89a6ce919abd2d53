"""Single source of the version: the extension, the server package and the client share it."""
__version__ = "0.2.0"
