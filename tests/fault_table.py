"""The fault table: every handled fault with the first line of its message.

tests/test_faults.py and the tests named in FILE_FAULTS check each row; tests/faults_doc.py
writes docs/faults.md from these tables (a test keeps the two equal).
"""

from __future__ import annotations

DEMO = "presets/demo.yaml"
# (name, overlay: a dict, or YAML text written verbatim, exact first line of the message)
BAD_CONFIGS = [
    (
        "seeds-repeated",
        {"train": {"seeds": [42, 42]}},
        "bad.yaml: config key train/seeds: values must be unique, got [42, 42]",
    ),
    (
        "seeds-empty",
        {"train": {"seeds": []}},
        "bad.yaml: config key train/seeds: [] should be non-empty",
    ),
    (
        "seed-before-seed-lists",
        {"train": {"seed": 42}},
        "bad.yaml: config key train/seed: Additional properties are not allowed ('seed' was "
        "unexpected); allowed keys: batch_size, compile, deterministic, epochs, lr, momentum, "
        "precision, schedule, seeds,",
    ),
    (
        "coreset-init-unknown",
        {"coreset": {"init": "mine"}},
        "bad.yaml: config key coreset/init = 'mine' is not allowed; allowed: one of: shared, "
        "independent",
    ),
    (
        "coreset-empty",
        {"coreset": {"fractions": []}},
        "bad.yaml: config key coreset/fractions is empty: list at least one level, or drop "
        "coreset from config key families to run without the coreset family",
    ),
    (
        "prune-empty",
        {"prune": {"ratios": []}},
        "bad.yaml: config key prune/ratios is empty: list at least one level, or drop prune "
        "from config key families to run without the prune family",
    ),
    (
        "quantize-empty",
        {"quantize": {"bits": []}},
        "bad.yaml: config key quantize/bits is empty: list at least one level, or drop quant "
        "from config key families to run without the quant family",
    ),
    (
        "all-levels-empty",
        {"coreset": {"fractions": []}, "prune": {"ratios": []}, "quantize": {"bits": []}},
        "bad.yaml: config key coreset/fractions is empty: list at least one level, or drop "
        "coreset from config key families to run without the coreset family",
    ),
    (
        "no-family-left",
        {"families": [], "coreset": {"fractions": []}, "prune": {"ratios": []}},
        "bad.yaml: config key families is empty: no compression family left to compare with "
        "the base",
    ),
    (
        "family-dropped-levels-kept",
        {"families": ["coreset", "prune"]},
        "bad.yaml: config key families = ['coreset', 'prune'] leaves out quant, but "
        "quantize/bits lists [8, 7, 6, 5, 4, 3, 2, 1]: set quantize/bits: [] to run without "
        "the quant family, or list quant",
    ),
    (
        "too-few-models",
        {
            "families": ["quant"],
            "coreset": {"fractions": []},
            "prune": {"ratios": []},
            "quantize": {"bits": [8, 4]},
            "struct_l1": {"levels": []},
            "nexp": {"levels": []},
            "fold": {"levels": []},
        },
        "bad.yaml: config key families = ['quant'] gives 2 compressed model(s); the "
        "correlations need at least 3: add levels or families",
    ),
    (
        "unknown-family",
        {"families": ["coreset", "prune", "distill"]},
        "bad.yaml: config key families/2 = 'distill' is not allowed; allowed: one of: "
        "coreset, prune, quant, struct_l1, nexp, fold",
    ),
    (
        "structured-family-empty",
        {"fold": {"levels": []}},
        "bad.yaml: config key fold/levels is empty: list at least one level, or drop fold "
        "from config key families to run without the fold family",
    ),
    (
        "structured-family-dropped-levels-kept",
        {"families": ["coreset", "prune", "quant", "struct_l1", "fold"]},
        "bad.yaml: config key families = ['coreset', 'prune', 'quant', 'struct_l1', 'fold'] "
        "leaves out nexp, but nexp/levels lists [0.3]: set nexp/levels: [] to run "
        "without the nexp family, or list nexp",
    ),
    (
        "structured-level-out-of-range",
        {"struct_l1": {"levels": [0.3, 1.0]}},
        "bad.yaml: config key struct_l1/levels/1 = 1.0 is not allowed; allowed: a number > 0 "
        "and < 1",
    ),
    (
        "unknown-bn-repair",
        {"fold": {"bn_repair": "retrain"}},
        "bad.yaml: config key fold/bn_repair = 'retrain' is not allowed; allowed: one of: "
        "variance, calib, none",
    ),
    (
        "probe-larger-than-test-set",
        {"probe": {"size": 5000}},
        "bad.yaml: config key probe/size = 5000 exceeds the 1017 test images of cifar10 under "
        "data/cifar10-sample",
    ),
    (
        "data-root-missing",
        {"data": {"root": "nowhere"}},
        "bad.yaml: config key data/root = 'nowhere': has no folder cifar-10-batches-py (set "
        "data/download: true to fetch CIFAR-10)",
    ),
    (
        "data-root-partial",
        {"data": {"root": "partial"}},
        "bad.yaml: config key data/root = 'partial': partial/cifar-10-batches-py lacks "
        "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5",
    ),
    (
        "data-root-garbage",
        {"data": {"root": "garbage"}},
        "bad.yaml: config key data/root = 'garbage': garbage/cifar-10-batches-py/test_batch is "
        "not a valid CIFAR-10 python batch (invalid load key, 'n'.)",
    ),
    (
        "fashion-mnist-missing",
        {"data": {"dataset": "fashion_mnist", "root": "data/cifar10-sample"}},
        "bad.yaml: config key data/root = 'data/cifar10-sample': has no folder fashion-mnist "
        "(never "
        "downloaded: install the Debian package dataset-fashion-mnist)",
    ),
    (
        "yaml-syntax-error",
        "probe:\n  size: 60\n  metric_layers: [fc\ntrain:\n  epochs: 2\n",
        "bad.yaml:4:6: YAML syntax error: expected ',' or ']', but got ':' (while parsing a "
        "flow sequence)",
    ),
    (
        "yaml-top-level-list",
        "- probe\n- size\n",
        "bad.yaml: a config file must map config keys to values, got a list at the top level",
    ),
    (
        "epochs-zero",
        {"train": {"epochs": 0}},
        "bad.yaml: config key train/epochs = 0 is not allowed; allowed: an integer >= 1",
    ),
    (
        "epochs-text",
        {"train": {"epochs": "ten"}},
        "bad.yaml: config key train/epochs = 'ten' is not allowed; allowed: an integer >= 1",
    ),
    (
        "unknown-key",
        {"train": {"epoch": 3}},
        "bad.yaml: config key train/epoch: Additional properties are not allowed ('epoch' was "
        "unexpected); allowed keys: batch_size, compile, deterministic, epochs, lr, momentum, "
        "precision, schedule, seeds, state_interval_s, weight_decay",
    ),
    (
        "learning-rate-zero",
        {"train": {"lr": 0}},
        "bad.yaml: config key train/lr = 0 is not allowed; allowed: a number > 0",
    ),
    (
        "quantize-bits-12",
        {"quantize": {"bits": [4, 12]}},
        "bad.yaml: config key quantize/bits/1 = 12 is not allowed; allowed: an integer >= 1 "
        "and <= 8",
    ),
    (
        "prune-ratio-above-one",
        {"prune": {"ratios": [0.5, 1.5]}},
        "bad.yaml: config key prune/ratios/1 = 1.5 is not allowed; allowed: a number > 0 and < 1",
    ),
    (
        "prune-ratio-repeated",
        {"prune": {"ratios": [0.5, 0.5]}},
        "bad.yaml: config key prune/ratios: values must be unique, got [0.5, 0.5]",
    ),
    (
        "coreset-fraction-zero",
        {"coreset": {"fractions": [0.5, 0]}},
        "bad.yaml: config key coreset/fractions/1 = 0 is not allowed; allowed: a number > 0 "
        "and <= 1",
    ),
    (
        "unknown-dataset",
        {"data": {"dataset": "imagenet"}},
        "bad.yaml: config key data/dataset = 'imagenet' is not allowed; allowed: one of: "
        "cifar10, fashion_mnist",
    ),
    (
        "unknown-arch",
        {"model": {"arch": "vgg16"}},
        "bad.yaml: config key model/arch = 'vgg16' is not allowed; allowed: one of: resnet18",
    ),
    (
        "unknown-layer",
        {"probe": {"metric_layers": ["layer9", "fc"]}},
        "bad.yaml: config key probe/metric_layers/0 = 'layer9' is not allowed; allowed: one of: "
        + "conv1, bn1, layer1",
    ),
    (
        "unknown-quantize-scheme",
        {"quantize": {"scheme": "log2"}},
        "bad.yaml: config key quantize/scheme = 'log2' is not allowed; allowed: one of: paper, "
        "uniform, per_channel",
    ),
    (
        "reps-weights-sum",
        {"metrics": {"reps": {"weights": {"decay": 0.5}}}},
        "bad.yaml: config key metrics/reps/weights: weights must each be in [0, 1] and sum to "
        "1, got effective_rank=0.15, alive=0.05, separation=0.35, decay=0.5 (sum 1.05)",
    ),
    (
        "gtfa-beta-above-one",
        {"metrics": {"gtfa": {"beta": 1.5}}},
        "bad.yaml: config key metrics/gtfa/beta = 1.5 is not allowed; allowed: a number >= 0 "
        "and <= 1",
    ),
    (
        "confidence-one",
        {"correlation": {"confidence": 1.0}},
        "bad.yaml: config key correlation/confidence = 1.0 is not allowed; allowed: a number "
        "> 0 and < 1",
    ),
    (
        "grid-step-not-dividing-one",
        {"sensitivity": {"grid_step": 0.3}},
        "bad.yaml: config key sensitivity/grid_step = 0.3 does not divide 1 into whole parts "
        "(e.g. 0.05, 0.1, 0.25)",
    ),
    (
        "section-not-a-mapping",
        {"resources": {"train": 4}},
        "bad.yaml: config key resources/train = 4 is not allowed; allowed: type object",
    ),
    (
        "base-checkpoint-missing",
        {"base_checkpoint": "weights/base.pt", "train": {"seeds": [42]}},  # one base, one seed
        "bad.yaml: config key base_checkpoint = 'weights/base.pt': no such file (give the "
        "path of a compreps checkpoint or a saved state dict, or null to train)",
    ),
]

