import re
from pprint import pformat

import nbformat as nbf
from pathlib import Path

import sys

# usage: python notebooks/.make_notebooks.py [OUT_DIR]   (default: next to this file)
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
SETUP = """import os
import torch

torch.set_num_threads(os.cpu_count() or 1)
import pandas as pd
import plotly.io as pio

pio.renderers.default = "notebook_connected" if os.environ.get("WORKBENCH_NB_CDN") else "notebook"
pd.set_option("display.precision", 3)"""


def nb(cells):
    book = nbf.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    book.cells = [nbf.v4.new_markdown_cell(c[1]) if c[0] == "md" else nbf.v4.new_code_cell(c[1]) for c in cells]
    for i, cell in enumerate(book.cells):  # stable ids: regenerating an unchanged notebook changes nothing
        cell.id = f"cell-{i:02d}"
    return book


def claims(claimed: dict, relations: list[str], conclusion: str, optional: str | None = None) -> list:
    """The two closing cells: one asserting every number the conclusion quotes (within 0.03 of
    what the run measured) and its qualitative statements, then the conclusion itself. A number
    quoted without a CLAIMED value to back it stops the generator."""
    for shown in re.findall(r"(?<![\w.])-?\d+\.\d+", conclusion):
        digits = len(shown.split(".")[1])
        if not any(round(v, digits) == float(shown) for v in claimed.values()):
            raise SystemExit(f"the conclusion quotes {shown}, which no CLAIMED value supports")
    skip = f"""
    if key.startswith("{optional}") and {optional} is None:
        continue  # the optional section did not run""" if optional else ""
    code = (f"""# the conclusion below quotes these numbers and statements: fail loudly if a rerun no longer supports it
m = measured
CLAIMED = {pformat(claimed, width=110, sort_dicts=False)}
for key, value in CLAIMED.items():{skip}
    assert abs(m[key] - value) <= 0.03, (key, m[key], value)
""" + "\n".join(relations))
    return [("code", code), ("md", conclusion)]


