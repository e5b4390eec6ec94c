"""The documents agree with each other and with the code.

README.md (English) is the truth for commands and configuration; README.zh-CN.md and
docs/deploy.zh-CN.md are its Chinese counterparts, and every English guide has a Chinese twin
with the same sections. These checks read only the Markdown files, isvapp/config.py,
gunicorn.conf.py, setup.cfg, scripts/ and the migrations' file names: no app, no database.
"""

import configparser
import os
import re
from pathlib import Path

import pytest
from isvapp.config import DEFAULTS

pytestmark = pytest.mark.any_database  # the documents against the code

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_ZH = ROOT / "README.zh-CN.md"
DEPLOY = ROOT / "docs" / "deploy.md"
DEPLOY_ZH = ROOT / "docs" / "deploy.zh-CN.md"
HUAWEI = ROOT / "docs" / "deploy-huaweicloud.md"
HUAWEI_ZH = ROOT / "docs" / "deploy-huaweicloud.zh-CN.md"
CHANGELOG = ROOT / "CHANGELOG.md"
CHANGELOG_ZH = ROOT / "CHANGELOG.zh-CN.md"
MIGRATIONS = ROOT / "isvapp" / "storage" / "migrations" / "versions"
# Each English document and its Chinese twin: the same sections, in the same order.
TWINS = [(DEPLOY, DEPLOY_ZH), (HUAWEI, HUAWEI_ZH), (CHANGELOG, CHANGELOG_ZH)]

# Settings read from the environment only (not through Flask's config, so not in DEFAULTS).
ENVIRONMENT_ONLY = {
    "ISVAPP_INSTANCE_PATH",  # isvapp/__init__.py: where the instance folder is
    "ISVAPP_BIND",
    "ISVAPP_WORKERS",
    "ISVAPP_WORKER_TIMEOUT",  # gunicorn.conf.py
    "ISVAPP_ACCESS_LOG",
    "ISVAPP_LOG_LEVEL",
    "ISVAPP_FORWARDED_ALLOW_IPS",  # gunicorn.conf.py
    "ISVAPP_TEST_POSTGRES",  # scripts/test.sh
    "ISVAPP_PYTHON",  # scripts/venv.sh: the interpreter a new .venv is made with
    "PROMETHEUS_MULTIPROC_DIR",  # isvapp/metrics.py, prometheus-client: where the processes' counts are
    "ISVAPP_TEST_PARALLEL",  # scripts/test.sh
}
# UPPER_CASE words in backticks that are protocol values, not settings.
NOT_SETTINGS = {
    "ONE_TIME",
    "ON_DEMAND",
    "ON_DEMAND_PKG",
    "RENEWAL",
    "RENEWAL_CHANGE",
    "TRIAL_TO_FORMAL",
    "UNSUBSCRIBE_RENEWAL_PERIOD",
    "UTF_8",
}
COMMAND_PREFIXES = ("flask --app isvapp", "./scripts/", ".venv/bin/", "isvapp-sim")


def read(path):
    return path.read_text(encoding="utf-8")


# --- Markdown pieces -------------------------------------------------------------------------------

FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.S | re.M)
INLINE = re.compile(r"`([^`]+)`")  # a code span may run over a line break


def code_blocks(text):
    """The fenced blocks' contents, each dedented by its fence's indentation."""
    blocks = []
    for match in re.finditer(r"^([ \t]*)```[^\n]*\n(.*?)^\1```[ \t]*$", text, re.S | re.M):
        indent = match.group(1)
        lines = [line[len(indent) :] if line.startswith(indent) else line for line in match.group(2).splitlines()]
        blocks.append("\n".join(lines))
    return blocks


def prose(text):
    """The text without its fenced blocks."""
    return FENCE.sub("", text)


def code_pieces(text):
    """Every line of every fenced block, and every inline code span outside them."""
    pieces = [line for block in code_blocks(text) for line in block.splitlines()]
    return pieces + [" ".join(span.split()) for span in INLINE.findall(prose(text))]


def section(text, heading):
    """From the level-2 heading that starts with ``heading`` to the next level-2 heading."""
    match = re.search(rf"^## {re.escape(heading)}[^\n]*\n(.*?)(?=^## |\Z)", prose(text), re.S | re.M)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def table_first_column(text):
    """The first cell of each row of the first Markdown table in ``text`` (header and rule left out)."""
    rows, started = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("|"):
            started = True
            rows.append(line)
        elif started:
            break
    assert len(rows) > 2, "no table"
    cells = [re.split(r"(?<!\\)\|", row.strip())[1].strip() for row in rows]
    assert set(cells[1]) <= set("-: "), f"second row is not a table rule: {rows[1]!r}"
    return cells[2:]


