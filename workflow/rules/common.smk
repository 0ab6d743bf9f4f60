# Shared helpers: model ids, the config subsets each rule sees, code hashes, resources.
import hashlib
import json
from pathlib import Path

ENV = "../../envs/compreps.yaml"
# src/ first on the path: jobs run the checkout's code also inside a conda env (--sdm conda)
# where compreps is not pip-installed; with an editable install both are the same files.
shell.prefix("export PYTHONPATH=src${{PYTHONPATH:+:$PYTHONPATH}}; ")

# Model ids: base, coreset-<fraction>, prune-<ratio>, quant-<bits> (str() of the config value).
CORESETS = [f"coreset-{f}" for f in config["coreset"]["fractions"]]
PRUNED = [f"prune-{r}" for r in config["prune"]["ratios"]]
QUANTIZED = [f"quant-{b}" for b in config["quantize"]["bits"]]
COMPRESSED = CORESETS + PRUNED + QUANTIZED
MODELS = ["base"] + COMPRESSED

# Layers dumped to HDF5: the metric layers, then the trajectory layers (ordered, unique).
PROBE_LAYERS = list(
    dict.fromkeys(
        config["probe"]["metric_layers"] + config["probe"]["trajectory_layers"]
    )
)
FIGURE_NAMES = [
    "fig1_weight_histograms",
    "fig2_representations",
    "accuracy_vs_level",
    "metric_vs_accuracy",
    "sensitivity_heatmap",
]
FIGURES = expand("results/figures/{name}.{ext}", name=FIGURE_NAMES, ext=["png", "pdf"])
FIGURE_CAPTIONS = {
    "fig1_weight_histograms": "fig1",
    "fig2_representations": "fig2",
    "accuracy_vs_level": "accuracy_vs_level",
    "metric_vs_accuracy": "metric_vs_accuracy",
    "sensitivity_heatmap": "sensitivity_heatmap",
}


def figure_outputs():
    """The PNGs go into Snakemake's HTML report, each with its one-line caption."""
    outputs = []
    for name in FIGURE_NAMES:
        png = f"results/figures/{name}.png"
        caption = f"../report/{FIGURE_CAPTIONS[name]}.rst"
        outputs += [report(png, caption=caption, category="Figures"), png[:-3] + "pdf"]
    return outputs


wildcard_constraints:
    model=r"base|coreset-[0-9.]+|prune-[0-9.]+|quant-[0-9]+",
    fraction=r"[0-9.]+",
    ratio=r"[0-9.]+",
    bits=r"[0-9]+",


# Module files of the package, for the analysis rules' code hashes.
PACKAGE = Path(workflow.basedir) / "src" / "compreps"
if (
    not PACKAGE.is_dir()
):  # a copy of the workflow without src/: the installed package runs
    import compreps

    PACKAGE = Path(compreps.__file__).parent


def code_hash(*modules):
    """sha256 over the named modules' sources: passed as a param, so a code change in
    the analysis reruns exactly the analysis jobs (Snakemake does not track imports)."""
    digest = hashlib.sha256()
    for module in modules:
        for path in [PACKAGE / f"{module}.py", *sorted(PACKAGE.glob(f"{module}_*.py"))]:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def data_args():
    return f"--dataset {config['data']['dataset']} --data-root {config['data']['root']}"


def job_resources(kind, gpu=False):
    """threads/mem_mb/runtime (minutes) from config resources/<kind>; gpu from resources/gpu."""
    spec = dict(config["resources"][kind])
    spec.pop("threads")
    if gpu and config["resources"]["gpu"] > 0:
        spec["gpu"] = config["resources"]["gpu"]
    return spec


def job_threads(kind):
    return config["resources"][kind]["threads"]
