import json
from pathlib import Path

import pytest

from ponder.evaluation.calibration import PROBE_LABEL, PROBE_TTS
from ponder.evaluation.runner import write_results
from ponder.server.cli import build_parser, main
from ponder.strategies.policy import load_policy


def test_eval_flags_parse_budgets_and_configurations() -> None:
    args = build_parser().parse_args(
        [
            "eval",
            "--dataset",
            "a.jsonl",
            "--strategy",
            'sc@4={"strategy": "self_consistency", "n": 4}',
            "--budgets",
            "none,256",
        ]
    )
    assert args.budgets == [None, 256]
    assert args.seeds == (None,)
    assert build_parser().parse_args(["eval", "--dataset", "a", "--seeds", "1,2"]).seeds == (1, 2)
    assert args.configs[0].label == "sc@4" and args.configs[0].tts["n"] == 4


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--dataset", "a.jsonl", "--budgets", "0"],
        ["eval", "--dataset", "a.jsonl", "--strategy", "nojson"],
        ["eval", "--strategy", 'a={"strategy": "none"}'],
        ["calibrate", "--dataset", "a.jsonl"],
        ["eval", "--dataset", "a.jsonl", "--seeds", "1,x"],
        ["eval", "--dataset", "a.jsonl", "--seeds", "1,1"],
    ],
)
def test_bad_eval_flags_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2


def test_eval_refuses_a_missing_data_set_and_repeated_labels(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="cannot read"):
        main(["eval", "--dataset", str(tmp_path / "absent.jsonl"), "--no-progress"])
    dataset = tmp_path / "a.jsonl"
    dataset.write_text('{"question": "q", "answer": 1}\n')
    twice = ["--strategy", 'a={"strategy": "none"}'] * 2
    with pytest.raises(SystemExit, match="labels must be unique"):
        main(["eval", "--dataset", str(dataset), *twice, "--no-progress"])


def test_calibrate_fits_from_an_earlier_results_file(tmp_path: Path, capsys) -> None:
    rows = [
        {"problem_id": p, "label": label, "tts": tts, "correct": ok, "generated_tokens": t,
         "difficulty": d, "error": None}
        for p, d in (("p1", 0.0), ("p2", 1.0))
        for label, tts, ok, t in (
            (PROBE_LABEL, PROBE_TTS, p == "p1", 40),
            ("none", {"strategy": "none"}, True, 10),
        )
    ]  # fmt: skip
    results = tmp_path / "old.results.jsonl"
    write_results(rows, results)
    out = tmp_path / "policy.json"
    code = main(
        ["calibrate", "--dataset", "unused", "--results", str(results), "--output", str(out),
         "--prior-strength", "0"]
    )  # fmt: skip
    assert code == 0 and "policy table written" in capsys.readouterr().out
    table = load_policy(out)
    assert table.calibration["results"] == str(results)
    # p1 (easy): the probe was right at no extra cost; p2 (hard): only greedy was.
    assert table.bins[0].choose(None).tts == {"strategy": "self_consistency", "n": 4}
    assert table.bins[-1].choose(None).tts == {"strategy": "none"}
    assert json.loads(out.read_text())["version"] == 1
    assert not list(tmp_path.glob(".*partial"))
