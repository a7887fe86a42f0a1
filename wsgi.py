"""Entry point for `flask --app wsgi` and WSGI servers."""
import sys

from dashboard import create_app
from dashboard.config import ConfigurationError

try:
    app = create_app()
except ConfigurationError as error:  # a setting to fix, not a bug: its name, without a traceback
    print(f"Reference Desk cannot start: {error}", file=sys.stderr)
    raise SystemExit(2) from None
