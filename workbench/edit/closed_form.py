"""Closed-form edits: LUNAR refits one W_out so forget prompts move toward the state of
prompts about unknown people (LUNAR's refusal direction, for a world without refusals)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import WorkbenchInputError
from ..hooks import hook_session
from ..models.arch import resolve
from ..registry import check_positive, check_range
from ..sites import HookSite, WeightSite
from ..tasks.prompts import build_prompts
from .edit import Edit
from .registry import Operator, register


@dataclass(frozen=True)
class LunarConfig:
    layer: int | None = None  # None = the middle layer
    scale: float = 2.0  # forget rows map to mlp_out + scale * r
    ridge: float = 1e-2  # λ: pull toward the original W_out
    max_facts: int = 200
    seed: int = 0

    def check(self):
        check_positive(self, "max_facts")
        check_range(self, "ridge", 0, low_open=True)


def unknown_subjects(task, n: int, seed: int = 0) -> list[str]:
    """Subjects the task never mentions, built from its own name parts (first part of one
    subject + last part of another); single-word subjects are paired instead."""
    import random

    rng = random.Random(seed)
    known = {f.subject for f in task.all_facts}
    subjects = sorted(known)
    out: list[str] = []
    for _ in range(50 * n):
        a, b = rng.sample(subjects, 2)
        cand = f"{a.split()[0]} {b.split()[-1]}" if len(a.split()) > 1 else f"{a} {b}"
        if cand not in known and cand not in out:
            out.append(cand)
        if len(out) >= n:
            break
    return out


@register
class Lunar(Operator):
    name = "lunar"
    summary = "LUNAR: refit one W_out (ridge) so forget prompts move toward the unknown-entity state"
    Config = LunarConfig
    needs_localisation = False

    @torch.no_grad()
    def apply(self, loaded, loc, task, cfg: LunarConfig, progress):
        """r = mean resid(L, last position | prompts about unknown people) − mean(same | forget
        prompts); W_out of layer L is refitted in closed form so that forget rows give
        mlp_out + scale·r and retain rows keep their mlp_out (ridge toward the original)."""
        model, tok = loaded.model, loaded.tokenizer
        n_layers = model.config.num_hidden_layers
        layer = cfg.layer if cfg.layer is not None else n_layers // 2
        if not 0 <= layer < n_layers:
            raise WorkbenchInputError(f"option layer={layer}: out of range (model has {n_layers})")
        w_ps = resolve(WeightSite(layer, "mlp.W_out"), model).params[0]
        resid = resolve(HookSite(layer, "hook_resid_post"), model)
        hidden = resolve(HookSite(layer, "mlp.hook_post"), model)
        forget = build_prompts(tok, task, "forget", max_facts=cfg.max_facts, seed=cfg.seed)
        retain = build_prompts(tok, task, "retain", max_facts=cfg.max_facts, seed=cfg.seed)
        if not forget or not retain:
            raise WorkbenchInputError(f"task {task.name!r}: LUNAR needs forget and retain prompts")
        unknown = []
        names = unknown_subjects(task, len(forget), cfg.seed)
        for p, other in zip(forget, names):
            unknown.append(tok(p.example.prompt.replace(p.example.fact.subject, other))["input_ids"])

        def collect(id_lists):
            res, hid = [], []
            with hook_session(model) as hs:
                store: dict = {}
                hs.read(resid.module, resid.io, store, "r")
                hs.read(hidden.module, hidden.io, store, "h")
                for ids in id_lists:
                    model(input_ids=torch.tensor([list(ids)]))
                    res.append(store["r"][0, -1].double())
                    hid.append(store["h"][0, -1].double())
            return torch.stack(res), torch.stack(hid)
        r_unknown, _ = collect(unknown)
        r_forget, h_forget = collect([p.ids for p in forget])
        _, h_retain = collect([p.ids for p in retain])
        direction = r_unknown.mean(0) - r_forget.mean(0)
        w0 = w_ps.view(model).detach().double()  # [d, m]
        a = torch.cat([h_forget, h_retain])  # [N, m]
        b = torch.cat([h_forget @ w0.T + cfg.scale * direction, h_retain @ w0.T])  # [N, d]
        eye = torch.eye(a.shape[1], dtype=torch.float64)
        w_t = torch.linalg.solve(a.T @ a + cfg.ridge * eye, a.T @ b + cfg.ridge * w0.T)
        new = w_t.T.to(w_ps.view(model).dtype)
        return Edit(self.name, {w_ps.name: new.contiguous()}, [],
                    {"layer": layer, "direction_norm": float(direction.norm()), "unknown_subjects": names[:5]})
