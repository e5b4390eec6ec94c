"""``python -m isvapp.settings --write``: make README's configuration tables and
instance/config.example.py from the declarations; ``--check``: exit 1 when one is stale."""

import sys

from . import documents


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--write"]:
        for path in documents.write():
            print(f"wrote {path.relative_to(documents.ROOT)}")
        return 0
    if argv == ["--check"]:
        stale = documents.stale()
        for path in stale:
            print(
                f"{path.relative_to(documents.ROOT)} is not what isvapp/settings makes: run "
                f"`.venv/bin/python -m isvapp.settings --write`",
                file=sys.stderr,
            )
        return 1 if stale else 0
    print("usage: python -m isvapp.settings --write | --check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
