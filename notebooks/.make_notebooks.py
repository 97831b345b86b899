import ast
import re

import nbformat as nbf
from pathlib import Path

import sys

# usage: python notebooks/.make_notebooks.py [OUT_DIR]   (default: next to this file)
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
SETUP = """import os

from workbench.cores import use_cores

use_cores()  # every core (or WORKBENCH_CORES of them)
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


def conclusion(relations: list[str], text: str) -> list:
    """The closing cell: assert the conclusion's qualitative statements on this run's numbers
    (`measured`, as `m`), then render the conclusion, every number in it formatted from `m`.
    A decimal written into the text itself (not computed by the run) stops the generator:
    trained weights differ from one CPU to another, so only this run's numbers may be quoted.
    So does a relation that compares two measured values point to point: a difference is only
    a finding beyond its noise, so two measured values are compared through their 95% interval
    bounds (keys ending in " low" / " high", e.g. `beyond(a, b)`: a's high below b's low); a
    measured value may still be compared with a constant (a threshold)."""
    literal = re.sub(r"\{[^{}]*\}", "", text)
    for shown in re.findall(r"(?<![\w.])-?\d+\.\d+", literal):
        raise SystemExit(f"the conclusion writes the number {shown}: quote it from the run instead")
    code = ("# the statements the conclusion makes, checked on this run; then the conclusion, quoting this run\n"
            "from IPython.display import Markdown\n\nm = measured\n" + "\n".join(relations)
            + f'\n\nMarkdown(f"""{text}""")')
    point = point_comparisons(code)
    if point:
        raise SystemExit(f"the conclusion compares measured values point to point ({point[0]}): "
                         f"compare their intervals instead (beyond / overlap on the low and high bounds)")
    return [("code", code)]


def _measured_keys(node) -> list:
    """The key expressions of every `m[...]` / `measured[...]` inside `node`."""
    return [n.slice for n in ast.walk(node) if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name)
            and n.value.id in ("m", "measured")]


def _is_bound(key) -> bool:
    """Whether a key visibly names an interval bound: its text ends with " low" or " high"."""
    tail = key
    if isinstance(key, ast.JoinedStr) and key.values:
        tail = key.values[-1]
    elif isinstance(key, ast.BinOp) and isinstance(key.op, ast.Add):
        tail = key.right
    return isinstance(tail, ast.Constant) and isinstance(tail.value, str) and tail.value.endswith((" low", " high"))


def point_comparisons(code: str) -> list[str]:
    """Every comparison in `code` with a measured value on two of its sides where one of those
    values is not an interval bound (see `conclusion`)."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Compare):
            sides = [k for k in (_measured_keys(x) for x in (node.left, *node.comparators)) if k]
            if len(sides) >= 2 and not all(_is_bound(k) for side in sides for k in side):
                found.append(ast.unparse(node))
    return found