# measured by a run of notebook 1 (its "What this run measured" cell); the notebook asserts them
CLAIMED_ONE = {
    "wagle forget_drop @0.01": 0.89, "wagle retain_drop @0.01": 0.888, "wagle random_forget_drop @0.01": 0.002,
    "salun forget_drop @0.01": 0.633, "salun retain_drop @0.01": 0.61, "salun random_forget_drop @0.01": 0.002,
    "snip forget_drop @0.01": 0.992, "snip retain_drop @0.01": 0.993, "snip random_forget_drop @0.01": 0.002,
    "magnitude forget_drop @0.01": 0.997, "magnitude retain_drop @0.01": 0.995,
    "magnitude random_forget_drop @0.01": 0.002,
    "selective forget_drop @0.01": 0.112, "selective retain_drop @0.01": 0.008,
    "selective forget_drop @0.05": 0.485, "selective retain_drop @0.05": 0.123,
    "circuits forget_drop @0.01": 0.997, "circuits retain_drop @0.01": 0.995,
    "concept forget_drop @0.05": 0.007, "concept random_forget_drop @0.05": 0.004,
    "spearman wagle~salun": 0.979, "jaccard@3 wagle~salun": 1.0, "spearman salun~snip": 0.989,
    "spearman wagle~snip": 0.964, "spearman concept~wagle": -0.527,
    "sae forget_drop @20": 0.253, "sae random_forget_drop @20": 0.059, "sae retain_drop @20": 0.052,
    # the optional SmolLM2 section (checked only when it ran)
    "smol concept forget_drop @0.01": 0.062, "smol concept random_forget_drop @0.01": 0.062,
    "smol circuits forget_drop @0.01": 0.875, "smol circuits random_forget_drop @0.01": 0.031,
    "smol circuits retain_drop @0.01": 0.733,
}
RELATIONS_ONE = [
    'assert top_site["circuits"] == "blocks.3.hook_mlp_out", "the circuits\' top node is the last MLP\'s output"',
    'for name in ("wagle", "salun", "snip", "magnitude"):  # retain falls (almost) as far as forget',
    '    assert m[f"{name} retain_drop @0.01"] > m[f"{name} forget_drop @0.01"] - 0.05, name',
    'for b in (0.01, 0.05):  # selective: forget-specific',
    '    assert m[f"selective forget_drop @{b:g}"] > 3 * m[f"selective retain_drop @{b:g}"], b',
    'assert m["sae forget_drop @20"] > 2 * max(m["sae random_forget_drop @20"], m["sae retain_drop @20"]), "SAE"',
    'assert m["concept forget_drop @0.05"] < 2 * m["concept random_forget_drop @0.05"] + 0.01, "concept ~ random"',
    'if smol is not None:',
    '    assert m["smol concept forget_drop @0.01"] < 2 * m["smol concept random_forget_drop @0.01"] + 0.01',
    '    assert m["smol circuits forget_drop @0.01"] > 2 * m["smol circuits random_forget_drop @0.01"]',
]
CONCLUSION_ONE = """## Conclusion (numbers measured by the cells above)

- **The gradient-based weight localisers agree with each other and with little else.** WAGLE,
  SalUn and SNIP select almost the same layer x component cells (Spearman 0.979 for WAGLE~SalUn
  with top-3 Jaccard 1.0, 0.989 for SalUn~SNIP, 0.964 for WAGLE~SNIP); concept vectors point
  elsewhere (Spearman -0.527 against WAGLE).
- **Most localisers find what every fact needs, not where these facts live.** Zeroing the top 1%
  of weights by WAGLE, SalUn, SNIP or magnitude drops forget accuracy by 0.89, 0.633, 0.992 and
  0.997 (random weights of the same number: 0.002), but retain accuracy falls as far (0.888,
  0.61, 0.993 and 0.995). The circuits' top node, the last MLP's output, is needed by every fact
  (forget drop 0.997, retain 0.995).
- **Two localisers are specific to the forget facts.** The `selective` weight score (forget
  saliency against retain saliency) drops forget accuracy by 0.112 at 1% and 0.485 at 5% while
  retain drops 0.008 and 0.123; clamping the top 20 SAE features drops forget by 0.253 against
  0.059 for random features of similar firing rate, retain by 0.052.
- **Concept vectors find nothing to ablate here** (forget drop 0.007 at 5%, random 0.004): the
  fictitious people share their answers (cities, jobs) with everyone else, so the forget facts
  have no vocabulary of their own for a value vector to write.
- On SmolLM2, when the optional section runs (the test suite runs it): concept vectors drop
  forget accuracy by 0.062 at 1%, no more than random vectors (0.062), while attribution
  patching's top nodes drop it by 0.875 (random 0.031) at a retain cost of 0.733."""

