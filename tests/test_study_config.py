"""Study plumbing that needs no model: the conditions it plays and how it calls CLI verbs."""

import typer

from negolens.study import Study, StudyConfig, _call


def test_conditions_cover_the_matrix_personalities_and_cot(tmp_path):
    full = Study(StudyConfig(), tmp_path / "full", log=lambda m: None).conditions()
    groups = {g: [c for c in full if c["group"] == g] for g in ("matrix", "personality", "cot")}
    assert len(groups["matrix"]) == 9 and len(groups["personality"]) == 9 and len(groups["cot"]) == 4
    assert {(c["buyer_label"], c["seller_label"]) for c in groups["matrix"]} == {
        (b, s) for b in ("untuned", "SFT", "rule") for s in ("untuned", "SFT", "rule")}
    sft = [c for c in groups["matrix"] if c["buyer_label"] == "SFT"][0]
    assert sft["buyer"].endswith("sft-buyer/checkpoint")
    assert all(c["buyer"].endswith("+cot") == c["cot"] for c in groups["cot"])
    quick = Study(StudyConfig.quick_preset(), tmp_path / "quick", log=lambda m: None).conditions()
    assert len([c for c in quick if c["group"] == "personality"]) == 3  # the diagonal only


def test_call_fills_typer_defaults():
    def verb(a: int = typer.Option(3), b: str = typer.Option("x")):
        return a, b

    assert _call(verb, b="y") == (3, "y")
