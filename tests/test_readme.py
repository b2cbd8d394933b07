"""The README's figures are the generation script's latest output: docs/figures.py writes docs/figures.md,
and every marked block of the README must be an exact copy of the block of the same name there."""

import importlib.util

from conftest import ROOT

spec = importlib.util.spec_from_file_location("figures", ROOT / "docs" / "figures.py")
figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(figures)


def test_every_readme_figure_block_equals_the_scripts_latest_output():
    readme = figures.blocks((ROOT / "README.md").read_text())
    generated = figures.blocks((ROOT / "docs" / "figures.md").read_text())
    assert set(readme) == set(figures.SECTIONS), "the README should hold one block per section of docs/figures.py"
    for name, body in readme.items():
        assert body == generated.get(name), f"README block '{name}' differs from docs/figures.md: run make figures"


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
        "intro\n<!-- figures:bench -->\nnew\n<!-- /figures:bench -->\noutro\n")