one = nb([
    ("md", """# Where does a fact live?

Every localiser of the workbench on one forget task (the 100 forget facts of the embedded
testbed world on `testbed:dense`: 20 fictitious people, 5 facts each), compared two ways:

1. **agreement**: do they point at the same layers and components? (Spearman correlation of
   their selection density per layer x component, and the Jaccard index of their top cells);
2. **faithfulness**: does ablating a localiser's top sites remove the forget facts, more than
   ablating random sites of the same kind and number, and more than it hurts the retain facts?
   Forget and retain accuracy against the share of ablated sites, next to random draws.

Only the public API is used: `workbench.models`, `workbench.localise`, `workbench.study`.
Set `WORKBENCH_NB_SMOLLM2=1` to add the last section, the same comparison on SmolLM2-135M."""),
    ("code", SETUP),
    ("code", """from workbench.models import load

model = load("testbed:dense")
task = model.task()
print(task.summary())"""),
    ("md", "## Run every localiser (each result is cached by content hash, so a rerun is instant)"),
    ("code", """from workbench.localise import LOCALISERS, localise_cached

RUNS = {  # label -> (localiser, options); `experts` needs an MoE, so it is left out here
    "concept": ("concept", {}),
    "circuits": ("circuits", {"mode": "oct", "method": "attribution"}),
    "wagle": ("wagle", {}),
    "salun": ("salun", {}),
    "snip": ("snip", {}),
    "selective": ("selective", {}),
    "magnitude": ("magnitude", {}),
    "random": ("random", {}),
    "sae": ("sae", {}),
}
locs, rows = {}, []
for label, (method, options) in RUNS.items():
    loc, path, reused = localise_cached(model, task, method, options, progress=False)
    locs[label] = loc
    rows.append({"localiser": label, "kind": loc.kind, "sites": len(loc.sites),
                 "top site": str(loc.ranked()[0][0]), "seconds": loc.provenance["seconds"], "cached": reused})
print("registered localisers:", ", ".join(LOCALISERS.names()))
pd.DataFrame(rows)"""),
    ("code", """from workbench.localise.figures import figure_scores

for label in ("circuits", "wagle", "concept"):
    figure_scores(locs[label], 0.05).show()"""),
    ("md", "## Agreement at the shared granularity (layer x component)"),
    ("code", """from workbench.localise import agreement
from workbench.localise.figures import agreement_matrix
from workbench.study.report import figure_agreement

pairs = pd.DataFrame(agreement(locs, k=3))
figure_agreement({"testbed:dense": agreement_matrix(locs)}).show()
pairs.sort_values("spearman", ascending=False).head(12)"""),
    ("md", """## Faithfulness: ablate the top sites vs random sites of the same kind and number

Units (neurons, heads, MLP outputs) are mean-ablated (their retain mean), weights are zeroed.
Random: the mean of 3 draws of the same kind and number. SAE features are clamped in the SAE's
latent space instead (next section)."""),
    ("code", """from workbench.localise import faithfulness

BUDGETS = (0.002, 0.005, 0.01, 0.02, 0.05)
faith = []
for label in ("concept", "circuits", "wagle", "salun", "snip", "selective", "magnitude"):
    for r in faithfulness(model, task, locs[label], budgets=BUDGETS, draws=3, max_facts=100):
        faith.append({**r.as_dict(), "localiser": label})
faith = pd.DataFrame(faith)
faith["forget_after"] = faith.forget_before - faith.forget_drop
faith["retain_after"] = faith.retain_before - faith.retain_drop
faith["random_forget_after"] = faith.forget_before - faith.random_forget_drop
faith[["localiser", "budget", "n", "forget_drop", "random_forget_drop", "retain_drop", "pass"]]"""),
    ("code", """import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

fig = make_subplots(rows=1, cols=2, shared_yaxes=True,
                    subplot_titles=("forget accuracy (dotted: random sites)", "retain accuracy"))
for i, (label, rows) in enumerate(faith.groupby("localiser", sort=False)):
    rows = rows.drop_duplicates("n")  # a small site kind rounds several budgets to the same number
    color = qualitative.Plotly[i % len(qualitative.Plotly)]
    hover = [f"{b:.1%} of its {kind} sites requested" for b, kind in zip(rows.budget, rows.kind)]
    fig.add_trace(go.Scatter(x=rows.n, y=rows.forget_after, name=label, mode="lines+markers", legendgroup=label,
                             line=dict(color=color), text=hover), 1, 1)
    fig.add_trace(go.Scatter(x=rows.n, y=rows.random_forget_after, name=f"{label}: random", mode="lines+markers",
                             legendgroup=label, showlegend=False, line=dict(color=color, dash="dot"), text=hover), 1, 1)
    fig.add_trace(go.Scatter(x=rows.n, y=rows.retain_after, name=label, mode="lines+markers", legendgroup=label,
                             showlegend=False, line=dict(color=color), text=hover), 1, 2)
fig.update_xaxes(type="log", title="number of ablated sites (nodes, neurons or weight scalars)")
fig.update_yaxes(range=[-0.02, 1.02])
fig.update_yaxes(title="accuracy", col=1)
fig.update_layout(title="Faithfulness curves: accuracy after ablating each localiser's top sites",
                  template="plotly_white", height=450)
fig.show()"""),
    ("md", "## SAE features: clamp the top features vs random features of similar firing rate"),
    ("code", """from workbench.localise.sae import clamp_check

sae_rows = pd.DataFrame([clamp_check(model, task, locs["sae"], n=n, draws=3, max_facts=100) for n in (10, 20)])
sae_rows[["n", "forget_drop", "random_forget_drop", "retain_drop", "pass"]]"""),
    ("md", """## Optional: the same on SmolLM2-135M-Instruct

Runs when `WORKBENCH_NB_SMOLLM2=1` (the test suite sets it): concept vectors and attribution
patching on SmolLM2 with its real-knowledge task (facts about France), faithfulness at 1%."""),
    ("code", """smol = None
if os.environ.get("WORKBENCH_NB_SMOLLM2") == "1":
    smol = load("smollm2-135m-instruct")
    smol_task = smol.task()
    print(smol_task.summary())
    smol_rows = []
    for label, (method, options) in {"concept": ("concept", {}), "circuits": RUNS["circuits"]}.items():
        loc, _, _ = localise_cached(smol, smol_task, method, options, progress=False)
        for r in faithfulness(smol, smol_task, loc, budgets=(0.01,), draws=2, max_facts=30):
            smol_rows.append({**r.as_dict(), "localiser": label, "top site": str(loc.ranked()[0][0])})
    display(pd.DataFrame(smol_rows)[["localiser", "top site", "n", "forget_drop", "random_forget_drop", "retain_drop"]])
else:
    print("skipped: set WORKBENCH_NB_SMOLLM2=1 to run this section")"""),
    ("md", "## What this run measured"),
    ("code", """def at(label, budget, col):
    return float(faith[(faith.localiser == label) & (faith.budget == budget)][col].iloc[0])

def pair(a, b, col="spearman"):
    row = pairs[((pairs.a == a) & (pairs.b == b)) | ((pairs.a == b) & (pairs.b == a))]
    return float(row[col].iloc[0])

measured = {f"{label} {col} @{b:g}": at(label, b, col) for label in faith.localiser.unique()
            for b in (0.01, 0.05) for col in ("forget_drop", "random_forget_drop", "retain_drop")}
measured |= {f"spearman {a}~{b}": pair(a, b) for a, b in
             (("wagle", "salun"), ("salun", "snip"), ("wagle", "snip"), ("concept", "wagle"))}
measured["jaccard@3 wagle~salun"] = pair("wagle", "salun", "jaccard@3")
sae20 = sae_rows.set_index("n").loc[20]
measured |= {f"sae {col} @20": float(sae20[col]) for col in ("forget_drop", "random_forget_drop", "retain_drop")}
if smol is not None:
    measured |= {f"smol {r['localiser']} {col} @0.01": r[col] for r in smol_rows
                 for col in ("forget_drop", "random_forget_drop", "retain_drop")}
top_site = {label: str(loc.ranked()[0][0]) for label, loc in locs.items()}
{k: round(v, 3) for k, v in measured.items()}"""),
    *claims(CLAIMED_ONE, RELATIONS_ONE, CONCLUSION_ONE, optional="smol"),
])

