"""Benchmark: the reads behind every faithfulness check, side by side in one run (printed, not
asserted).

    python tests/benchmarks/bench_faithfulness.py [--model testbed:dense] [--repeats 3]

- mean activations over the retain prompts (what mean ablation replaces a site with): prompts
  of one length in batches of 64 against one prompt at a time (the reference), with the
  largest relative difference of the means;
- accuracy scoring of the eval examples with the prompt/answer tokenisations remembered
  against the same scoring with them forgotten before every call;
- one ablation check (one budget, 3 random draws), the unit a faithfulness table repeats.
Interleaved and repeated; the median of each and the ratio. Run nothing else meanwhile.
"""
from __future__ import annotations

import argparse
import statistics
import time


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="testbed:dense")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from workbench.cores import use_cores

    use_cores()
    from workbench.faithfulness import ablation_check
    from workbench.models import readouts
    from workbench.models.arch import resolve
    from workbench.models.scoring import score_examples
    from workbench.pipeline import Pipeline
    from workbench.sites import HookSite
    from workbench.tasks import prompts
    from workbench.tasks.prompts import eval_examples

    pipe = Pipeline(progress=False)
    loaded = pipe.model(args.model)
    task = pipe.task(loaded)
    points = [(r.module, r.io) for L in range(loaded.model.config.num_hidden_layers)
              for r in (resolve(HookSite(L, "hook_mlp_out"), loaded.model),
                        resolve(HookSite(L, "hook_resid_post"), loaded.model))]
    rows = []
    batched = readouts.mean_activations(loaded, task, points, 100)
    single = readouts.mean_activations(loaded, task, points, 100, batch_size=1)
    diff = max(float((batched[k] - single[k]).abs().max() / single[k].abs().max()) for k in batched)
    a = _median_time(lambda: readouts.mean_activations(loaded, task, points, 100), args.repeats)
    b = _median_time(lambda: readouts.mean_activations(loaded, task, points, 100, batch_size=1), args.repeats)
    rows.append(("mean activations (8 points, retain prompts)", a, b, f"max rel. diff {diff:.1e}"))

    examples = [e for split in eval_examples(task, 100).values() for e in split]

    def cold():
        prompts._ENCODED.pop(loaded.tokenizer, None)
        score_examples(loaded.model, loaded.tokenizer, examples, 128)
    score_examples(loaded.model, loaded.tokenizer, examples, 128)
    a = _median_time(lambda: score_examples(loaded.model, loaded.tokenizer, examples, 128), args.repeats)
    b = _median_time(cold, args.repeats)
    rows.append((f"scoring {len(examples)} examples", a, b, "tokenisations remembered vs not"))

    loc = pipe.localise(loaded, task, "circuits", {"mode": "oct", "method": "attribution"}).localisation

    def check():
        return ablation_check(loaded, task, loc, budgets=(0.01,), draws=3, max_facts=100)

    def as_before():  # one prompt at a time, every pair tokenised anew: the reads before batching
        import workbench.faithfulness.ablation as ablation
        import workbench.models.scoring as scoring

        mean, encode = ablation.mean_activations, scoring.encode_pairs

        def forgetful(tok, pairs):
            prompts._ENCODED.pop(tok, None)
            return encode(tok, pairs)
        ablation.mean_activations = lambda *a, **k: mean(*a, **k, batch_size=1)
        scoring.encode_pairs = forgetful
        try:
            return check()
        finally:
            ablation.mean_activations, scoring.encode_pairs = mean, encode
    same = [r.as_dict() for r in check()] == [r.as_dict() for r in as_before()]
    a = _median_time(check, args.repeats)
    b = _median_time(as_before, args.repeats)
    rows.append(("ablation check (circuits, 1 budget, 3 draws)", a, b, f"same rows: {same}"))

    print(f"{'what':48s} {'now s':>8s} {'ref s':>8s} {'ref/now':>8s}  note")
    for what, now, ref, note in rows:
        ratio = ref / now if ref == ref else float("nan")
        print(f"{what:48s} {now:8.3f} {ref:8.3f} {ratio:8.2f}  {note}")


if __name__ == "__main__":
    main()
