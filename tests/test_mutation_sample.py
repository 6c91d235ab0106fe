"""The mutation run's random sample (bench/mutation.py ``--sample``) survives code changes: a
run spread over sessions must keep measuring the mutants it drew, not redraw a package each
time one function is edited."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import mutation


def _mutants(functions: dict[str, int]) -> list[mutation.Mutant]:
    """``n`` mutants of each ``module.function`` (all in alerts/delivery)."""
    return [
        mutation.Mutant(
            name=f"alerts.delivery.{name}__mutmut_{i}",
            path=Path("alerts/delivery") / f"{name.partition('.')[0]}.py",
            status="not checked",
        )
        for name, n in functions.items()
        for i in range(1, n + 1)
    ]


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(mutation, "STATE", tmp_path)
    return tmp_path


def test_the_first_draw_takes_the_fraction_of_each_package_and_is_kept(state: Path) -> None:
    code = _mutants({f"m{k}.x_f{k}": 30 for k in range(10)})

    first = {m.name for m in mutation.sample(code, 0.1, seed=1)}

    assert len(first) == 30
    assert (state / "sample-0.1-seed1.json").exists()
    assert {m.name for m in mutation.sample(code, 0.1, seed=1)} == first
    assert {m.name for m in mutation.sample(code, 0.1, seed=2)} != first  # a file per seed


def test_editing_or_adding_a_function_keeps_the_rest_of_the_draw(state: Path) -> None:
    before = {f"m{k}.x_f{k}": 30 for k in range(10)}
    first = {m.name for m in mutation.sample(_mutants(before), 0.1, seed=1)}
    edited = {**before, "m0.x_f0": 20, "m9.x_new": 400}  # f0 lost mutants; a function added
    del edited["m1.x_f1"]  # and one removed

    second = {m.name for m in mutation.sample(_mutants(edited), 0.1, seed=1)}

    untouched = {n for n in first if not n.startswith(("alerts.delivery.m0.", "alerts.delivery.m1."))}
    assert untouched <= second  # the draw of the functions nobody touched is the same
    assert {n for n in second if ".m0." in n} == {
        n for n in first if ".m0." in n and int(n.rpartition("_")[2]) <= 20
    }  # the edited function keeps the names it still has
    assert not {n for n in second if ".m1." in n}
    added = {n for n in second if "x_new" in n}
    assert 20 <= len(added) <= 60  # about a tenth of 400, drawn on their own


def test_the_unseen_are_those_no_other_sample_drew_and_no_reason_names(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = _mutants({f"m{k}.x_f{k}": 30 for k in range(10)})
    first = {m.name for m in mutation.sample(code, 0.1, seed=1)}
    second = {m.name for m in mutation.sample(code, 0.1, seed=2)}
    studied = "alerts.delivery.m3.x_f3__mutmut_7"
    monkeypatch.setattr(mutation, "reasons", lambda: {studied: "equivalent: …"})

    unseen = second - mutation.seen(0.1, seed=2)

    assert unseen == second - first - {studied}
    assert first & second  # the two draws overlap, and what the first drew is left out
    assert mutation.seen(0.1, seed=1) >= second | {studied}  # and the other way round


def test_the_summary_counts_survivors_by_reason_and_scores_without_the_equivalent_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = _mutants({"m0.x_f0": 20})
    for m, status in zip(
        code, ["killed"] * 14 + ["caught by type check"] * 2 + ["survived"] * 4, strict=True
    ):
        object.__setattr__(m, "status", status)
    monkeypatch.setattr(
        mutation,
        "reasons",
        lambda: {
            code[16].name: "equivalent: `x or []` vs `x or None`",
            code[17].name: "equivalent on SQLite: …; killed on PostgreSQL by tests/…",
            code[18].name: "log wording only: the INFO line's text",
        },
    )

    lines = mutation.summary(code)

    assert lines[0] == (
        "survivors by reason: equivalent 1, equivalent on SQLite (PostgreSQL kills it) 1, "
        "log wording only 1, no reason yet 1"
    )
    assert lines[1].startswith("without the 1 equivalent mutants: 16 of 19 detected, 84.2% (")


def test_the_unseen_of_a_draw_stay_its_own_after_their_survivors_get_reasons(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = _mutants({f"m{k}.x_f{k}": 30 for k in range(10)})
    second = {m.name for m in mutation.sample(code, 0.1, seed=2)}
    monkeypatch.setattr(mutation, "reasons", dict)
    first_run = mutation.unseen(second, 0.1, seed=2)
    survivor = sorted(first_run)[0]
    monkeypatch.setattr(mutation, "reasons", lambda: {survivor: "equivalent: …"})

    assert mutation.unseen(second, 0.1, seed=2) == first_run  # the reason written since changes nothing
    assert (state / "sample-0.1-seed2-unseen.json").exists()
