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
    assert found["results"].name == "README.md"  # the front door shows what the configs reach


def anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    return {
        re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"(?m)^#+ (.*)$", text)
    }


def test_the_readme_is_a_front_door_and_every_link_resolves():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) < 15_000
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
