"""The README's figures are the generation script's latest output: docs/figures.py writes docs/figures.md,
and every marked block of the README and the docs pages must be an exact copy of the block of the same
name there. The README is a front door: short, and every link in it and its pages leads somewhere."""

import importlib.util
import re

from conftest import ROOT

spec = importlib.util.spec_from_file_location("figures", ROOT / "docs" / "figures.py")
figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(figures)


def test_every_figure_block_of_the_pages_equals_the_scripts_latest_output():
    generated = figures.blocks((ROOT / "docs" / "figures.md").read_text())
    found = {}
    for page in figures.pages():
        for name, body in figures.blocks(page.read_text()).items():
            assert name not in found, f"block '{name}' is on {found[name].name} and on {page.name}"
            found[name] = page
            assert body == generated.get(name), (
                f"{page.name} block '{name}' differs from docs/figures.md: run make figures"
            )
    assert set(found) == set(figures.SECTIONS), "the pages should hold one block per section of docs/figures.py"
    for name in ("results", "ensembles", "jobs", "kaggle"):  # the Kaggle entrant's tables, off the front door
        assert found[name].name == "kaggle.md", name


def anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    return {
        re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"(?m)^#+ (.*)$", text)
    }


def test_the_readme_is_a_front_door_and_every_link_resolves():
    readme = (ROOT / "README.md").read_text()
    assert readme.count("\n") <= 150 and len(readme.encode()) < 15_000
    assert "Deep Learning from Scratch" in readme and "cs231n" in readme  # the textbook the lesson follows
    for path in ("## If you are learning backpropagation", "## If you are here for Kaggle", "## If you teach"):
        assert f"\n{path}\n" in readme, path  # one path each for the student, the Kaggle entrant, the teacher
    setup = readme[readme.index("## Set up") :].split("\n## ")[0]
    commands = re.findall(r"```sh\n(.*?)```", setup, re.S)
    assert len(commands) == 1 and [line.split()[:2] for line in commands[0].splitlines()] == [
        ["make", "train"],
        ["make", "test"],
    ]  # the two set-up commands, and nothing else to type
    for page in figures.pages():
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            assert resolved.exists(), f"{page.name}: link {target} leads nowhere"
            if anchor:
                assert resolved.suffix == ".md" and anchor in anchors(resolved.read_text()), (
                    f"{page.name}: link {target}: no such section"
                )


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for page in figures.pages()[1:]:
        assert f"](docs/{page.name})" in readme, f"docs/{page.name} is not linked from the README"


def test_each_block_says_when_and_where_it_was_measured():
    for name, body in figures.blocks((ROOT / "docs" / "figures.md").read_text()).items():
        if name != "bad-inputs":
            assert body.startswith("_Measured 20"), name


def test_the_results_table_has_a_row_for_every_config_it_measures():
    body = figures.blocks((ROOT / "docs" / "figures.md").read_text())["results"]
    for name, _, _ in figures.RESULTS:
        assert f"| `{name}.yaml` |" in body


def test_replacing_blocks_touches_only_the_marked_text():
    text = "intro\n<!-- figures:bench -->\nold\n<!-- /figures:bench -->\noutro\n"
    assert figures.replace_blocks(text, {"bench": "new\n"}) == (
        "intro\n<!-- figures:bench -->\nnew\n<!-- /figures:bench -->\noutro\n"
    )


def readme_commands(text: str) -> list[list[str]]:
    """Every `bp-train ...` command the README shows, in code spans and blocks, as words."""
    found, blocks = [], re.findall(r"```sh\n(.*?)```", text, re.S)
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))]
    for snippet in blocks + spans:  # a span may be wrapped over two lines of the page
        for line in snippet.splitlines():
            line = line.split("#")[0].replace(".venv/bin/bp-train", "bp-train")
            if "bp-train " in line:
                found.append(line[line.index("bp-train ") :].split()[1:])
    return found


def test_every_command_and_option_the_readme_shows_exists():
    """A command the README shows is one bp-train has, with options it takes and a value for each that
    needs one: the same parser a user's shell line meets, asked to check the words without running them."""
    import click

    from bp_train.cli import main

    commands = readme_commands((ROOT / "README.md").read_text())
    assert len(commands) >= 8
    for words in (w for w in commands if not any(word.isupper() for word in w)):  # not `bp-train COMMAND --help`
        context = click.Context(main)
        command, rest = main, list(words)
        while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
            command = command.get_command(context, rest.pop(0))
            assert command is not None, f"README: bp-train {' '.join(words)}: no such command"
        options = {name: option for option in command.params for name in option.opts}
        options.update({name: command.get_help_option(context) for name in ("--help", "-h")})
        for i, word in enumerate(rest):
            if word.startswith("--"):
                assert word in options, f"README: bp-train {' '.join(words)}: {word} is not an option"
                if not options[word].is_flag:
                    assert i + 1 < len(rest) and not rest[i + 1].startswith("--"), (
                        f"README: bp-train {' '.join(words)}: {word} needs a value"
                    )
