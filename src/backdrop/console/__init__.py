"""The review console: people approve what goes out, and see what works, in the browser.

``backdrop console --store STORE`` serves it at ``/console``; ``backdrop serve`` mounts it there too.
:mod:`.core` is the domain (the store's review tables, the read-only event log, thumbnails),
:mod:`.auth` who may do what, :mod:`.app` the routes, :mod:`.results` the results page's figures;
the pages are Jinja2 templates in ``backdrop/templates/console``.
"""

from .app import console_app, create_console
from .auth import ROLES, Keyring, User, add_user
from .core import Console, ConsoleConfig

__all__ = ["ROLES", "Console", "ConsoleConfig", "Keyring", "User", "add_user", "console_app", "create_console"]
