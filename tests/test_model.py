"Fast checks of the model and loss modules on the tiny random BERT (no network, a few seconds)."
import json

import numpy as np
import pytest
import torch

from dataaug_multi_both.config import LOSSES, TrainConfig
from dataaug_multi_both.core import UserError
from dataaug_multi_both.losses import make_loss
from dataaug_multi_both.model import (
    build_model,
    layer_groups,
    load_classifier,
    load_tokenizer,
    resolve_backbone,
    save_classifier,
)

CFG = TrainConfig(head_hidden_dim=16, pooling='mean')


def _batch(tok):
    return dict(tok(['I have not slept properly in weeks', 'nothing matters'], padding=True, return_tensors='pt',
                    return_token_type_ids=False))


def test_round_trip_gives_identical_logits(tmp_path):
    tok = load_tokenizer('tiny')
    model = build_model(CFG, 'tiny', num_labels=9).eval()
    with torch.no_grad(): model.head[0].bias.add_(0.5)  # a "trained" head differs from a fresh one
    out = save_classifier(model, tok, tmp_path/'clf', {'label_names': list('abcdefghi'), 'thresholds': [0.4] * 9})
    loaded, tok2, meta = load_classifier(out)
    b = _batch(tok)
    with torch.no_grad(): assert torch.equal(loaded(**b), model(**b))
    assert meta['label_names'] == list('abcdefghi') and meta['num_labels'] == 9 and meta['pooling'] == 'mean'
    assert json.loads((out/'classifier.json').read_text())['thresholds'] == [0.4] * 9
    assert tok2('nothing matters')['input_ids'] == tok('nothing matters')['input_ids']
    from transformers import AutoModel
    assert AutoModel.from_pretrained(out/'encoder', local_files_only=True).config.hidden_size == 64


def test_unknown_backbone_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="unknown model 'surely-not-a-model'"): resolve_backbone('surely-not-a-model')
    with pytest.raises(UserError, match='unknown model'): build_model(CFG, str(tmp_path), 9)  # no config.json


@pytest.mark.parametrize('missing', ['classifier.json', 'head.safetensors', 'encoder/model.safetensors', 'encoder/config.json'])
def test_missing_export_file_is_a_user_error(tmp_path, missing):
    out = save_classifier(build_model(CFG, 'tiny', 3), load_tokenizer('tiny'), tmp_path/'clf', {})
    (out/missing).unlink()
    with pytest.raises(UserError, match=missing.split('/')[-1]): load_classifier(out)


def test_layer_groups_cover_trainable_parameters_once():
    model = build_model(TrainConfig(head_hidden_dim=16, freeze_n_layers=1), 'tiny', 9)
    groups = layer_groups(model)
    flat = [id(p) for g in groups for p in g]
    assert len(flat) == len(set(flat))
    assert set(flat) == {id(p) for p in model.parameters() if p.requires_grad}
    assert len(groups) == 2 and [id(p) for p in groups[-1]] == [id(p) for p in model.head.parameters()]


@pytest.mark.parametrize('loss_type', LOSSES)
def test_every_loss_trains_the_tiny_model(loss_type):
    tok = load_tokenizer('tiny')
    model = build_model(CFG, 'tiny', 2)
    loss = make_loss(TrainConfig(loss_type=loss_type, label_smoothing=0.05), np.array([30, 2]), 100)
    value = loss(model(**_batch(tok)), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value)
    assert model.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0
