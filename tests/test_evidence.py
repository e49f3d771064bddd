"""The "both" evidence head: sentence mapping, head shapes and masks, metrics against scikit-learn, bad input."""

import numpy as np
import optuna
import pytest
import torch
from sklearn.metrics import f1_score

from conftest import one_error_line, run_cli
from dataaug_multi_both.config import TrainConfig
from dataaug_multi_both.core import UserError
from dataaug_multi_both.data import load_redsm5, write_redsm5
from dataaug_multi_both.model import build_model, load_tokenizer
from dataaug_multi_both.sentences import (evidence_crossfit_f1, evidence_metrics, recall_at_k, resolve_task,
                                          sentence_labels, split_sentences)
from dataaug_multi_both.thresholds import tune_thresholds
from dataaug_multi_both.trainer import collate, collate_evidence, encode_texts, evidence_data, predict_both, truncation_counts

ANN = "post_id,sentence_id,sentence_text,DSM5_symptom,status,explanation\n"


def _corpus(tmp_path, posts, annotations):
    return load_redsm5(write_redsm5(tmp_path, posts, annotations))


def test_sentence_mapping_edge_cases(tmp_path):
    posts = [("p1", "I feel empty. Work was ok. I feel empty."),                           # the same sentence twice
             ("p2", 'She said \u201cyou\u2019re worthless\u201d 😔. I   believe her now!'),   # curly quotes, emoji, odd spaces
             ("p3", "I sleep fine. Nothing else to say.")]
    ann = [("p1", "p1_2", "I feel empty.", "DEPRESSED_MOOD", 1, "e"),          # the id says: the third sentence
           ("p2", "p2_0", "She said \"you're worthless\" 😔.", "WORTHLESSNESS", 1, "e"),
           ("p2", "p2_1", "i believe her now!", "WORTHLESSNESS", 1, "e"),
           ("p3", "p3_0", "I sleep fine.", "SLEEP_ISSUES", 0, "denies"),      # an explicit negative
           ("p3", "p3_9", "This sentence is not in the post.", "FATIGUE", 1, "e")]
    c = _corpus(tmp_path, posts, ann)
    sl = sentence_labels(c)
    col = c.label_names.index
    assert sl.labels[0][:, col("DEPRESSED_MOOD")].tolist() == [0, 0, 1]
    assert sl.labels[1][:, col("WORTHLESSNESS")].tolist() == [1, 1]
    assert sl.labels[2].sum() == 0                                              # status 0 and the absent sentence add nothing
    assert sl.counts == {"rows": 5, "exact": 2, "normalised": 2, "unmapped": 1, "explicit_negatives": 1, "sentences": 7,
                         "positive_sentences": 3}
    assert sl.unmapped == [("p3", "p3_9")]
    assert c.posts[2].labels[col("FATIGUE")] == 1                               # the post still counts at post level
    for (_, text), spans in zip(posts, sl.spans):                               # offsets slice the post
        assert all(text[a:b].strip() == text[a:b] and text[a:b] for a, b in spans)
    with pytest.warns(UserWarning, match="1 of 5 annotation rows name a sentence not found"):
        assert resolve_task("both", c) == "both"


def test_task_both_without_usable_sentences_is_a_user_error(tmp_path):
    no_ann = _corpus(tmp_path / "a", [("p1", "Hello there.")], [("p1", "p1_0", "", "FATIGUE", 1, "post-level label only")])
    with pytest.raises(UserError, match="needs sentence annotations"):
        resolve_task("both", no_ann)
    none_match = _corpus(tmp_path / "b", [("p1", "Hello there.")], [("p1", "p1_0", "Goodbye.", "FATIGUE", 1, "e")])
    with pytest.raises(UserError, match="none of the 1 sentence_text values"):
        resolve_task("both", none_match)
    assert resolve_task("auto", no_ann) == resolve_task("auto", none_match) == "criteria"


