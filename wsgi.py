"""The WSGI entry point gunicorn loads: ``gunicorn wsgi:app``."""
from isvapp import create_app

app = create_app()
