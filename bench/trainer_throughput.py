"""Training throughput of the project's trainer against a bare PyTorch loop on the same model, batch and length.

Prints samples/s of both and their ratio (trainer / bare; the goal is >= 0.95). Both train the same
DSMClassifier (packaged MiniLM cut to its first layers, fp32) on the same posts, padded to the same length, with
AdamW, BCE and a linear schedule; evaluation is excluded from both timings. Runs alternate and the best of each
is kept, since these machines are noisy.

    python bench/trainer_throughput.py [--layers 2] [--seq 64] [--batch 16] [--posts 256] [--rounds 2]
"""

import argparse
import time
import warnings

import numpy as np
import torch

from dataaug_multi_both.config import TrainConfig
from dataaug_multi_both.core import set_offline
from dataaug_multi_both.data import Corpus, Post, Splits, label_names
from dataaug_multi_both.losses import make_loss
from dataaug_multi_both.model import build_model, load_tokenizer
from dataaug_multi_both.trainer import collate, encode_texts, train


def corpus(n: int, words: int, seed: int = 0) -> Corpus:
    """Posts long enough to fill the sequence length, with random labels."""
    rng = np.random.default_rng(seed)
    vocab = "sad tired sleep night eat food work friends lost hope alone worth nothing focus slow move day".split()
    posts = [Post(f"p{i}", " ".join(rng.choice(vocab, words)), (rng.random(9) < 0.3).astype(np.float32)) for i in range(n)]
    return Corpus(posts, label_names())


def bare_loop(cfg: TrainConfig, data: Corpus) -> float:
    """Samples/s of a plain PyTorch loop: pre-tokenised posts padded per batch, forward, loss, backward, step, schedule."""
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(cfg.seed)
    tok = load_tokenizer("minilm")
    ids = encode_texts(tok, data.texts, cfg.max_seq_length)
    starts = list(range(0, len(ids), cfg.batch_size))
    y = torch.tensor(data.labels)
    model = build_model(cfg, "minilm", 9)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, 0, len(starts) * int(cfg.epochs))
    loss_fn = make_loss(cfg, data.label_counts(), len(data))
    seen, t0 = 0, time.perf_counter()
    for _ in range(int(cfg.epochs)):
        for i in starts:  # pad each batch as it comes, as a DataLoader's collate_fn would
            x, m = collate(ids, np.arange(i, min(i + cfg.batch_size, len(ids))), tok.pad_token_id, cfg.pad_to_multiple_of)
            logits = model(x, m)
            loss = loss_fn(logits, y[i: i + len(x)])
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            seen += len(x)
    return seen / (time.perf_counter() - t0)


def trainer_loop(cfg: TrainConfig, data: Corpus) -> float:
    """Samples/s of `trainer.train` on the same posts (its own timing excludes evaluation)."""
    tiny_val = data.subset(range(16))
    res = train(cfg, Splits(data, tiny_val, tiny_val), "minilm", predict_test=False)
    return res.samples_seen / res.train_seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--posts", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    set_offline()
    warnings.simplefilter("ignore")
    cfg = TrainConfig(max_layers=a.layers, max_seq_length=a.seq, batch_size=a.batch, epochs=1, precision="fp32",
                      gradient_clip_val=0.0, warmup_ratio=0.0, evals_per_epoch=1, pad_to_multiple_of=8, seed=0)
    data = corpus(a.posts, words=a.seq * 2)
    bare, ours = [], []
    for r in range(a.rounds):
        bare.append(bare_loop(cfg, data))
        ours.append(trainer_loop(cfg, data))
        print(f"round {r + 1}: bare {bare[-1]:.1f} samples/s, trainer {ours[-1]:.1f} samples/s")
    print(f"MiniLM x{a.layers} layers, seq {a.seq}, batch {a.batch}, {a.posts} posts, {torch.get_num_threads()} threads")
    print(f"bare PyTorch loop: {max(bare):.1f} samples/s")
    print(f"project trainer:   {max(ours):.1f} samples/s")
    print(f"ratio trainer/bare: {max(ours) / max(bare):.3f}  (goal >= 0.95)")


if __name__ == "__main__":
    main()