W = "wagle 5% + graddiff"
CLAIMED_TWO = {
    "graddiff forget": 0.06, "oracle forget": 0.085, "graddiff concept cos": 0.98, "npo concept cos": 0.983,
    f"{W} forget": 0.33, f"{W} forget quality": 0.549, "graddiff forget quality": 0.0, "npo forget quality": 0.001,
    f"{W} relearned": 0.48, "oracle relearned": 0.14, "original relearned": 0.96,
    f"{W} latent probe": 0.265, "oracle latent probe": 0.172,
    "graddiff relearned": 0.0, "npo relearned": 0.04,
    "npo MIA AUC (Min-K)": 0.223, "graddiff MIA AUC (Min-K)": 0.195, "oracle MIA AUC (Min-K)": 0.524,
    "graddiff neighbour": 0.295, "npo neighbour": 0.407, "oracle neighbour": 0.932,
}
RELATIONS_TWO = [
    'W = "wagle 5% + graddiff"',
    'for name in ("graddiff", "npo"):  # behaviour at the oracle\'s level, the concept vectors still there',
    '    assert m[f"{name} forget"] < m["oracle forget"] + 0.05 and m[f"{name} concept cos"] > 0.9, name',
    '    assert m[f"{name} relearned"] <= m["oracle relearned"], name  # no relearning ...',
    '    assert m[f"{name} MIA AUC (Min-K)"] < m["oracle MIA AUC (Min-K)"] - 0.2, name  # ... but over-forgetting',
    'assert m[f"{W} forget quality"] > 0.05, "TOFU\'s KS test does not tell the localised edit from the oracle"',
    'assert m[f"{W} relearned"] > m["oracle relearned"] + 0.2, "yet relearning brings it back"',
    'assert m[f"{W} latent probe"] > m["oracle latent probe"], "and a latent probe still reads it"',
]
CONCLUSION_TWO = """## Conclusion (numbers measured by the cells above)

- **Behavioural forgetting leaves parametric traces.** After GradDiff the forget accuracy is 0.06
  (the oracle's 0.085), yet the forget concept's value vectors are still in the weights (cosine
  0.98 with the original's; after NPO 0.983).
- **A benchmark score can call an edit oracle-like that a relearning attack undoes.** GradDiff
  restricted to WAGLE's top 5% of weights (forget accuracy 0.33) has a TOFU forget quality of 0.549
  (the KS p-value against the oracle; whole-model GradDiff 0.0, NPO 0.001), yet fine-tuning on half
  of the forget facts for 10 steps brings the other half back to 0.48, against 0.14 for the oracle,
  which never saw them, and 0.96 for the original; a latent probe still reads 0.265 against the
  oracle's 0.172. The localised edit is not as good as the oracle, and relearning shows it.
- **Whole-model GradDiff and NPO do not come back (0.0 and 0.04 relearned), but they are not
  oracle-like either: they over-forget.** Their Min-K membership AUC is 0.195 and 0.223 against the
  oracle's 0.524 (over-forgetting is itself a membership signal), and neighbour accuracy falls to
  0.295 and 0.407 (oracle 0.932). So the seeds' finding holds in this form: relearning restores what
  an edit only suppressed (the localised edit); the edits it does not restore paid for it with
  collateral damage, and none of the three matches the oracle."""

