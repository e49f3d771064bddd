"""A real run learns: the trained tiny encoder's test macro-F1 beats the same model untrained, scored the same way."""
import json

import numpy as np

from conftest import run_cli


def test_trained_tiny_model_beats_untrained(tmp_path, demo_dir):
    from dataaug_multi_both.config import TrainConfig
    from dataaug_multi_both.model import build_model, load_tokenizer
    from dataaug_multi_both.run import evaluate, load_splits
    from dataaug_multi_both.trainer import encode_texts, predict_probs

    args = ["--model", "tiny", "--data-dir", str(demo_dir), "--epochs", "4", "--max-seq-length", "128",
            "--learning-rate", "1e-3", "--loss-type", "weighted_bce", "--seed", "0", "--out", str(tmp_path), "--no-progress"]
    proc = run_cli("cli.train", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = json.loads((tmp_path / "evaluation_report.json").read_text())

    splits = load_splits(str(demo_dir))
    cfg = TrainConfig(max_seq_length=128, seed=0)
    model, tok = build_model(cfg, "tiny", 9).eval(), load_tokenizer("tiny")
    probs = [predict_probs(model, encode_texts(tok, s.texts, 128), tok.pad_token_id) for s in (splits.val, splits.test)]
    untrained = evaluate(splits, *probs, mode="global")
    assert np.isfinite(trained["test_macro_f1"])
    assert trained["test_macro_f1"] > untrained["test_macro_f1"] + 0.05, (trained["test_macro_f1"], untrained["test_macro_f1"])
