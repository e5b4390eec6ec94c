"""The documents made from the declarations: README's configuration table (English and Chinese)
and instance/config.example.py. ``python -m isvapp.settings --write`` writes them;
``--check`` (and tests/test_settings.py) fails while one is not what the declarations make.

In each README the table sits between two marker lines; what is around it is written by hand.
"""

import textwrap
from pathlib import Path

from .sections import ENVIRONMENT_ONLY, GROUPS, declared_in

ROOT = Path(__file__).resolve().parent.parent.parent
START = "<!-- settings: made from isvapp/settings by `.venv/bin/python -m isvapp.settings --write`; edit them there -->"
END = "<!-- end of the settings -->"
EXAMPLE_HEAD = """\
# Every setting isvapp reads, with its default. Copy what you change into instance/config.py,
# or set it as an environment variable ISVAPP_<KEY> (e.g. ISVAPP_KOO_ACCESS_KEY).
# Made from isvapp/settings by `.venv/bin/python -m isvapp.settings --write`: edit them there.
"""
LANGUAGES = {
    "en": ("| key | default | meaning |", "unset", "Environment only (gunicorn.conf.py, the instance folder)"),
    "zh": ("| 配置项 | 默认值 | 含义 |", "未设置", "仅环境变量（gunicorn.conf.py、instance 目录）"),
}


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def shown_default(declared, unset):
    """A default as the table shows it: what a merchant would write, in code."""
    value = declared.default
    if value is None:
        return unset
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if value == "":
        return '`""`'
    return f"`{declared.example or value}`" if isinstance(value, int) else f"`{value}`"


def table(language):
    """README's configuration table in ``language`` ("en" or "zh"), one row per setting under its
    group's title, the environment-only variables last."""
    header, unset, environment = LANGUAGES[language]
    rows = [header, "| --- | --- | --- |"]
    for group, title, title_zh in GROUPS:
        rows.append(f"| **{title if language == 'en' else title_zh}** | | |")
        for declared in declared_in(group):
            doc = declared.doc if language == "en" else declared.zh
            rows.append(f"| `{declared.name}` | {shown_default(declared, unset)} | {_cell(doc)} |")
    rows.append(f"| **{environment}** | | |")
    for variable in ENVIRONMENT_ONLY:
        default = unset if variable.default is None else f"`{variable.default}`"
        doc = variable.doc if language == "en" else variable.zh
        rows.append(f"| `{variable.name}` | {default} | {_cell(doc)} |")
    return "\n".join(rows) + "\n"


def _python(value):
    """``value`` as Python source, text in double quotes (as the rest of the project writes it)."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def example():
    """instance/config.example.py: every setting with its default (or a placeholder), its line of
    documentation above it."""
    parts = [EXAMPLE_HEAD]
    for group, title, _ in GROUPS:
        parts.append(f"\n# --- {title} ---\n")
        for declared in declared_in(group):
            lines = textwrap.wrap(declared.doc, 98)
            parts.append("\n" + "".join(f"# {line}\n" for line in lines))
            value = declared.example or _python(declared.default)
            parts.append(f"{declared.name} = {value}\n")
    return "".join(parts)


def with_table(text, language):
    """``text`` (a README) with the part between the markers made again."""
    start, end = text.index(START) + len(START), text.index(END)
    return text[:start] + "\n\n" + table(language) + "\n" + text[end:]


def documents():
    """{path: (what it holds now, what the declarations make)}."""
    readme, readme_zh = ROOT / "README.md", ROOT / "README.zh-CN.md"
    example_path = ROOT / "instance" / "config.example.py"
    found = {}
    for path, language in ((readme, "en"), (readme_zh, "zh")):
        text = path.read_text(encoding="utf-8")
        found[path] = (text, with_table(text, language))
    found[example_path] = (example_path.read_text(encoding="utf-8"), example())
    return found


def stale():
    """The documents that are not what the declarations make."""
    return [path for path, (now, made) in documents().items() if now != made]


def write():
    """Write every document that changed; returns their paths."""
    changed = []
    for path, (now, made) in documents().items():
        if now != made:
            path.write_text(made, encoding="utf-8")
            changed.append(path)
    return changed
