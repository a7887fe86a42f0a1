"""Entry point for `flask --app wsgi` and WSGI servers."""
from dashboard import create_app

app = create_app()