RELATIONS_ONE = [  # on intervals: "resolved" = the 95% interval lies above 0; "within d" = it lies below d
    # (the check had the power to see a larger effect); verdicts are the check's words (workbench.faithfulness)
    'assert top_site["circuits"] == "blocks.3.hook_mlp_out", "the circuits\' top node is the last MLP\'s output"',
    'assert min(m[f"spearman {p}"] for p in ("wagle~salun", "salun~snip", "wagle~snip")) > 0.8, "gradient scores agree"',
    'assert m["spearman concept~wagle"] < 0.3, "concept vectors point elsewhere"',
    'resolved = lambda k: m[f"{k} low"] > 0',
    'within = lambda k, d: m[f"{k} high"] < d',
    'NOTHING = 0.1  # "nothing": an excess within a tenth of accuracy for its whole interval',
    'assert verdict["circuits", 0.01] == "unspecific", "the last MLP breaks every fact"',
    'for name in ("wagle", "salun", "snip"):  # beyond random sites, but the neighbours and retain people fall too',
    '    assert resolved(f"{name} forget_excess @0.05") and verdict[name, 0.05] == "unspecific", name',
    'assert verdict["random", 0.01] != "specific" and verdict["random", 0.05] != "specific", "the null"',
    'assert within("concept forget_excess @0.05", NOTHING), "concept ~ random"',
    'if smol is not None:  # SmolLM2: the top nodes are whole MLPs; the concept vectors are not shown specific',
    '    assert resolved("smol circuits forget_excess @0.01") and verdict["smol circuits", 0.01] == "unspecific"',
    '    assert verdict["smol concept", 0.01] != "specific"',
]
CONCLUSION_ONE = """## Conclusion (every number is this run's; [low, high]: 95% interval over people)

- **The gradient-based weight localisers agree with each other and with little else.** WAGLE,
  SalUn and SNIP select almost the same layer x component cells (Spearman {m["spearman wagle~salun"]:.3f}
  for WAGLE~SalUn with top-3 Jaccard {m["jaccard@3 wagle~salun"]:.2f}, {m["spearman salun~snip"]:.3f} for
  SalUn~SNIP, {m["spearman wagle~snip"]:.3f} for WAGLE~SNIP); concept vectors point elsewhere (Spearman
  {m["spearman concept~wagle"]:.3f} against WAGLE).
- **What most localisers find is what every fact needs, not where these facts live.** The circuits'
  top node, the last MLP's output ({m["circuits params @0.01"]:,.0f} parameters, more than the 1% budget), reads
  `{verdict["circuits", 0.01]}`: forget accuracy falls by {m["circuits forget_drop @0.01"]:.3f}
  against {m["circuits forget_random @0.01"]:.3f} for another layer's MLP, but the neighbours fall by
  {m["circuits neighbour_drop @0.01"]:.3f} and the retain people no edit reads by {m["circuits retain_eval_drop @0.01"]:.3f}.
  Zeroing the top 5% of the eligible weights by WAGLE, SalUn or SNIP removes forget facts beyond random
  weights of the same tensors (WAGLE's excess [{m["wagle forget_excess @0.05 low"]:.3f},
  {m["wagle forget_excess @0.05 high"]:.3f}]) and breaks the others as far (neighbour excess
  [{m["wagle neighbour_excess @0.05 low"]:.3f}, {m["wagle neighbour_excess @0.05 high"]:.3f}], retain_eval
  [{m["wagle retain_eval_excess @0.05 low"]:.3f}, {m["wagle retain_eval_excess @0.05 high"]:.3f}]): `unspecific`.
- **Without the norm gains, the `selective` weight score reads `{verdict["selective", 0.01]}` at 1% and
  `{verdict["selective", 0.05]}` at 5%** (forget excess [{m["selective forget_excess @0.01 low"]:.3f},
  {m["selective forget_excess @0.01 high"]:.3f}] and [{m["selective forget_excess @0.05 low"]:.3f},
  {m["selective forget_excess @0.05 high"]:.3f}]). Of its top 1% over every weight,
  {m["selective excluded_share"]:.1%} of the scalars were norm gains, embeddings or the unembedding
  (magnitude: {m["magnitude excluded_share"]:.1%}); a check that zeroes those measures them, not the score.
  Clamping the top 20 SAE features reads `{verdict["sae", 20]}` (forget excess
  [{m["sae forget_excess @20 low"]:.3f}, {m["sae forget_excess @20 high"]:.3f}], neighbour excess
  [{m["sae neighbour_excess @20 low"]:.3f}, {m["sae neighbour_excess @20 high"]:.3f}]).
- **Concept vectors find nothing to ablate here** (`{verdict["concept", 0.05]}` at 5%: forget excess
  [{m["concept forget_excess @0.05 low"]:.3f}, {m["concept forget_excess @0.05 high"]:.3f}], within
  {NOTHING:.2f}): the fictitious people share their answers (cities, jobs) with everyone else, so the forget
  facts have no vocabulary of their own for a value vector to write, and on planted neurons the
  scorer finds only a part of the signal (tests/integration/test_planted.py), so this null says
  little about the paper's premise. Random weights read `{verdict["random", 0.05]}`.
{smol_line}"""
SMOL_LINE = ("smol_line = (\"\" if smol is None else f\"- On SmolLM2 at 1% of the parameters, concept vectors read "
             "`{verdict['smol concept', 0.01]}` (forget excess over random vectors [{m['smol concept forget_excess @0.01 low']:.3f}, "
             "{m['smol concept forget_excess @0.01 high']:.3f}]), attribution patching's top nodes "
             "`{verdict['smol circuits', 0.01]}` (forget excess [{m['smol circuits forget_excess @0.01 low']:.3f}, "
             "{m['smol circuits forget_excess @0.01 high']:.3f}], neighbour drop {m['smol circuits neighbour_drop @0.01']:.3f}, "
             "retain_eval drop {m['smol circuits retain_eval_drop @0.01']:.3f}).\")")
RELATIONS_ONE.append(SMOL_LINE)

