"""The relearning attack on a mean-ablation edit, attacked as its baked checkpoint and as the
hooked model, next to the original and the oracle (issue: relearning an ablation honestly).

    python scripts/relearn_baked_vs_hooks.py [SPEC] [FRACTION]   # default: testbed:dense 0.2

The edit mean-ablates the top FRACTION of the neurons that attribution patching (OCT, neuron
nodes) ranks for the forget facts. A hook stays attached while the attack trains the other
weights, so the hooked attack cannot move what the ablation fixed; the baked checkpoint (what
`workbench edit --export` writes, what a user would publish) can. Prints the final accuracy on
the held-out forget half after each attack and the relearning gap to the oracle, with 95%
intervals over people.
"""
from __future__ import annotations

import sys

from workbench.edit import apply_operator
from workbench.localise import localise
from workbench.models import load
from probes import probe


def main(spec: str, fraction: float) -> None:
    m = load(spec, progress=False)
    oracle = load(m.oracle_spec, progress=False)
    task = m.task()
    loc = localise(m, task, "circuits", {"nodes": "neuron"}, progress=False)
    edit = apply_operator(m, loc, task, "ablate", {"mode": "mean", "fraction": fraction})
    cfg = {"families": ("behaviour", "relearn"), "relearn.data": ("forget",)}
    for target in ("hooks", "baked"):
        r = probe(m, task, edit=edit, oracle=oracle, config={**cfg, "relearn.target": target}, progress=False)
        print(f"\nattack target: {r.details['relearn']['edited']['target']}")
        for name in ("behaviour.forget.eval_forms", "behaviour.retain_eval.all", "relearn.forget.final",
                     "relearn.forget.gap"):
            cells = []
            for role in r.roles:
                v, iv = r.value(name, role), r.interval(name, role)
                cells.append(f"{role} {v:.3f}" + (f" [{iv[0]:.3f}, {iv[1]:.3f}]" if iv else ""))
            print(f"  {name:27s} " + "   ".join(cells), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "testbed:dense", float(sys.argv[2]) if len(sys.argv) > 2 else 0.2)