def test_evidence_head_shapes_masks_padding_and_truncation(tmp_path):
    long = " ".join(f"Sentence number {i} is here." for i in range(40))          # far past max_seq_length
    posts = [("a", "I cannot sleep. I feel empty."), ("b", long), ("c", "Tired.")]
    ann = [("a", "a_0", "I cannot sleep.", "SLEEP_ISSUES", 1, "e"), ("b", "b_39", "Sentence number 39 is here.", "FATIGUE", 1, "e"),
           ("b", "b_0", "Sentence number 0 is here.", "FATIGUE", 1, "e")]
    c = _corpus(tmp_path, posts, ann)
    cfg = TrainConfig(max_seq_length=32, head_hidden_dim=16)
    tok = load_tokenizer("tiny")
    ev = evidence_data(tok, c, cfg)
    tc = truncation_counts(ev)
    assert (tc["evidence_sentences"], tc["evidence_sentences_lost"], tc["posts_losing_evidence"]) == (3, 1, 1)
    assert ev.lost[1].sum() == 40 - ev.lost[1].tolist().index(True) and not ev.lost[0].any()
    ids = encode_texts(tok, c.texts, cfg.max_seq_length)
    assert [len(s) for s in ev.sentence_ids] == [len(i) for i in ids]
    model = build_model(cfg, "tiny", 9, evidence=True).eval()
    batch = np.arange(3)
    x, m = collate(ids, batch, tok.pad_token_id)
    sid, y = collate_evidence(ev, batch, x.shape[1])
    assert y.shape == (3, 40, 9) and (sid[m == 0] == -1).all()
    with torch.no_grad():
        post, sent, has = model(x, m, sid, y.shape[1])
    assert post.shape == (3, 9) and sent.shape == (3, 40, 9)
    assert has[0].tolist() == [True, True] + [False] * 38                        # padding sentences are masked
    assert has[1].tolist() == (~ev.lost[1]).tolist()                             # truncated sentences are masked
    # alone or in a padded batch, a post's sentences score the same; lost sentences score 0
    _, alone = predict_both(model, ids[:1], evidence_data(tok, c.subset([0]), cfg), tok.pad_token_id, batch_size=1)
    _, batched = predict_both(model, ids, ev, tok.pad_token_id, batch_size=3)
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)
    assert (batched[1][ev.lost[1]] == 0).all() and (batched[1][~ev.lost[1]] > 0).all()


def test_evidence_metrics_match_scikit_learn():
    rng = np.random.default_rng(1)
    ys = [(rng.random((int(rng.integers(1, 7)), 4)) < 0.25).astype(int) for _ in range(60)]
    ps = [np.clip(0.5 * y + 0.6 * rng.random(y.shape), 0, 1) for y in ys]
    Y, P = np.concatenate(ys), np.concatenate(ps)
    for mode in ("global", "per_class"):
        m = evidence_metrics(ys[:30], ps[:30], ys[30:], ps[30:], mode)
        thr = tune_thresholds(np.concatenate(ys[:30]), np.concatenate(ps[:30]), mode)
        yt, pt = np.concatenate(ys[30:]), np.concatenate(ps[30:])
        assert m["test_evidence_macro_f1"] == pytest.approx(f1_score(yt, (pt >= thr).astype(int), average="macro", zero_division=0))
    # cross-fitting: each fold's thresholds come from the other fold's posts
    fold = np.concatenate([np.full(len(y), i % 2) for i, y in enumerate(ys)])
    pred = np.zeros_like(Y)
    for f in (0, 1):
        pred[fold == f] = P[fold == f] >= tune_thresholds(Y[fold != f], P[fold != f])
    assert evidence_crossfit_f1(ys, ps) == pytest.approx(f1_score(Y, pred, average="macro", zero_division=0))
    # recall@k by hand
    for k in (1, 3):
        hits = [y[np.argsort(-p[:, c], kind="stable")[:k], c].max() for y, p in zip(ys, ps) for c in range(4) if y[:, c].any()]
        assert recall_at_k(ys, ps, k) == pytest.approx(np.mean(hits))