# Damaged, foreign or changed files and odd paths: (file, what is wrong, first line of the
# message, the test that checks it). <...> stands for the actual path, sum or count.
OFFICIAL = "the official CIFAR-10 sums, or `<root>/cifar-10-batches-py.md5` for a copy with its own"
FIX_DATA = (
    "download it again (delete <folder> and set data.download: true), or point data.root at an "
    "intact copy"
)
FILE_FAULTS = [
    (
        "`results/seed-<seed>/checkpoints/<id>.pt`",
        "one byte inverted in a stored tensor record (20 seeded positions)",
        "`<path> is truncated or corrupt (tensor data differ from the content hash in its meta). "
        "Delete it and rerun the workflow; Snakemake's rule '<rule>' rebuilds it …`",
        "test_faults.py::test_flipped_byte_in_a_checkpoint_is_an_error",
    ),
    (
        "`results/seed-<seed>/checkpoints/<id>.pt`",
        "truncated / not a checkpoint",
        "`<path> is truncated or corrupt (torch.load failed: <error type>). …`",
        "test_models.py::test_truncated_checkpoint_names_file_and_rule",
    ),
    (
        "`results/seed-<seed>/activations/<id>.h5`",
        "one byte inverted inside a data chunk (20 seeded positions; Fletcher-32 on every chunk)",
        "`<path> is truncated or corrupt (…). Delete it and rerun the workflow; Snakemake's rule "
        "'activations' rebuilds it …`",
        "test_faults.py::test_flipped_byte_in_a_dump_is_an_error",
    ),
    (
        "base checkpoint of the wrong width (`base_checkpoint`)",
        "weights do not fit `model.width`",
        "`<file>: config key base_checkpoint = '<path>': … does not fit …` (before any job)",
        "test_config.py::test_base_checkpoint_that_does_not_fit_the_model",
    ),
    (
        "`<data.root>/cifar-10-batches-py/<batch>`",
        "one pixel byte changed (the batch still loads)",
        f"`<path>: md5 <found>, expected <expected> (<{OFFICIAL}>): the file is damaged or not "
        f"cifar10's; {FIX_DATA}` (rule prepare_data; every mismatching file, a line each)",
        "test_data_identity.py::test_a_flipped_pixel_byte_is_refused",
    ),
    (
        "`<data.root>/cifar-10-batches-py/test_batch`",
        "replaced by a copy of a training batch",
        "`<root>/cifar-10-batches-py/test_batch is identical to "
        "<root>/cifar-10-batches-py/data_batch_2 (md5 <sum>): one data file was copied over "
        f"another; restore it: {FIX_DATA}` (rule prepare_data)",
        "test_data_identity.py::test_test_batch_replaced_by_a_training_batch_is_refused",
    ),
    (
        "`<data.root>/cifar-10-batches-py/data_batch_<n>`",
        "a training batch copied over another (also with a manifest rewritten to match)",
        "`<root>/cifar-10-batches-py/data_batch_4 is identical to "
        "<root>/cifar-10-batches-py/data_batch_1 (md5 <sum>): one data file was copied over "
        "another; …` (rule prepare_data)",
        "test_data_identity.py::test_a_training_batch_copied_over_another_is_refused",
    ),
    (
        "test images",
        "some test images are also training images (every sum matching its manifest)",
        "`<test file>: <n> of <N> test images are byte-identical to training images (first: test "
        "image <i> = training image <j>): the test split overlaps the training split; …` (rule "
        "prepare_data; in the verified official files only noted)",
        "test_data_identity.py::test_test_images_that_are_training_images_are_refused",
    ),
    (
        "Fashion-MNIST IDX files",
        "content differs from the official files (plain or `.gz`)",
        "`<path>: md5 <found>, expected <expected> (the official Fashion-MNIST sums): the file is "
        "damaged or not fashion_mnist's; put the official IDX files in <folder> …`",
        "test_data_identity.py::test_fashion_mnist_files_are_checked_like_cifar",
    ),
    (
        "any data file",
        "replaced after a finished run (even keeping its old mtime)",
        "`snakemake -n` plans `prepare_data` and everything downstream "
        "(`results/data/sources-<dataset>-<key>.md5` holds the data's md5 sums, rewritten "
        "when they change); "
        "`prepare_data` then checks the new file",
        "test_odd_paths.py, test_data_identity.py::"
        "test_data_checksums_file_moves_only_when_the_data_change",
    ),
    (
        "`base_checkpoint`",
        "NaN or Inf weights",
        "`<file>: config key base_checkpoint = '<path>': <path> has non-finite weights (tensor "
        "<name> holds <n> NaN and <m> Inf of <k> values): every metric would be NaN; give "
        "weights with finite values, or null to train the base` (before any job)",
        "test_integrity.py::test_base_checkpoint_with_nan_weights_is_stopped_at_the_config_check",
    ),
    (
        "`results/seed-<seed>/checkpoints/<id>.pt`",
        "a training or compression produced NaN/Inf weights",
        "`<path> not written: its weights are not finite (tensor <name> holds …): the step "
        "diverged or started from non-finite weights; …`",
        "test_integrity.py::test_a_checkpoint_with_non_finite_weights_is_never_written",
    ),
    (
        "`results/seed-<seed>/checkpoints/<id>.pt`",
        "holds NaN/Inf weights (content hash intact)",
        "`<path>: its weights are not finite (tensor <name> holds …); delete it and rerun rule "
        "'<rule>' from finite weights`",
        "test_integrity.py::test_a_checkpoint_with_non_finite_weights_is_refused_on_load",
    ),
    (
        "`results/seed-<seed>/activations/<id>.h5`",
        "NaN/Inf in the logits, a layer or a weight (on write, or found on read)",
        "`<path> not written: layer <name> holds <n> NaN and <m> Inf of <k> values (model <id>): "
        "…` / `<path>: layer <name> holds …; no metric is computed on it. …`",
        "test_integrity.py::test_no_analysis_reads_a_dump_holding_nan",
    ),
    (
        "`compreps metrics --dump <id>.h5`",
        "a compressed model's dump made from another base",
        "`<dump> is of a model made from base checkpoint sha256 <a>, but <base dump> is the dump "
        "of checkpoint sha256 <b>: a model is only compared with its own base; …`",
        "test_integrity.py::test_metrics_refuses_a_dump_made_from_another_base",
    ),
    (
        "`data.root`, `base_checkpoint`, the working directory",
        "spaces and non-ASCII characters in the path",
        "none: every path in a rule's shell command is quoted; the ci DAG runs",
        "test_odd_paths.py",
    ),
]