one = nb([
    ("md", """# Where does a fact live?

Every localiser of the workbench on one forget task (the 100 forget facts of the embedded
testbed world on `testbed:dense`: 20 fictitious people, 5 facts each), compared two ways:

1. **agreement**: do they point at the same layers and components? (Spearman correlation of
   their selection density per layer x component, and the Jaccard index of their top cells);
2. **faithfulness**: does ablating a localiser's top sites remove the forget facts, more than
   ablating random sites of the same kind and parameters, and more than it hurts the neighbours
   and the retain people? Accuracy on held-out facts against the parameters ablated, next to
   random draws, with intervals over people and a verdict word.

Only the public API is used: `workbench.pipeline`, `workbench.localise`, `workbench.faithfulness`,
`workbench.study`.
Set `WORKBENCH_NB_SMOLLM2=1` to add the last section, the same comparison on SmolLM2-135M."""),
    ("code", SETUP),
    ("code", """from workbench.pipeline import Pipeline

pipe = Pipeline(progress=False)
model = pipe.model("testbed:dense")
task = pipe.task(model)
print(task.summary())"""),
    ("md", "## Run every localiser (each result is cached by content hash, so a rerun is instant)"),
    ("code", """from workbench.localise import LOCALISERS

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
    res = pipe.localise(model, task, method, options)
    loc = locs[label] = res.localisation
    rows.append({"localiser": label, "kind": loc.kind, "sites": len(loc.sites),
                 "top site": str(loc.ranked()[0][0]), "seconds": loc.provenance["seconds"], "cached": res.reused})
print("registered localisers:", ", ".join(LOCALISERS.names()))
pd.DataFrame(rows)"""),
    ("code", """from workbench.localise.figures import figure_scores

for label in ("circuits", "wagle", "concept"):
    figure_scores(locs[label], 0.05).show()"""),
    ("md", "## Agreement at the shared granularity (layer x component)"),
    ("code", """from workbench.localise import agreement, agreement_matrix
from workbench.study.report import figure_agreement

pairs = pd.DataFrame(agreement(locs, k=3))
figure_agreement({"testbed:dense": agreement_matrix(locs)}).show()
pairs.sort_values("spearman", ascending=False).head(12)"""),
    ("md", """## Faithfulness: ablate the top sites vs random sites of the same kind and parameters

Units (neurons, heads, MLP outputs) are mean-ablated (their mean on the retain people a localiser
reads), weights are zeroed (norm gains, embeddings and unembedding left out), both with the
`ablate` operator's own interventions, at budgets counted in parameters. Random: the mean of 20
draws of the same kind, stratified by layer and component, excluding the top sites. Everything is
measured on held-out facts in the forms no localiser read: the forget people, their neighbours
(the hard case) and the retain people no edit reads (`retain_eval`), each with its 95% interval
over people, and judged by a verdict word (`specific`, `unspecific`, `no effect`,
`inconclusive`). SAE features are clamped in the SAE's latent space instead (next section)."""),
    ("code", """from workbench.faithfulness import DRAWS, ablation_check, excluded_share

BUDGETS = (0.005, 0.01, 0.05)  # fractions of the eligible parameters
faith = []
for label in ("concept", "circuits", "wagle", "salun", "snip", "selective", "magnitude", "random"):
    for r in ablation_check(model, task, locs[label], budgets=BUDGETS, draws=DRAWS):
        faith.append({**r.as_dict(), "localiser": label})
faith = pd.DataFrame(faith)
for split in ("forget", "neighbour", "retain_eval"):
    faith[f"{split}_after"] = faith[f"{split}_before"] - faith[f"{split}_drop"]
    faith[f"{split}_random_after"] = faith[f"{split}_before"] - faith[f"{split}_random"]
shares = {label: excluded_share(model.model, locs[label]) for label in ("wagle", "salun", "snip", "selective",
                                                                       "magnitude")}
print("share of each weight localiser's top 1% in norm gains, embeddings, unembedding:",
      {k: round(v, 3) for k, v in shares.items()})
faith[["localiser", "budget", "n", "params", "forget_drop", "forget_random", "forget_excess_95",
       "neighbour_excess_95", "retain_eval_excess_95", "verdict"]]"""),
    ("code", """import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

SPLITS = ("forget", "neighbour", "retain_eval")
fig = make_subplots(rows=1, cols=3, shared_yaxes=True,
                    subplot_titles=[f"{s} accuracy (dotted: random sites)" for s in SPLITS])
for i, (label, rows) in enumerate(faith.groupby("localiser", sort=False)):
    rows = rows.drop_duplicates("params")  # whole sites: several budgets may take the same ones
    color = qualitative.Plotly[i % len(qualitative.Plotly)]
    hover = [f"{b:.1%} of the parameters requested; {n} {kind} sites; {v}"
             for b, n, kind, v in zip(rows.budget, rows.n, rows.kind, rows.verdict)]
    for col, split in enumerate(SPLITS, start=1):
        fig.add_trace(go.Scatter(x=rows.params, y=rows[f"{split}_after"], name=label, mode="lines+markers",
                                 legendgroup=label, showlegend=col == 1, line=dict(color=color), text=hover), 1, col)
        fig.add_trace(go.Scatter(x=rows.params, y=rows[f"{split}_random_after"], name=f"{label}: random",
                                 mode="lines+markers", legendgroup=label, showlegend=False,
                                 line=dict(color=color, dash="dot"), text=hover), 1, col)
fig.update_xaxes(type="log", title="parameters ablated")
fig.update_yaxes(range=[-0.02, 1.02])
fig.update_yaxes(title="accuracy", col=1)
fig.update_layout(title="Faithfulness curves: accuracy after ablating each localiser's top sites",
                  template="plotly_white", height=450)
fig.show()"""),
    ("md", "## SAE features: clamp the top features vs random features of similar firing rate"),
    ("code", """from workbench.faithfulness import sae_clamp_check

sae_rows = pd.DataFrame([sae_clamp_check(model, task, locs["sae"], n=n).as_dict() for n in (10, 20)])
sae_rows[["n", "forget_drop", "forget_random", "forget_excess_95", "neighbour_excess_95", "retain_eval_excess_95",
          "verdict"]]"""),
    ("md", """## Optional: the same on SmolLM2-135M-Instruct

Runs when `WORKBENCH_NB_SMOLLM2=1` (the test suite sets it): concept vectors and attribution
patching on SmolLM2 with its real-knowledge task (facts about France), faithfulness at 1% of the
parameters (30 facts per split)."""),
    ("code", """smol = None
if os.environ.get("WORKBENCH_NB_SMOLLM2") == "1":
    smol = pipe.model("smollm2-135m-instruct")
    smol_task = pipe.task(smol)
    print(smol_task.summary())
    smol_rows = []
    for label, (method, options) in {"concept": ("concept", {}), "circuits": RUNS["circuits"]}.items():
        loc = pipe.localise(smol, smol_task, method, options).localisation
        for r in ablation_check(smol, smol_task, loc, budgets=(0.01,), max_facts=30):
            smol_rows.append({**r.as_dict(), "localiser": label, "top site": str(loc.ranked()[0][0])})
    display(pd.DataFrame(smol_rows)[["localiser", "top site", "n", "params", "forget_drop", "forget_random",
                                     "forget_excess_95", "neighbour_drop", "retain_eval_drop", "verdict"]])
else:
    print("skipped: set WORKBENCH_NB_SMOLLM2=1 to run this section")"""),
    ("md", "## What this run measured"),
    ("code", """def at(label, budget, col):
    return float(faith[(faith.localiser == label) & (faith.budget == budget)][col].iloc[0])

def pair(a, b, col="spearman"):
    row = pairs[((pairs.a == a) & (pairs.b == b)) | ((pairs.a == b) & (pairs.b == a))]
    return float(row[col].iloc[0])

COLUMNS = ("forget_drop", "forget_random", "neighbour_drop", "retain_eval_drop", "params")
measured = {f"{label} {col} @{b:g}": at(label, b, col) for label in faith.localiser.unique()
            for b in (0.01, 0.05) for col in COLUMNS}
verdict = {(row.localiser, row.budget): row.verdict for row in faith.itertuples()}
# the 95% intervals over people: of each drop, of each random drop, of each excess (drop - random)
# and of the forget excess minus the others'
def bounds(prefix, suffix, intervals):
    return {f"{prefix} {k} {suffix} {side}": v for k, iv in intervals.items() for side, v in zip(("low", "high"), iv)}

for row in faith[faith.budget.isin([0.01, 0.05])].itertuples():
    measured |= bounds(row.localiser, f"@{row.budget:g}", row.intervals)
measured |= {f"spearman {a}~{b}": pair(a, b) for a, b in
             (("wagle", "salun"), ("salun", "snip"), ("wagle", "snip"), ("concept", "wagle"))}
measured["jaccard@3 wagle~salun"] = pair("wagle", "salun", "jaccard@3")
measured |= {f"{label} excluded_share": share for label, share in shares.items()}
sae20 = sae_rows.set_index("n").loc[20]
measured |= {f"sae {col} @20": float(sae20[col]) for col in COLUMNS[:-1]}
measured |= bounds("sae", "@20", sae20["intervals"])
verdict["sae", 20] = sae20["verdict"]
if smol is not None:
    for r in smol_rows:
        measured |= {f"smol {r['localiser']} {col} @0.01": r[col] for col in COLUMNS}
        measured |= bounds(f"smol {r['localiser']}", "@0.01", r["intervals"])
        verdict[f"smol {r['localiser']}", 0.01] = r["verdict"]
top_site = {label: str(loc.ranked()[0][0]) for label, loc in locs.items()}
print(verdict)
{k: round(v, 3) for k, v in measured.items()}"""),
    *conclusion(RELATIONS_ONE, CONCLUSION_ONE),
])