KEY = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")


def keys_in(cells):
    found = set()
    for cell in cells:
        for code in INLINE.findall(cell):
            if KEY.match(code):
                found.add(code)
    return found


def english_table_keys():
    return keys_in(table_first_column(section(read(README), "Configuration")))


def chinese_table_keys():
    return keys_in(table_first_column(section(read(README_ZH), "配置")))


def named_settings(text):
    """UPPER_CASE setting names in code: `KEY`, `KEY = value`, `ISVAPP_KEY=...` (the leading name)."""
    names = set()
    for piece in code_pieces(text):
        if any(prefix in piece for prefix in COMMAND_PREFIXES):
            # a command line: its upper-case arguments are placeholders (NAME, INSTANCE_ID, KIT_KEY);
            # only the environment it is given (ISVAPP_KOO_AK=dev) names settings
            names.update(re.findall(r"(?<![\w$])([A-Z][A-Z0-9_]*)=", piece))
            continue
        for word in re.findall(r"(?<![\w$<{./-])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{4,})(?![\w>}])", piece):
            names.add(word)
    return names


def settings_named(text):
    """The names among ``named_settings`` that are meant as settings."""
    found = set()
    for name in named_settings(text):
        if name in NOT_SETTINGS or name.startswith("MOCK"):
            continue
        if "_" not in name and name not in DEFAULTS:  # UNIQUE, IMMEDIATE, SQL words ...
            continue
        found.add(name)
    return found


def setting_known(name):
    if name in DEFAULTS or name in ENVIRONMENT_ONLY:
        return True
    return name.startswith("ISVAPP_") and name[len("ISVAPP_") :] in DEFAULTS  # ISVAPP_<KEY> form


# --- commands --------------------------------------------------------------------------------------


def commands(text):
    """Command names in code: the prefix, then sub-command words (lower-case, no options or
    arguments), e.g. ``flask --app isvapp jobs retry`` for ``flask --app isvapp jobs retry ID``."""
    found = set()
    for piece in code_pieces(text):
        for part in re.split(r"&&|\|\||;|\|", piece):
            part = part.strip()
            part = re.sub(r"^(?:\$ )?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*", "", part)  # VAR=value prefixes
            prefix = next((p for p in COMMAND_PREFIXES if part.startswith(p)), None)
            if prefix is None:
                continue
            words = part.split()
            name = words[: len(prefix.split())]
            if prefix in ("./scripts/", ".venv/bin/"):
                name = words[:1]
            if words[:3] == [".venv/bin/flask", "--app", "isvapp"]:
                name = words[:3]
            if name[0].endswith("isvapp-sim"):
                found.add(normalise(name[0]))
                continue
            for word in words[len(name) :]:
                if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
                    break
                name.append(word)
                if prefix.startswith(".venv/bin/") and name[0] not in (".venv/bin/flask", ".venv/bin/isvapp"):
                    break  # .venv/bin/pip install: the tool and its verb
            found.add(normalise(" ".join(name)))
    return found


def normalise(command):
    """``.venv/bin/flask --app isvapp X`` is ``flask --app isvapp X``, ``.venv/bin/isvapp-sim`` is ``isvapp-sim``."""
    return re.sub(r"^\.venv/bin/(?=flask |isvapp-sim$)", "", command)


# --- links -----------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)


def links(path):
    text = prose(read(path))
    text = INLINE.sub("", text)  # a link written as code is not a link
    return LINK.findall(text) + REFERENCE.findall(text)


def is_external(target):
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target)) or target.startswith("//")


DOCS = [README, README_ZH, CHANGELOG, CHANGELOG_ZH] + sorted((ROOT / "docs").glob("*.md"))


# --- tests -----------------------------------------------------------------------------------------


def test_the_chinese_documents_exist():
    assert README_ZH.is_file()
    assert DEPLOY_ZH.is_file()


@pytest.mark.parametrize("english, chinese", TWINS, ids=lambda p: p.name)
def test_every_guide_and_its_twin_are_checked(english, chinese):
    """Both exist, link to each other, and are among the documents whose links are checked."""
    assert english.is_file() and chinese.is_file()
    assert english in DOCS and chinese in DOCS
    assert chinese.name in [t.split("#")[0].rsplit("/", 1)[-1] for t in links(english)], (
        f"{english.name} has no link to {chinese.name}"
    )
    assert english.name in [t.split("#")[0].rsplit("/", 1)[-1] for t in links(chinese)], (
        f"{chinese.name} has no link to {english.name}"
    )


