"""SAE features (Farrell et al. 2024; SAEBench unlearning eval; SAeUron).

Firing rate of every feature of an SAE on `blocks.L.hook_resid_post`, on forget text and on
retain text (every real token of prompt + answer; BOS, EOS and padding excluded). Selectors:

- `saebench` (default): drop features whose retain firing rate is >= `retain_threshold` (τ),
  rank the rest by forget firing rate. Dropped features score -1, below every kept one.
- `saeuron`: μ_forget[j] / Σ μ_forget − μ_retain[j] / Σ μ_retain, with μ the mean activation.

Sites are `blocks.L.hook_resid_post.sae.feature.J`; `top(k=N)` is the top-N selection. The
SAE comes from `workbench.sae` (trained with sae-lens, cached) or any sae-lens directory or
pretrained release named by `sae=`. Provenance keeps the SAE's directory and metrics and both
firing-rate vectors (the random baseline of the faithfulness check,
`workbench.faithfulness.sae_clamp_check`, matches firing rates).
`feature_cards` gives, per feature, its top-activating contexts and its top vocabulary tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import WorkbenchInputError
from ..sae import SAEConfig, load_sae, resid_tokens, train_sae
from ..sites import HookSite, SAEFeatureSite, SiteKind
from ..tasks.prompts import split_examples
from .base import Localiser, register
from .localisation import Localisation


@dataclass(frozen=True)
class SAEFeatureConfig:
    layer: int | None = None  # None: the default SAE's layer (n_layers // 4, at least 1)
    sae: str | None = None  # a sae-lens directory or RELEASE/SAE_ID; None = train/load the default
    selector: Literal["saebench", "saeuron"] = "saebench"
    retain_threshold: float = 0.01
    max_facts: int | None = None
    seed: int = 0
    sae_tokens: int = 400_000  # training tokens when the SAE is trained here


def sae_for(loaded, config: SAEFeatureConfig, progress: bool = False):
    """(sae, layer, directory or spec, metrics)."""
    if config.sae is not None:
        sae = load_sae(config.sae)
        hook = sae.cfg.metadata.hook_name if getattr(sae.cfg, "metadata", None) else None
        layer = config.layer if config.layer is not None else _layer_of(hook, loaded)
        return sae, layer, config.sae, {}
    cfg = SAEConfig(layer=config.layer, training_tokens=config.sae_tokens)
    sae, metrics, path, _ = train_sae(loaded, cfg, progress=progress)
    return sae, cfg.resolved_layer(loaded.model.config.num_hidden_layers), str(path), metrics


def _layer_of(hook: str | None, loaded) -> int:
    import re

    m = re.fullmatch(r"(?:blocks\.(\d+)\.hook_resid_post|model\.layers\.(\d+))", hook or "")
    if not m:
        raise WorkbenchInputError(f"SAE hook {hook!r}: the sae localiser reads blocks.L.hook_resid_post (or the HF "
                         f"module model.layers.L); pass layer=L only for an SAE trained there")
    return int(m.group(1) or m.group(2))


@torch.no_grad()
def feature_stats(loaded, sae, layer: int, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(firing rate [d_sae], mean activation [d_sae]) over the real tokens of `texts`."""
    x, _ = resid_tokens(loaded, layer, texts)
    f = sae.to("cpu").encode(x)
    return (f > 0).float().mean(0), f.clamp_min(0).mean(0)


@register
class SAEFeatures(Localiser):
    name = "sae"
    kinds = frozenset({SiteKind.SAE_FEATURE})
    summary = "SAE features (sae-lens) selected by forget vs retain firing rates (SAEBench or SAeUron)"
    Config = SAEFeatureConfig

    def localise(self, loaded, task, config: SAEFeatureConfig, progress: bool) -> Localisation:
        if config.retain_threshold < 0:
            raise WorkbenchInputError(f"option retain_threshold={config.retain_threshold}: expected >= 0")
        sae, layer, where, metrics = sae_for(loaded, config, progress)
        texts = {s: [e.text for e in split_examples(task, s, config.max_facts, config.seed)]
                 for s in ("forget", "retain")}
        empty = [s for s, t in texts.items() if not t]
        if empty:
            raise WorkbenchInputError(f"the task has no {empty[0]} text in its default forms: SAE firing rates need both splits")
        f_rate, f_mean = feature_stats(loaded, sae, layer, texts["forget"])
        r_rate, r_mean = feature_stats(loaded, sae, layer, texts["retain"])
        if config.selector == "saebench":
            scores = torch.where(r_rate < config.retain_threshold, f_rate, torch.full_like(f_rate, -1.0))
        else:
            scores = f_mean / f_mean.sum().clamp_min(1e-12) - r_mean / r_mean.sum().clamp_min(1e-12)
        hook = HookSite(layer, "hook_resid_post")
        sites = tuple(SAEFeatureSite(hook, j) for j in range(len(scores)))
        return Localisation(sites, scores.float(), {
            "sae": where, "sae_metrics": metrics, "forget_rate": f_rate.tolist(), "retain_rate": r_rate.tolist()})


@torch.no_grad()
def feature_cards(loaded, sae, layer: int, features: list[int], texts: list[str], n_contexts: int = 5,
                  n_tokens: int = 10, window: int = 6) -> list[dict]:
    """Per feature: firing rate on `texts`, its top-activating contexts (the token marked
    [[like this]]) and the top tokens of its decoder direction through the raw unembedding."""
    tok = loaded.tokenizer
    x, where = resid_tokens(loaded, layer, texts)
    f = sae.to("cpu").encode(x)
    w_u = loaded.model.get_output_embeddings().weight.detach().float().cpu()
    proj = sae.W_dec[features].float() @ w_u.T
    cards = []
    seqs: dict[int, list[int]] = {}
    for k, j in enumerate(features):
        acts = f[:, j]
        top = acts.topk(min(n_contexts, len(acts))).indices.tolist()
        contexts = []
        for i in top:
            if acts[i] <= 0:
                break
            t, p = where[i]
            ids = seqs.setdefault(t, tok(texts[t])["input_ids"])
            left = tok.decode(ids[max(1, p - window):p]).strip()
            right = tok.decode(ids[p + 1:p + 1 + window // 2]).strip()
            contexts.append({"text": f"{left} [[{tok.decode([ids[p]]).strip()}]] {right}".strip(),
                             "activation": float(acts[i])})
        cards.append({"feature": j, "firing_rate": float((acts > 0).float().mean()),
                      "contexts": contexts,
                      "top_tokens": [tok.decode([i]).strip() for i in proj[k].topk(n_tokens).indices.tolist()]})
    return cards