RELATIONS_TWO = [  # "X beyond noise" = the 95% intervals over people do not overlap
    'W = "wagle 5% + graddiff"',
    'beyond = lambda a, b: m[f"{a} high"] < m[f"{b} low"]  # a below b beyond noise',
    'for name in ("graddiff", "npo"):  # behaviour no higher than the oracle\'s, the concept vectors still there',
    '    assert not beyond(f"oracle forget", f"{name} forget") and m[f"{name} concept cos"] > 0.9, name',
    '    assert not beyond("oracle relearned", f"{name} relearned"), name  # no relearning ...',
    '    assert beyond(f"{name} neighbour", "oracle neighbour") and beyond(f"{name} retain", "oracle retain"), name',
    'TRACE = {name: ("above 0: the concept vectors survive beyond what the edit leaves of any vector"',
    '               if m[f"{name} concept vs random cos low"] > 0 else "not above 0: the concept vectors survive no "',
    '               "better than random vectors of the same layer and norm, so the cosine is no trace of the concept")',
    '         for name in ("graddiff", "npo")}',
    'assert beyond("oracle relearned", f"{W} relearned"), "relearning brings the localised edit back"',
    'assert beyond("oracle latent probe", f"{W} latent probe"), "and a latent probe still reads it"',
    '# membership: below the oracle beyond noise (over-forgetting leaks too), or inside the noise at this sample size',
    'low_mia = [n for n in ("graddiff", "npo") if beyond(f"{n} MIA AUC (Min-K)", "oracle MIA AUC (Min-K)")]',
    'MIA = {2: "both below the oracle\'s beyond noise: over-forgetting is itself a membership signal",',
    '       0: "both inside the noise at this sample size: no membership signal either way is resolved"}.get(',
    '    len(low_mia), f"only {\' and \'.join(low_mia)} below the oracle\'s beyond noise (over-forgetting is itself a "',
    '    f"membership signal); the other is inside the noise at this sample size")',
]
CONCLUSION_TWO = """## Conclusion (every number is this run's; [low, high]: 95% interval over people)

- **Behavioural forgetting leaves the value vectors in place, concept or not.** After GradDiff the
  forget accuracy on the forms no edit trained on is {m["graddiff forget"]:.3f} [{m["graddiff forget low"]:.3f},
  {m["graddiff forget high"]:.3f}] (in-sample, with the forms it trained on: {m["graddiff forget in-sample"]:.3f};
  the oracle's {m["oracle forget"]:.3f} [{m["oracle forget low"]:.3f}, {m["oracle forget high"]:.3f}]), yet the
  concept localiser's value vectors keep cosine {m["graddiff concept cos"]:.3f} with the original's (after NPO
  {m["npo concept cos"]:.3f}), and random value vectors of the same layers and norms keep
  {m["graddiff random vectors cos"]:.3f} (NPO {m["npo random vectors cos"]:.3f}). The difference, concept minus
  random, is [{m["graddiff concept vs random cos low"]:.3f}, {m["graddiff concept vs random cos high"]:.3f}] after
  GradDiff, {TRACE["graddiff"]}; after NPO [{m["npo concept vs random cos low"]:.3f},
  {m["npo concept vs random cos high"]:.3f}], {TRACE["npo"]}.
- **Relearning undoes the localised edit, whatever its forget score says.** GradDiff restricted to
  WAGLE's top 5% of weights (held-out forget accuracy {m[W + " forget"]:.3f}, in-sample
  {m[W + " forget in-sample"]:.3f}) has a TOFU forget quality of
  {m[W + " forget quality"]:.3g}, the KS p-value against the oracle: {"above" if m[W + " forget quality"] > ALPHA else "below"} the 5% level, so on this run the benchmark
  score {"cannot tell the edit from the oracle" if m[W + " forget quality"] > ALPHA else "already tells the edit from the oracle"}
  (whole-model GradDiff
  {m["graddiff forget quality"]:.3g}, NPO {m["npo forget quality"]:.3g}). Fine-tuning on half of the forget
  facts for 10 steps brings the other half to {m[W + " relearned"]:.3f} [{m[W + " relearned low"]:.3f},
  {m[W + " relearned high"]:.3f}], against {m["oracle relearned"]:.3f} [{m["oracle relearned low"]:.3f},
  {m["oracle relearned high"]:.3f}] for the oracle, which never saw them, and {m["original relearned"]:.3f} for the
  original; a linear probe on the last layer's residual stream still reads {m[W + " latent probe"]:.3f} [{m[W + " latent probe low"]:.3f},
  {m[W + " latent probe high"]:.3f}] against the oracle's {m["oracle latent probe"]:.3f}
  [{m["oracle latent probe low"]:.3f}, {m["oracle latent probe high"]:.3f}]. The localised edit is not as good as the oracle, and relearning shows it.
- **Whole-model GradDiff and NPO do not come back ({m["graddiff relearned"]:.3f} and {m["npo relearned"]:.3f}
  relearned), but they are not oracle-like either: they over-forget.** Their Min-K membership AUC is
  {m["graddiff MIA AUC (Min-K)"]:.3f} [{m["graddiff MIA AUC (Min-K) low"]:.3f}, {m["graddiff MIA AUC (Min-K) high"]:.3f}]
  and {m["npo MIA AUC (Min-K)"]:.3f} [{m["npo MIA AUC (Min-K) low"]:.3f}, {m["npo MIA AUC (Min-K) high"]:.3f}]
  against the oracle's {m["oracle MIA AUC (Min-K)"]:.3f} [{m["oracle MIA AUC (Min-K) low"]:.3f},
  {m["oracle MIA AUC (Min-K) high"]:.3f}]: {MIA}. Neighbour accuracy
  falls to {m["graddiff neighbour"]:.3f} and {m["npo neighbour"]:.3f} (oracle {m["oracle neighbour"]:.3f}), and
  retain accuracy on the retain people no edit saw to {m["graddiff retain"]:.3f} and {m["npo retain"]:.3f}
  (oracle {m["oracle retain"]:.3f}), each beyond its interval. So relearning restores what an edit only
  suppressed (the localised edit); the edits it does not restore paid for it with collateral damage, and
  none of the three matches the oracle."""