two = nb([
    ("md", """# Does unlearning truly unlearn?

Behaviour is the first thing unlearning changes and the last thing that tells you whether the
knowledge is gone. Here three edits of `testbed:dense` (GradDiff and NPO on the whole model,
and GradDiff restricted to the top 5% of WAGLE-localised weights) are probed four ways next
to the original and to the **oracle**, the same model trained without the forget facts:

- **behaviour**: exact-answer accuracy on forget / retain / neighbour facts;
- **parametric traces**: are the forget concept's value vectors still in the weights?
- **latent probes**: can a linear probe on the residual stream still read the answer?
- **relearning attack**: fine-tune on half of the forget facts; does the other half come back?"""),
    ("code", SETUP),
    ("code", """from workbench.edit import apply_operator_cached
from workbench.localise import localise_cached
from workbench.models import load
from probes import Edited, ProbeConfig, probe

model = load("testbed:dense")
oracle = load(model.oracle_spec)
task = model.task()
config = ProbeConfig(families=("behaviour", "tofu", "muse", "traces", "latent", "relearn"), max_facts=50,
                     relearn_steps=10, samples=3)
wagle, wagle_path, _ = localise_cached(model, task, "wagle", {"seed": 0}, progress=False)
EDITS = {  # label -> (localisation, its cache name, operator, options)
    "graddiff": (None, None, "graddiff", {"seed": 0}),
    "npo": (None, None, "npo", {"seed": 0}),
    "wagle 5% + graddiff": (wagle, wagle_path.name, "graddiff", {"fraction": 0.05, "seed": 0}),
}
results = {}
for label, (loc, loc_id, op, options) in EDITS.items():
    edit, path, _ = apply_operator_cached(model, loc, task, op, options, progress=False, localisation_id=loc_id)
    results[label] = probe(model, task, edited=Edited(label, lambda edit=edit: edit.applied(model.model), path.name),
                           oracle=oracle, config=config, progress=False)
print(results["npo"].table(["behaviour"]))"""),
    ("code", """HEAD = {"forget": "behaviour.forget.all", "retain": "behaviour.retain.all", "neighbour": "behaviour.neighbour.all",
        "MIA AUC (Min-K)": "muse.auc.mink", "latent probe": "latent.best_layer.forget",
        "concept cos": "traces.concept.cos", "concept Jaccard": "traces.concept.jaccard",
        "relearned": "relearn.forget.final", "forget quality": "tofu.forget_quality"}
any_result = next(iter(results.values()))
table = [{"model": "original", **{k: any_result.value(m, "original") for k, m in HEAD.items()}},
         {"model": "oracle", **{k: any_result.value(m, "oracle") for k, m in HEAD.items()}}]
table += [{"model": label, **{k: r.value(m, "edited") for k, m in HEAD.items()}} for label, r in results.items()]
table = pd.DataFrame(table).set_index("model")
table"""),
    ("md", "## Relearning: original, oracle and each edit"),
    ("code", """import plotly.graph_objects as go

fig = go.Figure()
for label, r in results.items():
    m = r.metric("relearn.forget.final")
    pts = m.curves["edited"]
    fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], name=label, mode="lines+markers"))
for role, dash in (("original", "dash"), ("oracle", "dot")):
    pts = m.curves[role]
    fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], name=role, line=dict(dash=dash, width=3)))
fig.update_layout(title="Relearning attack: accuracy on the held-out forget half while fine-tuning on the other half",
                  xaxis_title="step", yaxis_title="accuracy", yaxis_range=[-0.02, 1.02], template="plotly_white")
fig.show()"""),
    ("code", """from probes.figures import figure_latent, figure_traces

figure_traces(results["graddiff"]).show()
figure_latent(results["wagle 5% + graddiff"]).show()"""),
    ("md", "## What this run measured"),
    ("code", """measured = {f"{row} {col}": float(table.loc[row, col]) for row in table.index for col in table.columns}
{k: round(v, 3) for k, v in measured.items()}"""),
    *claims(CLAIMED_TWO, RELATIONS_TWO, CONCLUSION_TWO),
])