def test_split_sentences_keeps_offsets_on_real_demo_posts(demo_dir):
    c = load_redsm5(demo_dir)
    sl = sentence_labels(c)
    assert sl.counts["unmapped"] == 0 and sl.counts["exact"] == sl.counts["rows"]  # the demo corpus maps verbatim
    for p, spans in zip(c.posts[:50], sl.spans):
        assert spans and all(a < b for a, b in spans) and all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))
        assert all(p.text[a:b] == p.text[a:b].strip() for a, b in spans)
        assert [p.text[a:b] for a, b in spans] == [p.text[a:b] for a, b in split_sentences(p.text)]


def test_cli_task_both_on_data_without_sentences_exits_2(tmp_path):
    d = write_redsm5(tmp_path / "data", [(f"p{i}", f"Post {i} text here.") for i in range(30)],   # post-level labels, no sentence_text
                     [(f"p{i}", f"p{i}_0", "", ["FATIGUE", "ANHEDONIA"][i % 2], 1, "e") for i in range(30)])
    line = one_error_line(run_cli("cli.train", "--data-dir", str(d), "--task", "both", "--out", str(tmp_path / "out"),
                                  "--model", "tiny", "--epochs", "1", "--max-seq-length", "32", "--no-progress"))
    assert "needs sentence annotations" in line and "--task criteria" in line
    storage = f"sqlite:///{tmp_path}/o.db"
    line = one_error_line(run_cli("cli.hpo", "stage1", "--storage", storage, "--experiments-dir", str(tmp_path / "exp"),
                                  "--data-dir", str(d), "--task", "both", "--model", "tiny", "--trials", "1", "--no-progress"))
    assert "needs sentence annotations" in line
    assert optuna.get_all_study_names(storage) == []                           # nothing created on bad input


def _sentence_data(tmp_path, n=40, bad=()):
    """`n` posts of two sentences each, the first one annotated as evidence; rows of posts in `bad` name a sentence
    their post does not hold."""
    syms = ["DEPRESSED_MOOD", "SLEEP_ISSUES"]
    posts = [(f"p{i}", f"{'I feel empty and sad all day' if i % 2 else 'I cannot sleep at night'} number {i}. The bus was late again.")
             for i in range(n)]
    ann = [(f"p{i}", f"p{i}_0", ("A sentence that is nowhere." if i in bad else posts[i][1].split(". ")[0] + "."), syms[i % 2], 1, "e")
           for i in range(n)]
    return write_redsm5(tmp_path / "data", posts, ann)


def test_cli_task_both_with_no_sentence_found_exits_2_and_writes_nothing(tmp_path):
    d = _sentence_data(tmp_path, bad=range(40))
    out = tmp_path / "out"
    line = one_error_line(run_cli("cli.train", "--data-dir", str(d), "--task", "both", "--out", str(out), "--model", "tiny",
                                  "--epochs", "1", "--max-seq-length", "32", "--no-progress"))
    assert "none of the 40 sentence_text values" in line, line
    assert not out.exists()


def test_cli_task_both_with_some_sentences_missing_warns_once_and_trains(tmp_path):
    d = _sentence_data(tmp_path, bad=(3, 7, 11))
    out = tmp_path / "out"
    proc = run_cli("cli.train", "--data-dir", str(d), "--task", "both", "--out", str(out), "--model", "tiny",
                   "--epochs", "1", "--max-seq-length", "32", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    warned = [ln for ln in proc.stderr.splitlines() if "annotation rows name a sentence not found" in ln]
    assert len(warned) == 1 and "3 of 40" in warned[0], proc.stderr
    rep = __import__("json").loads((out / "evaluation_report.json").read_text())
    assert rep["task"] == "both" and 0.0 <= rep["test_evidence_macro_f1"] <= 1.0
    counts = rep["evidence_counts"]
    assert sum(c["unmapped"] for c in counts.values()) == 3                     # the 3 rows, counted in the split that holds them
    assert sorted(tuple(r) for c in counts.values() for r in c["unmapped_rows"]) == [("p11", "p11_0"), ("p3", "p3_0"), ("p7", "p7_0")]
    assert "annotation rows found in no sentence: 3" in proc.stderr