two = nb([
    ("md", """# Does unlearning truly unlearn?

Behaviour is the first thing unlearning changes and the last thing that tells you whether the
knowledge is gone. Here three edits of `testbed:dense` (GradDiff and NPO on the whole model,
and GradDiff restricted to the top 5% of WAGLE-localised weights) are probed four ways next
to the original and to the **oracle**, the same model trained without the forget facts:

- **behaviour**: exact-answer accuracy on forget / retain / neighbour facts, held out of every
  edit (the forget facts in forms no edit trains on, retain people no edit sees), the in-sample
  forget accuracy beside it;
- **parametric traces**: are the forget concept's value vectors still in the weights?
- **latent probes**: can a linear probe on the residual stream still read the answer? (Quoted at the
  last layer: the best of the layers is chosen on the same data, and early layers read name parts
  that neighbours share with the forget people, so even the oracle scores above chance there.)
- **relearning attack**: fine-tune on half of the forget facts; does the other half come back?"""),
    ("code", SETUP),
    ("code", """from probes import ProbeConfig
from workbench.pipeline import Pipeline

pipe = Pipeline(progress=False)
model = pipe.model("testbed:dense")
task = pipe.task(model)
config = ProbeConfig.from_options({"families": ("behaviour", "tofu", "muse", "traces", "latent", "relearn"),
                                   "max_facts": 50, "relearn.steps": 10, "behaviour.samples": 3})
wagle = pipe.localise(model, task, "wagle", {"seed": 0}).localisation
EDITS = {  # label -> (localisation, operator, options)
    "graddiff": (None, "graddiff", {"seed": 0}),
    "npo": (None, "npo", {"seed": 0}),
    "wagle 5% + graddiff": (wagle, "graddiff", {"fraction": 0.05, "seed": 0}),
}
results = {}
for label, (loc, op, options) in EDITS.items():
    edit = pipe.edit(model, task, op, options, localisation=loc).edit
    results[label] = pipe.probe(model, task, edit=edit, config=config)  # next to the original and the oracle
print(results["npo"].table(["behaviour"]))"""),
    ("code", """# forget and retain are held out of every edit (the forget facts in forms no edit reads, the retain
# people no edit reads); "forget in-sample" includes the forms the edits trained on
HEAD = {"forget": "behaviour.forget.eval_forms", "forget in-sample": "behaviour.forget.all",
        "retain": "behaviour.retain_eval.all", "neighbour": "behaviour.neighbour.all",
        "MIA AUC (Min-K)": "muse.auc.mink", "latent probe": "latent.last_layer.forget",
        "concept cos": "traces.concept.cos", "concept Jaccard": "traces.concept.jaccard",
        "random vectors cos": "traces.random.cos", "concept vs random cos": "traces.concept_vs_random.cos",
        "relearned": "relearn.forget.final", "forget quality": "tofu.forget_quality"}
any_result = next(iter(results.values()))
rows = [("original", any_result, "original"), ("oracle", any_result, "oracle")]
rows += [(label, r, "edited") for label, r in results.items()]
table = pd.DataFrame([{"model": n, **{k: r.value(m, role) for k, m in HEAD.items()}} for n, r, role in rows])
table = table.set_index("model")
# the 95% interval over people of each value that has one
bounds = {f"{n} {k} {side}": v for n, r, role in rows for k, m in HEAD.items() if r.interval(m, role)
          for side, v in zip(("low", "high"), r.interval(m, role))}
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
measured |= bounds
ALPHA = 0.05  # TOFU's forget quality is a p-value: the conventional level
{k: round(v, 3) for k, v in measured.items()}"""),
    *conclusion(RELATIONS_TWO, CONCLUSION_TWO),
])

