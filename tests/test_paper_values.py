"""The paper's Tables 1-3 as data (compreps.analysis.paper): keys, rows, sources, and the printed
text."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import yaml

from compreps.analysis.paper import (
    CONFIG_NAMES,
    NAMED_REPS_CONFIGS,
    PAPER_FILES,
    VALUES_FILE,
    paper_value,
    paper_values,
    reps_configs,
)
from compreps.analysis.paper.claims import CLAIMS, PROTOCOL

ROOT = Path(__file__).resolve().parents[1]
PAPERS = Path("/work/shared/papers")
SOURCE_PART = re.compile(r"^(000|001), Table ([123]), (row|caption) '(.+)'$")
FAMILY_LABEL = {"coreset": "Coreset", "prune": "Pruning", "quant": "Quantization"}


def project_model_ids() -> list[str]:
    """Model ids of the shipped config.yaml, formatted as docs/architecture.md fixes them."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    ids = ["base"]
    ids += [f"coreset-{f}" for f in config["coreset"]["fractions"]]
    ids += [f"prune-{r}" for r in config["prune"]["ratios"]]
    ids += [f"quant-{b}" for b in config["quantize"]["bits"]]
    return ids


def raw_rows() -> list[dict]:
    with open(VALUES_FILE, newline="") as handle:
        return list(csv.DictReader(handle))


def test_values_file_parses_with_typed_columns_and_unique_cells():
    frame = paper_values()
    assert list(frame.columns) == [
        "table",
        "key",
        "scope",
        "column",
        "value",
        "paper",
        "paper_label",
        "source",
    ]
    assert set(frame["table"]) == {1, 2, 3}
    assert frame["value"].notna().all()
    assert set(frame["paper"]) <= {"000", "001", "000+001"}
    cells = frame[["table", "key", "scope", "column", "paper"]]
    assert not cells.duplicated().any()
    # 25 accuracies, 13 metric rows x 3 coefficients, 6 configurations x (4 weights + PLCC)
    assert (frame["table"] == 1).sum() == 25
    assert (frame["table"] == 2).sum() == 39
    assert (frame["table"] == 3).sum() == 30


def test_every_project_model_has_a_paper_accuracy():
    ids = project_model_ids()
    assert len(ids) == 25
    for model in ids:
        entries = paper_value(1, model, "accuracy")
        assert len(entries) == 1, model
        assert 0.0 < entries[0][0] < 1.0


def test_numbers_quoted_in_issue_sit_on_the_right_rows():
    (equal,) = paper_value(2, "reps_equal", "plcc")
    (weighted,) = paper_value(2, "reps_weighted", "plcc")
    (gtfa,) = paper_value(2, "gtfa", "plcc")
    (weight_sim,) = paper_value(2, "weight_similarity", "plcc")
    assert equal[0] == 0.9878 and "REPS (equal weights)" in equal[1]
    assert weighted[0] == 0.9735 and "REPS (weighted)" in weighted[1]
    assert weight_sim[0] == 0.1382
    # GTFA is a row of 000's Table 2 only
    assert gtfa == (0.8059, "000, Table 2, row 'GTFA'")
    assert paper_value(1, "base", "accuracy")[0][0] == 0.9277
    assert paper_value(1, "coreset-0.05", "accuracy")[0][0] == 0.4717
    assert paper_value(1, "quant-4", "accuracy")[0][0] == 0.8558
    assert paper_value(2, "kl_divergence", "srcc")[0][0] == -0.8416
    assert paper_value(3, "no_aliveness", "plcc")[0][0] == 0.9741


def test_cells_the_paper_lacks_are_empty():
    assert paper_value(2, "cka_linear", "plcc") == []
    assert paper_value(2, "hidden_cosine", "plcc") == []
    assert paper_value(2, "reps_equal", "plcc", scope="prune") == []
    assert paper_value(3, "weighted", "srcc") == []
    assert paper_value(1, "quant-9", "accuracy") == []


def test_table3_has_the_six_named_configurations():
    assert tuple(NAMED_REPS_CONFIGS) == CONFIG_NAMES
    expected = {
        "weighted": (0.15, 0.05, 0.35, 0.45),
        "equal": (0.25, 0.25, 0.25, 0.25),
        "rank_only": (1.0, 0.0, 0.0, 0.0),
        "separation_heavy": (0.10, 0.10, 0.60, 0.20),
        "decay_heavy": (0.10, 0.10, 0.20, 0.60),
        "no_aliveness": (0.20, 0.0, 0.40, 0.40),
    }
    assert NAMED_REPS_CONFIGS == expected
    for weights in NAMED_REPS_CONFIGS.values():
        assert sum(weights) == pytest.approx(1.0, abs=1e-12)
    # Table 3 repeats Table 2: proposed = REPS (weighted), equal = REPS (equal), rank-only = s_e
    for config, metric in (("weighted", "reps_weighted"), ("equal", "reps_equal")):
        assert paper_value(3, config, "plcc")[0][0] == paper_value(2, metric, "plcc")[0][0]
    assert paper_value(3, "rank_only", "plcc")[0][0] == paper_value(2, "s_e", "plcc")[0][0]


