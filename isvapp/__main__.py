"""The ``isvapp`` command: ``isvapp COMMAND`` is ``flask --app isvapp COMMAND``, under a name of its own.

A merchant types what the pages and the README print; flask needs the virtual environment's
flask on the PATH and the app named, while ``.venv/bin/isvapp jobs list`` (or
``python -m isvapp``) needs neither. tests/test_commands.py keeps every hint in that form.
"""

from flask.cli import FlaskGroup


def _create_app():
    from . import create_app

    return create_app()


def main(argv=None):
    group = FlaskGroup(
        name="isvapp",
        create_app=_create_app,
        add_version_option=False,
        help="isvapp's commands: the same as `flask --app isvapp COMMAND`.",
    )
    return group.main(args=argv, prog_name="isvapp")


if __name__ == "__main__":
    main()