RELATIONS_THREE = [  # beyond(a, b): a below b beyond noise (their 95% intervals over people do not overlap)
    'beyond = lambda a, b: m[f"{a} high"] < m[f"{b} low"]',
    'assert beyond("wagle forget", "random forget"), "where the edit goes matters"',
    'assert beyond("none graddiff neighbour", "wagle neighbour"), "the localised edit spares neighbours"',
    'assert beyond("oracle relearned", "wagle relearned"), "relearning brings the localised edit back"',
    'assert not beyond("moe oracle forget", "moe npo forget"), "whole-model NPO is not above the oracle\'s level"',
]
CONCLUSION_THREE = """## Conclusion (every number is this run's; forget is measured on the forms no edit trained on,
retain on the people no edit saw; [low, high]: 95% interval over people)

- **Localisation buys selectivity, not safety.** Restricting GradDiff to WAGLE's top 5% of weights
  leaves forget accuracy at {m["wagle forget"]:.3f} [{m["wagle forget low"]:.3f}, {m["wagle forget high"]:.3f}]
  (the same budget of random weights: {m["random forget"]:.3f} [{m["random forget low"]:.3f},
  {m["random forget high"]:.3f}]) and spares neighbours ({m["wagle neighbour"]:.3f} against
  {m["none graddiff neighbour"]:.3f} for whole-model GradDiff, which reaches {m["none graddiff forget"]:.3f}
  forget); but relearning brings the localised edit back to {m["wagle relearned"]:.3f}
  [{m["wagle relearned low"]:.3f}, {m["wagle relearned high"]:.3f}], above the oracle's
  {m["oracle relearned"]:.3f} [{m["oracle relearned low"]:.3f}, {m["oracle relearned high"]:.3f}].
- **On the MoE, whole-model NPO reaches the oracle's level** ({m["moe npo forget"]:.3f} forget accuracy; the
  oracle's: {m["moe oracle forget"]:.3f}; the intervals overlap). Removing the top-affinity expert from its router leaves forget accuracy
  at {m["moe remove-experts forget"]:.3f} [{m["moe remove-experts forget low"]:.3f}, {m["moe remove-experts forget high"]:.3f}]
  against the original's {m["moe original forget"]:.3f} [{m["moe original forget low"]:.3f}, {m["moe original forget high"]:.3f}]
  (95% intervals over people): the intervals {"overlap" if overlap(A, B) else "do not overlap"}, so {
  "on this run routing around one expert removes no measurable part of the forget facts" if overlap(A, B) else
  "on this run that expert carries part of the forget facts"}; retain accuracy goes from
  {m["moe original retain"]:.3f} [{m["moe original retain low"]:.3f}, {m["moe original retain high"]:.3f}] to
  {m["moe remove-experts retain"]:.3f} [{m["moe remove-experts retain low"]:.3f}, {m["moe remove-experts retain high"]:.3f}], {
  "intervals that overlap" if overlap(RA, RB) else "intervals that do not overlap: the expert serves retain facts too, so removing it is not a targeted edit"}
  (another training of the same recipe may differ: the faithfulness tests assert no direction).
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
    ("code", """from workbench.study.report import reference_rows, study_agreement, study_rows

