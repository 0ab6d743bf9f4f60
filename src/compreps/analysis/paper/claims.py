"""The study's qualitative claims with the numbers it gives for them, and its protocol.

Read from the two full texts (``000`` GTFA + REPS version, ``000_85dea552cd8c2d4f.txt``;
``001`` REPS version, ``001_8a80b71fe955b35a.txt``). A claim names the table cells that carry
its numbers (``cells``, e.g. ``"accuracy: prune-0.5 prune-0.7"``, ``"plcc: reps_equal gtfa"``);
the numbers themselves come from ``values.csv`` (:func:`compreps.analysis.paper.paper_value`), so a
claim never restates a table value. Numbers printed only in the text (the abstracts) are in
``printed``. Where the paper's own tables contradict the claim, ``consistent`` is False and
``note`` says how. The report prints each claim beside the run's values of the same cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compreps.analysis.paper import CONFIG_NAMES, paper_value


@dataclass(frozen=True)
class Claim:
    id: str
    text: str  # the paper's statement, close to its wording
    cells: str  # "<column>: <key> <key> ...", groups joined by "; "
    source: str  # "<paper>, <section or table>", parts joined by "; "
    note: str = ""
    consistent: bool = True  # False: the paper's own tables disagree (see note)
    printed: dict = field(default_factory=dict)  # (key, column) -> number printed in the text

    def cell_keys(self) -> list[tuple[int, str, str]]:
        """``[(table, key, column), ...]`` of :attr:`cells`."""
        out = []
        for group in self.cells.split(";"):
            column, keys = group.split(":")
            column = column.strip()
            for key in keys.split():
                table = 1 if column == "accuracy" else 3 if key in CONFIG_NAMES else 2
                out.append((table, key, column))
        return out

    @property
    def numbers(self) -> dict:
        """``{(key, column): the paper's value}``: the named cells, then :attr:`printed`."""
        values = {}
        for table, key, column in self.cell_keys():
            values[(key, column)] = paper_value(table, key, column)[0][0]
        return {**values, **self.printed}


@dataclass(frozen=True)
class ProtocolItem:
    value: object
    source: str
    note: str = ""


ACCURACY_SECTIONS = (
    "000, 4 'Accuracy and Compression Effects'; 001, 4 'Accuracy and Compression Effects'; "
    "Table 1 of both"
)
TABLE2_SIGN_NOTE = (
    "Table 2 is captioned as correlations 'with accuracy drop', yet its similarities are "
    "positive: a similarity falls as the drop grows, so against the drop it would be negative. "
    "The signs fit a correlation with accuracy (= -drop), which is what compreps computes. "
    "Within the table, Logits L_2 is a distance yet correlates with the same sign as the "
    "similarities (PLCC +0.3539, SRCC +0.8407, KRCC +0.8051), opposite to the other two "
    "distances KL and Wasserstein; Logits Cosine, a similarity, has negative SRCC/KRCC."
)

CLAIMS = (
    Claim(
        "prune_stable_to_0.5",
        "Pruning maintains stability up to ratio 0.5 (0.9177) but drops sharply at 0.7 "
        "(0.7992) and 0.9 (0.2336).",
        "accuracy: base prune-0.4 prune-0.5 prune-0.7 prune-0.9",
        ACCURACY_SECTIONS,
    ),
    Claim(
        "quant_holds_to_5_bits",
        "Quantization retains high accuracy down to 5-bit (0.9244) but collapses below 4-bit "
        "(0.1000 at 3-bit and lower), i.e. chance level for 10 classes.",
        "accuracy: quant-5 quant-4 quant-3 quant-2 quant-1",
        ACCURACY_SECTIONS,
        "4 bits already loses 0.072 (0.8558); the collapse to 0.1000 is at <= 3 bits.",
    ),
    Claim(
        "coreset_smooth_decline",
        "Coreset compression exhibits smooth accuracy degradation from 0.9215 at 80% of the "
        "training data down to 0.1059 at 1%.",
        "accuracy: coreset-0.8 coreset-0.1 coreset-0.05 coreset-0.01",
        ACCURACY_SECTIONS,
        "Not monotone in Table 1: 5% of the data (0.4717) beats 10% (0.4668).",
        consistent=False,
    ),
    Claim(
        "reps_equal_best_plcc",
        "REPS with equal weights achieves the highest correlation of all metrics (PLCC 0.9878).",
        "plcc: reps_equal reps_weighted s_e s_s; srcc: s_s; krcc: s_s",
        "000, 4 'Discussion'; 001, 4 'Metric Correlations'; Table 2 of both",
        "Highest PLCC only: Class Separation (s_s) has the highest SRCC and KRCC.",
    ),
    Claim(
        "reps_best_on_all_coefficients",
        "The consistent superiority of REPS across all three correlation metrics (PLCC, SRCC, "
        "KRCC) confirms that the result is not an artifact of a particular correlation measure.",
        "srcc: reps_equal reps_weighted s_s; krcc: reps_equal reps_weighted s_s",
        "001, 4 'Metric Correlations'; Table 2",
        "Table 2: Class Separation (s_s) beats both REPS variants on SRCC and KRCC.",
        consistent=False,
    ),
    Claim(
        "weight_similarity_weakest",
        "Weight similarity is weakly correlated (0.1382 PLCC), indicating limited diagnostic "
        "value.",
        "plcc: weight_similarity logits_cosine; srcc: logits_cosine; krcc: logits_cosine",
        "000, 4 'Metrics Correlation Comparison'; Table 2 of both",
        "Weakest by PLCC only: Logits Cosine is weaker by SRCC and KRCC. The abstracts of 000 "
        "and 001 and 001's text print r = 0.141, which is not Table 2's 0.1382 rounded.",
    ),
    Claim(
        "table2_signs",
        "Similarity metrics correlate positively; KL divergence and Wasserstein distance "
        "inversely correlate.",
        "plcc: kl_divergence wasserstein logits_l2; srcc: logits_l2 logits_cosine",
        "000, 4 'Metrics Correlation Comparison'; Table 2 of both",
        TABLE2_SIGN_NOTE,
        consistent=False,
    ),
    Claim(
        "gtfa_plcc",
        "GTFA achieves PLCC 0.8059 (abstract: r = 0.806), weaker than REPS.",
        "plcc: gtfa reps_weighted reps_equal",
        "000, abstract; 000, 4 'Metrics Correlation Comparison'; 000, Table 2",
    ),
    Claim(
        "abstract_rounding",
        "Abstracts: REPS r = 0.988, GTFA r = 0.806 (000 only), weight similarity r = 0.141.",
        "plcc: reps_equal gtfa weight_similarity",
        "000, abstract; 001, abstract",
        "0.988 is REPS with equal weights (Table 2: 0.9878), not the weighted variant "
        "(0.9735); 0.806 rounds 0.8059; 0.141 does not round 0.1382.",
        consistent=False,
        printed={
            ("reps_equal", "abstract_r"): 0.988,
            ("gtfa", "abstract_r"): 0.806,
            ("weight_similarity", "abstract_r"): 0.141,
        },
    ),
    Claim(
        "sensitivity_plcc_at_least_0.96",
        "PLCC remains >= 0.96 across all weight configurations tested (Table 3).",
        "plcc: weighted equal rank_only separation_heavy decay_heavy no_aliveness s_e",
        "001, 2.3 'Justification of component weights'; 001, 5; 001, Table 3",
        "Rank-only equals Table 2's Effective Rank PLCC (0.9699), so Table 2's 'Effective "
        "Rank' row is the REPS component s_e.",
    ),
    Claim(
        "q2_agreement_anomaly",
        "Q2 sits at (class separation 0.51, prediction agreement 1.00); its GTFA and CKA "
        "trajectories are 1.00 ('anomalously high').",
        "accuracy: base quant-2",
        "000, Appendix A 'Separation vs. Prediction Agreement', 'GTFA Trajectory', 'CKA "
        "Trajectory'; Table 1",
        "With base accuracy 0.9277 and Q2 accuracy 0.1000, Q2 cannot agree with base on every "
        "prediction; the 1.00 values cannot all hold.",
        consistent=False,
        printed={("quant-2", "prediction_agreement"): 1.0},
    ),
)

PROTOCOL = {
    "dataset": ProtocolItem("cifar10", "000, 3 'Dataset'; 001, 3 'Dataset and Preprocessing'"),
    "train_size": ProtocolItem(50000, "000, 3 'Dataset'; 001, 3 'Dataset and Preprocessing'"),
    "test_size": ProtocolItem(10000, "000, 3 'Dataset'; 001, 3 'Dataset and Preprocessing'"),
    "augmentation": ProtocolItem(
        "random horizontal flip + 4-pixel random crop",
        "000, 3 'Dataset'; 001, 3 'Dataset and Preprocessing'",
    ),
    "arch": ProtocolItem("resnet18", "000, 3 'Model Architecture'; 001, 3"),
    "width": ProtocolItem(
        64,
        "not printed; ResNet-18 as cited (He et al. 2016) starts with 64 channels",
        note="The papers name ResNet-18 without a width.",
    ),
    "epochs": ProtocolItem(50, "000, 3 'Training Implementation Details'; 001, 3"),
    "batch_size": ProtocolItem(128, "000, 3 'Training Implementation Details'; 001, 3"),
    "lr": ProtocolItem(0.1, "000, 3 'Training Implementation Details'; 001, 3"),
    "momentum": ProtocolItem(0.9, "000, 3 'Training Implementation Details'; 001, 3"),
    "weight_decay": ProtocolItem(5e-4, "000, 3 'Training Implementation Details'; 001, 3"),
    "seed": ProtocolItem(42, "000, 3 'Training Implementation Details'; 001, 3"),
    "device": ProtocolItem("NVIDIA Tesla P100 (Kaggle)", "000, 3; 001, 3"),
    "probe_size": ProtocolItem(200, "000, 3 'Evaluation Metrics'; 001, 3 'Evaluation'"),
    "metric_layers": ProtocolItem(
        ("layer4.1.conv2", "fc"), "000, 3 'Evaluation Metrics'; 001, 3 'Evaluation'"
    ),
    "coreset_fractions": ProtocolItem(
        (0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01), "000, 3 'Coreset Setup'; 001, 3"
    ),
    "prune_ratios": ProtocolItem(
        (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9),
        "000, 3 'Pruning Setup'; 001, 3 'Compression Protocols'",
        note="Global unstructured L1, no fine-tuning.",
    ),
    "quant_bits": ProtocolItem(
        (8, 7, 6, 5, 4, 3, 2, 1),
        "000, 3 'Quantization Setup'; 001, 3 'Compression Protocols'",
        note="000: 8 bits = PyTorch dynamic quantization of linear layers; fewer bits = "
        "uniform min-max.",
    ),
    "reps_weights": ProtocolItem((0.15, 0.05, 0.35, 0.45), "000, 3 'Hyperparameter Settings'"),
    "gtfa_beta_gamma": ProtocolItem((0.45, 0.45), "000, 3 'Hyperparameter Settings'"),
    "top_k": ProtocolItem(20, "000, 3 'Hyperparameter Settings'; 000, eq. 6"),
    "alive_threshold": ProtocolItem(0.01, "000, 3 'Hyperparameter Settings'; 001, eq. 5"),
    "histogram_bins": ProtocolItem(
        {"000": 256, "001": 50},
        "000, 2.2 'Weight distributions'; 001, 2.2",
        note="The two versions differ: 256 bins (000) vs 50 bins (001).",
    ),
    "n_compressed_models": ProtocolItem(24, "000, 4; 001, 4; Table 2 caption of 000"),
}

__all__ = ["CLAIMS", "PROTOCOL", "Claim", "ProtocolItem"]