def test_run_weights_replace_only_the_weighted_configuration():
    configs = reps_configs((0.4, 0.1, 0.2, 0.3))
    assert configs["weighted"] == (0.4, 0.1, 0.2, 0.3)
    assert NAMED_REPS_CONFIGS["weighted"] == (0.15, 0.05, 0.35, 0.45)
    assert {k: v for k, v in configs.items() if k != "weighted"} == {
        k: v for k, v in NAMED_REPS_CONFIGS.items() if k != "weighted"
    }
    with pytest.raises(ValueError):
        reps_configs((0.5, 0.5))


def test_every_source_names_a_paper_file_and_table():
    for row in raw_rows():
        parts = row["source"].split("; ")
        papers = []
        for part in parts:
            match = SOURCE_PART.match(part)
            assert match, part
            assert match.group(1) in PAPER_FILES
            assert match.group(2) == row["table"]
            papers.append(match.group(1))
        assert "+".join(papers) == row["paper"]


def table_lines(text: str, header: str, count: int) -> list[list[str]]:
    start = text.index(header)
    return [line.split("\t") for line in text[start:].splitlines()[1 : 1 + count]]


@pytest.mark.skipif(not PAPERS.is_dir(), reason="the papers' full texts are not on this machine")
def test_every_value_is_printed_in_the_cited_row():
    texts = {paper: (PAPERS / name).read_text() for paper, name in PAPER_FILES.items()}
    table2_columns = {"plcc": 1, "srcc": 2, "krcc": 3}
    table3_columns = ["w_effective_rank", "w_alive", "w_separation", "w_decay", "plcc"]
    for row in raw_rows():
        for part in row["source"].split("; "):
            paper, table, kind, label = SOURCE_PART.match(part).groups()
            text = texts[paper]
            if kind == "caption":
                assert label in text and label.endswith(row["value"])
            elif table == "1":
                family, level = row["key"].split("-")
                assert label == f"{FAMILY_LABEL[family]} {row['paper_label'].split()[-1]}"
                block = {"coreset": 0, "prune": 2, "quant": 4}[family]
                cells = table_lines(text, "Fraction\tAcc.", 8)
                printed = {float(c[block]): c[block + 1] for c in cells}
                assert printed[float(level)] == row["value"], part
            else:
                header = "Metric\tPLCC\tSRCC\tKRCC" if table == "2" else "Configuration\t"
                lines = table_lines(text, header, 13 if table == "2" else 6)
                (cells,) = [c for c in lines if c[0] == label]
                index = (
                    table2_columns[row["column"]]
                    if table == "2"
                    else 1 + table3_columns.index(row["column"])
                )
                assert cells[index] == row["value"], part


def test_claims_name_existing_cells_and_quote_their_numbers():
    for claim in CLAIMS:
        assert claim.source and claim.text
        assert claim.consistent or claim.note, claim.id
        for table, key, column in claim.cell_keys():
            assert paper_value(table, key, column), (claim.id, key, column)
        numbers = claim.numbers
        # every 4-decimal number the claim's text quotes is one of its cells
        for quoted in re.findall(r"\d\.\d{4}", claim.text):
            assert float(quoted) in numbers.values(), (claim.id, quoted)
    by_id = {claim.id: claim for claim in CLAIMS}
    prune = by_id["prune_stable_to_0.5"].numbers
    assert prune[("prune-0.7", "accuracy")] == 0.7992
    abstract = by_id["abstract_rounding"].numbers
    assert abstract[("reps_equal", "plcc")] == 0.9878
    assert abstract[("reps_equal", "abstract_r")] == 0.988
    assert by_id["sensitivity_plcc_at_least_0.96"].cell_keys()[0] == (3, "weighted", "plcc")


def test_protocol_banner_values():
    assert PROTOCOL["train_size"].value == 50000
    assert PROTOCOL["width"].value == 64
    assert PROTOCOL["epochs"].value == 50
    assert PROTOCOL["probe_size"].value == 200
    assert PROTOCOL["histogram_bins"].value == {"000": 256, "001": 50}