CLAIMED_THREE = {"wagle forget": 0.33, "random forget": 0.88, "wagle relearned": 0.48, "none graddiff forget": 0.06,
                 "none graddiff neighbour": 0.295, "wagle neighbour": 0.62, "moe npo forget": 0.04,
                 "moe remove-experts forget": 0.965}
RELATIONS_THREE = [
    'assert m["wagle forget"] < m["random forget"] - 0.3, "where the edit goes matters"',
    'assert m["wagle neighbour"] > m["none graddiff neighbour"] + 0.2, "the localised edit spares neighbours"',
    'assert m["wagle relearned"] > m["wagle forget"], "relearning brings the localised edit back"',
    'assert m["moe remove-experts forget"] > 0.9 > 0.1 > m["moe npo forget"], "routing around one expert is not enough"',
]
CONCLUSION_THREE = """## Conclusion (numbers measured by the cells above)

- **Localisation buys selectivity, not safety.** Restricting GradDiff to WAGLE's top 5% of weights
  leaves forget accuracy at 0.33 (the same budget of random weights: 0.88) and spares neighbours
  (0.62 against 0.295 for whole-model GradDiff, which reaches 0.06 forget); but relearning brings
  the localised edit back to 0.48.
- **On the MoE, routing around the top expert is not enough**: removing it leaves forget accuracy at
  0.965, while whole-model NPO reaches 0.04.
- Every table and figure here comes from the study's store and the cached artifacts its cells
  point to (the agreement heatmap loads the stored localisations), through `workbench.study.report`,
  so the same reading works for any study."""