ids = [c.id for c in run.cells]
with Store(run.store_path) as store:  # everything the figures need, read once
    cell_rows, ref_rows = study_rows(store, ids), reference_rows(store, ids)
    agreement = study_agreement(store, ids)  # loads the cached localisations the cells point to
rows, refs = pd.DataFrame(cell_rows), pd.DataFrame(ref_rows)
cols = ["model", "localiser", "operator", "forget", "retain", "neighbour", "mia_auc", "latent", "relearned", "concept_cos"]
rows[cols]"""),
    ("code", """refs"""),
    ("code", """from workbench.study import figure_agreement, figure_pareto, figure_study_relearning, figure_study_traces

figure_pareto(cell_rows, ref_rows).show()"""),
    ("code", """with Store(run.store_path) as store:  # the curves are read from the store's curves table
    figure_study_relearning(store, ids).show()
figure_agreement(agreement).show()
figure_study_traces(cell_rows).show()"""),
    ("md", "## A question the table answers: does localisation buy selectivity?"),
    ("code", """dense = rows[rows.model == "testbed:dense"].copy()
dense["selectivity"] = (dense["retain"] - dense["forget"])
dense.sort_values("selectivity", ascending=False)[["localiser", "operator", "forget", "retain", "selectivity",
                                                    "relearned", "latent"]]"""),
    ("code", """def cell(loc, op, model="testbed:dense"):
    return rows[(rows.model == model) & (rows.localiser == loc) & (rows.operator == op)].iloc[0]