def test_the_english_configuration_table_is_found():
    keys = english_table_keys()
    assert {"KOO_ACCESS_KEY", "SECRET_KEY", "SQLALCHEMY_DATABASE_URI"} <= keys
    assert len(keys) >= 20, sorted(keys)


def test_every_english_configuration_key_is_in_the_chinese_readme():
    chinese_table = chinese_table_keys()
    missing = sorted(english_table_keys() - chinese_table)
    assert not missing, f"in README.md's configuration table, missing from README.zh-CN.md's: {missing}"


def test_every_chinese_configuration_key_is_in_the_english_table():
    extra = sorted(chinese_table_keys() - english_table_keys())
    assert not extra, f"in README.zh-CN.md's configuration table, not in README.md's: {extra}"


@pytest.mark.parametrize(
    "path", [README, README_ZH, DEPLOY, DEPLOY_ZH, HUAWEI, HUAWEI_ZH, CHANGELOG, CHANGELOG_ZH], ids=lambda p: p.name
)
def test_every_named_setting_exists_in_the_code(path):
    unknown = sorted(name for name in settings_named(read(path)) if not setting_known(name))
    assert not unknown, f"{path.name} names settings isvapp/config.py DEFAULTS does not have: {unknown}"


@pytest.mark.parametrize("path", [README, README_ZH], ids=lambda p: p.name)
def test_every_table_key_exists_in_the_code(path):
    keys = english_table_keys() if path == README else chinese_table_keys()
    unknown = sorted(key for key in keys if not setting_known(key))
    assert not unknown, f"{path.name}'s configuration table lists keys isvapp does not read: {unknown}"


def test_environment_only_settings_are_read_by_the_code():
    sources = "\n".join(
        read(p)
        for p in [
            ROOT / "gunicorn.conf.py",
            *sorted((ROOT / "isvapp").rglob("*.py")),
            *sorted((ROOT / "scripts").glob("*.sh")),
        ]
    )
    unread = sorted(name for name in ENVIRONMENT_ONLY if name not in sources)
    assert not unread, f"documented as environment-only but read nowhere: {unread}"


def test_the_commands_are_found():
    found = commands(read(README))
    assert {
        "./scripts/run.sh",
        "./scripts/test.sh",
        ".venv/bin/isvapp create-admin",
        ".venv/bin/isvapp kit-keygen",
        ".venv/bin/isvapp jobs list",
    } <= found, sorted(found)


GUIDES = [(README, README_ZH), (DEPLOY, DEPLOY_ZH), (HUAWEI, HUAWEI_ZH)]


@pytest.mark.parametrize("english, chinese", GUIDES, ids=["README", "deploy", "huaweicloud"])
def test_every_english_command_is_in_the_chinese_document(english, chinese):
    missing = sorted(commands(read(english)) - commands(read(chinese)))
    assert not missing, f"commands in {english.name} missing from {chinese.name}: {missing}"


@pytest.mark.parametrize("english, chinese", GUIDES, ids=["README", "deploy", "huaweicloud"])
def test_every_chinese_command_is_in_the_english_document(english, chinese):
    extra = sorted(commands(read(chinese)) - commands(read(english)))
    assert not extra, f"commands in {chinese.name} that {english.name} does not have: {extra}"


def test_the_chinese_readme_has_the_two_commands_as_code_blocks():
    blocks = [block.strip() for block in code_blocks(read(README_ZH))]
    assert "./scripts/run.sh" in blocks
    assert "./scripts/test.sh" in blocks


@pytest.mark.parametrize("english, chinese", [(DEPLOY, DEPLOY_ZH), (HUAWEI, HUAWEI_ZH)], ids=["deploy", "huaweicloud"])
def test_the_deploy_guides_code_blocks_are_copied_exactly(english, chinese):
    assert code_blocks(read(chinese)) == code_blocks(read(english)), (
        f"the code blocks of {english.name} and {chinese.name} differ: the commands are the same in both languages"
    )


def headings(path):
    """Each heading's level, in order."""
    return [len(m.group(1)) for m in re.finditer(r"^(#{1,6}) ", prose(read(path)), re.M)]