three = nb([
    ("md", """# Reading an ablation study

The default study (`workbench study run default`, also run by `workbench demo`) crosses every
localiser with the main operators on `testbed:dense` and `testbed:moe` and probes every cell
next to the original and the oracle. Its results live in one SQLite store; this notebook reads
the store and makes the figures. If the store is missing it runs the study first (every
artifact is cached, so this is quick after the demo)."""),
    ("code", SETUP),
    ("code", """from pathlib import Path

from workbench.study import Store, load_study, run_study
from workbench.study.runner import default_out

study = load_study("default")
# the demo's store: $WORKBENCH_RUNS/default, else runs/default at the repository root
# (Jupyter starts this notebook in notebooks/)
root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
out = default_out(study) if os.environ.get("WORKBENCH_RUNS") else root / "runs" / study.name
run = run_study(study, out=out, progress=False)  # resumes: finished cells are read from the store
print(f"{len(run.cells)} cells: {len(run.ran)} run now, {len(run.skipped)} already stored -> {run.store_path}")
assert not run.failed, ("cells failed", run.failed)"""),
    ("code", """from workbench.study.report import agreement_matrix, reference_rows, study_rows

ids = [c.id for c in run.cells]
with Store(run.store_path) as store:  # everything the figures need, read once
    cell_rows, ref_rows = study_rows(store, ids), reference_rows(store, ids)
    agreement = agreement_matrix(store, ids)  # loads the cached localisations the cells point to
rows, refs = pd.DataFrame(cell_rows), pd.DataFrame(ref_rows)
cols = ["model", "localiser", "operator", "forget", "retain", "neighbour", "mia_auc", "latent", "relearned", "concept_cos"]
rows[cols]"""),
    ("code", """refs"""),
    ("code", """from workbench.study import figure_agreement, figure_pareto, figure_relearning, figure_traces

figure_pareto(cell_rows, ref_rows).show()"""),
    ("code", """with Store(run.store_path) as store:  # the curves are read from the store's curves table
    figure_relearning(store, ids).show()
figure_agreement(agreement).show()
figure_traces(cell_rows).show()"""),
    ("md", "## A question the table answers: does localisation buy selectivity?"),
    ("code", """dense = rows[rows.model == "testbed:dense"].copy()
dense["selectivity"] = (dense["retain"] - dense["forget"])
dense.sort_values("selectivity", ascending=False)[["localiser", "operator", "forget", "retain", "selectivity",
                                                    "relearned", "latent"]]"""),
    ("code", """def cell(loc, op, model="testbed:dense"):
    return rows[(rows.model == model) & (rows.localiser == loc) & (rows.operator == op)].iloc[0]

measured = {
    "wagle forget": float(cell("wagle", "graddiff").forget), "random forget": float(cell("random", "graddiff").forget),
    "wagle relearned": float(cell("wagle", "graddiff").relearned),
    "none graddiff forget": float(cell("none", "graddiff").forget),
    "none graddiff neighbour": float(cell("none", "graddiff").neighbour),
    "wagle neighbour": float(cell("wagle", "graddiff").neighbour),
    "moe npo forget": float(cell("none", "npo", "testbed:moe").forget),
    "moe remove-experts forget": float(cell("experts", "remove-experts", "testbed:moe").forget),
}
{k: round(v, 3) for k, v in measured.items()}"""),
    *claims(CLAIMED_THREE, RELATIONS_THREE, CONCLUSION_THREE),
])

for name, book in (("1_where_does_a_fact_live", one), ("2_does_unlearning_truly_unlearn", two),
                   ("3_reading_an_ablation_study", three)):
    OUT.mkdir(parents=True, exist_ok=True)
    nbf.write(book, OUT / f"{name}.ipynb")
print("written")