measured = {}


def add(name, row, col):
    \"\"\"A value and, where it has one, its 95% interval over people (`name low`, `name high`).\"\"\"
    measured[name] = float(row[col])
    if pd.notna(row.get(f"{col}_low")) and pd.notna(row.get(f"{col}_high")):
        measured[f"{name} low"], measured[f"{name} high"] = float(row[f"{col}_low"]), float(row[f"{col}_high"])


add("wagle forget", cell("wagle", "graddiff"), "forget")
add("random forget", cell("random", "graddiff"), "forget")
add("wagle relearned", cell("wagle", "graddiff"), "relearned")
add("none graddiff forget", cell("none", "graddiff"), "forget")
add("none graddiff neighbour", cell("none", "graddiff"), "neighbour")
add("wagle neighbour", cell("wagle", "graddiff"), "neighbour")
add("moe npo forget", cell("none", "npo", "testbed:moe"), "forget")
for split in ("forget", "retain"):
    add(f"moe remove-experts {split}", cell("experts", "remove-experts", "testbed:moe"), split)
for _, ref in refs.iterrows():  # the original's and the oracle's values, per model
    prefix = "" if ref.model == "testbed:dense" else "moe "
    for col in ("relearned", "forget", "retain"):
        add(f"{prefix}{ref.role} {col}", ref, col)


A, B = "moe remove-experts forget", "moe original forget"
RA, RB = "moe remove-experts retain", "moe original retain"


def overlap(a, b):
    \"\"\"Whether the 95% intervals of two measured values overlap (a difference inside them is noise).\"\"\"
    return measured[f"{a} low"] <= measured[f"{b} high"] and measured[f"{b} low"] <= measured[f"{a} high"]


{k: round(v, 3) for k, v in measured.items()}"""),
    *conclusion(RELATIONS_THREE, CONCLUSION_THREE),
])

for name, book in (("1_where_does_a_fact_live", one), ("2_does_unlearning_truly_unlearn", two),
                   ("3_reading_an_ablation_study", three)):
    OUT.mkdir(parents=True, exist_ok=True)
    nbf.write(book, OUT / f"{name}.ipynb")
print("written")
