"""Entry point for `flask --app wsgi` and WSGI servers."""
import sys

from dashboard import create_app
from dashboard.config import ConfigurationError

# gunicorn restarts a worker that exits with any other status; on this one its master stops too.
GUNICORN_APP_LOAD_ERROR = 4

try:
    app = create_app()
except ConfigurationError as error:  # a setting to fix, not a bug: its name, without a traceback
    print(f"Reference Desk cannot start: {error}", file=sys.stderr)
    raise SystemExit(GUNICORN_APP_LOAD_ERROR if "gunicorn" in sys.modules else 2) from None
