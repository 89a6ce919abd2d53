"""pixelgres: multimodal AI data infrastructure inside PostgreSQL.

``import pixelgres as pxt`` gives the Pixeltable-style client API. The package also holds
the server-side code (``pixelgres.server``) that the backend imports from its private
directory; the client API is therefore loaded lazily so the server never imports psycopg.
"""
from ._version import __version__

__all__ = ["__version__"]
