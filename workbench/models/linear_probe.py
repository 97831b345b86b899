"""Linear probes: multinomial logistic regression in torch (full-batch L-BFGS), deterministic.

Used by the FLU circuit mode and by the latent-knowledge probes. Labels are arbitrary
hashables; a probe is fitted per group (e.g. per relation) when labels are (group, label).
"""
from __future__ import annotations

import torch


def fit_logistic(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float = 1e-3,
                 steps: int = 100, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (W, b, mean, std): predict with ((x - mean) / std) @ W.T + b."""
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    w = torch.zeros((n_classes, x.shape[1]), requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ w.T + b, y) + l2 * (w ** 2).sum()
        loss.backward()
        return loss
    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach(), mean, std


def probe_accuracy(x_train: torch.Tensor, labels_train: list, x_test: torch.Tensor, labels_test: list,
                   seed: int = 0) -> float:
    """Accuracy on the test set (`probe_correct`'s mean; nan without test items)."""
    correct = probe_correct(x_train, labels_train, x_test, labels_test, seed)
    return sum(correct) / len(correct) if correct else float("nan")


def probe_correct(x_train: torch.Tensor, labels_train: list, x_test: torch.Tensor, labels_test: list,
                  seed: int = 0) -> list[int]:
    """Per test item, 1 if the probe names its label, else 0; labels (group, label) fit one
    probe per group. Test items whose label (or group) never occurs in training count as wrong."""
    grouped = isinstance(labels_train[0], tuple) if labels_train else False
    groups = sorted({l[0] for l in labels_train}) if grouped else [None]
    correct = [0] * len(labels_test)
    lab = lambda l: l[1] if grouped else l  # noqa: E731
    for g in groups:
        tr = [i for i, l in enumerate(labels_train) if not grouped or l[0] == g]
        te = [i for i, l in enumerate(labels_test) if not grouped or l[0] == g]
        if not te:
            continue
        classes = sorted({lab(labels_train[i]) for i in tr}, key=str)
        index = {c: k for k, c in enumerate(classes)}
        if len(classes) < 2:
            for i in te:
                correct[i] = int(lab(labels_test[i]) in index)
            continue
        y = torch.tensor([index[lab(labels_train[i])] for i in tr])
        w, b, mean, std = fit_logistic(x_train[tr].float(), y, len(classes), seed=seed)
        pred = (((x_test[te].float() - mean) / std) @ w.T + b).argmax(-1).tolist()
        for i, p in zip(te, pred):
            correct[i] = int(index.get(lab(labels_test[i]), -1) == p)
    return correct