@pytest.mark.parametrize("english, chinese", TWINS, ids=lambda p: p.name)
def test_the_twins_have_the_same_sections(english, chinese):
    def steps(path):
        return re.findall(r"^(\d+)\. ", prose(read(path)), re.M)

    assert len(headings(english)) > 2, f"{english.name}: no sections found"
    assert headings(chinese) == headings(english), (
        f"{english.name} and {chinese.name}: headings differ (levels, in order)"
    )
    assert steps(chinese) == steps(english), f"{english.name} and {chinese.name}: numbered steps differ"


@pytest.mark.parametrize("english, chinese", [(DEPLOY, DEPLOY_ZH), (HUAWEI, HUAWEI_ZH)], ids=["deploy", "huaweicloud"])
def test_the_deploy_guides_name_the_same_settings(english, chinese):
    english_names, chinese_names = settings_named(read(english)), settings_named(read(chinese))
    assert chinese_names == english_names, (
        f"only in {english.name}: {sorted(english_names - chinese_names)}; "
        f"only in {chinese.name}: {sorted(chinese_names - english_names)}"
    )


# --- the Huawei Cloud guide's sources --------------------------------------------------------------

CITATION = re.compile(r"(?<![\]\w])\[([A-Z]+\d+)\](?![(:\[])")


def cited_and_defined(path):
    """The tags cited in the text ([K1]) and the tags given a page ([K1]: https://...)."""
    text = INLINE.sub("", prose(read(path)))
    return set(CITATION.findall(text)), {label for label in re.findall(r"^\[([A-Z]+\d+)\]:\s*\S+", text, re.M)}


@pytest.mark.parametrize("path", [HUAWEI, HUAWEI_ZH], ids=lambda p: p.name)
def test_every_cited_huawei_page_is_named(path):
    cited, defined = cited_and_defined(path)
    assert len(defined) > 10, f"{path.name}: the sources were not found"
    assert cited == defined, (
        f"{path.name}: cited without a page: {sorted(cited - defined)}; a page never cited: {sorted(defined - cited)}"
    )


def test_the_huawei_guides_cite_the_same_pages():
    assert cited_and_defined(HUAWEI_ZH)[1] == cited_and_defined(HUAWEI)[1]


# --- the changelog ---------------------------------------------------------------------------------


def changelog_versions(path):
    return re.findall(r"^## \[(\d+)\.(\d+)\.(\d+)\]", read(path), re.M)


def setup_cfg_version():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return tuple(int(part) for part in parser["metadata"]["version"].split("."))


def test_the_changelogs_newest_version_is_setup_cfgs_or_the_next():
    major, minor, patch = setup_cfg_version()
    allowed = {(major, minor, patch), (major, minor, patch + 1), (major, minor + 1, 0), (major + 1, 0, 0)}
    versions = [tuple(int(part) for part in v) for v in changelog_versions(CHANGELOG)]
    assert versions, "CHANGELOG.md has no '## [X.Y.Z]' entry"
    assert versions[0] in allowed, (
        f"CHANGELOG.md's newest entry is {versions[0]}; setup.cfg says {(major, minor, patch)}: "
        f"the newest entry must be that version or the next one"
    )
    assert (major, minor, patch) in versions, "setup.cfg's version has no entry in CHANGELOG.md"
    assert versions == sorted(set(versions), reverse=True), "CHANGELOG.md's entries are not newest first, once each"
    assert changelog_versions(CHANGELOG_ZH) == changelog_versions(CHANGELOG), "the two changelogs list other versions"


def test_every_migration_is_named_by_one_changelog_entry():
    on_disk = sorted(re.match(r"\d+_(\d{4})_", p.name).group(1) for p in MIGRATIONS.glob("*_[0-9][0-9][0-9][0-9]_*.py"))
    assert len(on_disk) > 10, "no migrations found"
    for path, heading in [(CHANGELOG, "Migrations"), (CHANGELOG_ZH, "数据库迁移")]:
        entries = re.split(r"^## ", read(path), flags=re.M)[1:]
        named = []
        for entry in entries:
            found = re.search(rf"^### {heading}\n(.*?)(?=^##|\Z)", entry, re.S | re.M)
            assert found, f"{path.name}: the entry '## {entry.splitlines()[0]}' has no '### {heading}'"
            named += re.findall(r"^- (\d{4}) ", found.group(1), re.M)
        assert sorted(named) == on_disk, f"{path.name} names migrations {sorted(named)}; the code has {on_disk}"


def test_readme_links_to_the_chinese_readme():
    assert "README.zh-CN.md" in [t.split("#")[0] for t in links(README)], "README.md has no link to README.zh-CN.md"


def test_chinese_readme_links_to_the_english_readme():
    assert "README.md" in [t.split("#")[0] for t in links(README_ZH)], "README.zh-CN.md has no link to README.md"


def test_chinese_deploy_guide_links_to_the_english_one():
    assert "deploy.md" in [t.split("#")[0] for t in links(DEPLOY_ZH)], "docs/deploy.zh-CN.md has no link to deploy.md"


def test_links_are_found():
    assert "docs/deploy.md" in links(README), links(README)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_inside_the_repository(path):
    assert "../shared" not in read(path), f"{path.name} mentions ../shared"
    broken, outside = [], []
    for target in links(path):
        if is_external(target) or target.startswith("#"):
            continue
        file_part = target.split("#")[0].split("?")[0]
        resolved = (ROOT / file_part.lstrip("/")) if file_part.startswith("/") else (path.parent / file_part)
        resolved = Path(os.path.normpath(resolved))
        if resolved != ROOT and ROOT not in resolved.parents:
            outside.append(target)
        elif not resolved.exists():
            broken.append(target)
    assert not outside, f"{path.name} links outside the repository: {outside}"
    assert not broken, f"{path.name} links to files that do not exist: {broken}"


@pytest.mark.parametrize("path", [README_ZH, DEPLOY_ZH, HUAWEI_ZH, CHANGELOG_ZH], ids=lambda p: p.name)
def test_chinese_documents_link_outside_only_to_huawei(path):
    others = []
    for target in links(path):
        if is_external(target):
            host = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", target).split("/")[0].split(":")[0].lower()
            if not (host == "huaweicloud.com" or host.endswith(".huaweicloud.com")):
                others.append(target)
    assert not others, f"{path.name} links to sites other than Huawei Cloud's: {others}"


# --- the architecture map --------------------------------------------------------------------------

ARCHITECTURE = ROOT / "docs" / "architecture.md"
ARCHITECTURE_ZH = ROOT / "docs" / "architecture.zh-CN.md"


def layer_table(path):
    """(layer index, the backticked paths in its folder cell) for each row of the layers table."""
    rows = [
        line
        for line in section(read(path), "The layers" if path == ARCHITECTURE else "分层").splitlines()
        if line.startswith("| ") and not line.startswith("|---")
    ][1:]
    return [INLINE.findall(row.split("|")[2]) for row in rows]


def test_the_architecture_maps_are_twins():
    assert [len(m.group(1)) for m in re.finditer(r"^(#{1,6}) ", read(ARCHITECTURE_ZH), re.M)] == [
        len(m.group(1)) for m in re.finditer(r"^(#{1,6}) ", read(ARCHITECTURE), re.M)
    ]
    assert re.findall(r"^(\d+)\. ", read(ARCHITECTURE_ZH), re.M) == re.findall(r"^(\d+)\. ", read(ARCHITECTURE), re.M)
    assert layer_table(ARCHITECTURE_ZH) == layer_table(ARCHITECTURE)
    assert "architecture.zh-CN.md" in links(ARCHITECTURE) and "architecture.md" in links(ARCHITECTURE_ZH)


def test_the_architecture_layers_are_the_ones_the_import_check_enforces():
    from .helpers import LAYERS

    def as_modules(paths):
        return {p.rstrip("/").removesuffix(".py").removesuffix("/__init__").replace("/", ".") for p in paths}

    assert [as_modules(paths) for paths in layer_table(ARCHITECTURE)] == [members for _, members in LAYERS]


@pytest.mark.parametrize("path", [ARCHITECTURE, ARCHITECTURE_ZH], ids=lambda p: p.name)
def test_every_module_the_architecture_names_exists(path):
    missing = []
    for span in INLINE.findall(read(path)):
        if span.startswith(("isvapp/", "produce/", "bench/", "docs/", "tests/")) or span.endswith(".md"):
            candidates = [ROOT / span, ROOT / "isvapp" / span]
        elif re.fullmatch(r"(koo|domain|background|market|storage)\.\w+", span):
            module = ROOT / "isvapp" / span.replace(".", "/")
            candidates = [module.with_suffix(".py"), module / "__init__.py"]
        else:
            continue
        if not any(c.exists() for c in candidates):
            missing.append(span)
    assert not missing, f"{path.name} names what does not exist: {missing}"
