"End to end: a study with one real trial -> export with two seeds -> predict from CSV, JSONL and stdin; bad input exits 2."
import csv
import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution

from dataaug_multi_both.cli import predict as cli_predict
from dataaug_multi_both.config import TrainConfig
from dataaug_multi_both.core import DSM5_CRITERIA
from dataaug_multi_both.demo import generate_demo_corpus
from dataaug_multi_both.core import DISCLAIMER, NOT_A_DIAGNOSIS
from dataaug_multi_both.export import export_best
from dataaug_multi_both.hpo import open_storage
from dataaug_multi_both.predict import HEADER, load_predictor, predict_posts
from dataaug_multi_both.run import load_splits, run_config
from dataaug_multi_both.thresholds import apply_thresholds, classification_metrics

ROOT = Path(__file__).resolve().parents[1]
NAMES = list(DSM5_CRITERIA)
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope='module')
def search(tmp_path_factory):
    "A study holding one complete trial, trained for real and recorded the way the search records it."
    tmp = tmp_path_factory.mktemp('search')
    data = generate_demo_corpus(tmp / 'data', n_posts=200)
    cfg = TrainConfig(epochs=1, learning_rate=1e-3, max_seq_length=32, batch_size=16, evals_per_epoch=1,
                      head_hidden_dim=32, precision='fp32', data_fraction=0.5)
    rep, _ = run_config(cfg, load_splits(data), 'tiny', tmp / 'exp' / 'stage2_exploit' / 'trial_0',
                        extra={'data_dir': str(data), 'split_seed': 0})
    url = f'sqlite:///{tmp}/optuna.db'
    study = optuna.create_study(storage=open_storage(url), study_name='stage2_exploit', direction='maximize')
    study.add_trial(optuna.trial.create_trial(
        params={'learning_rate': 1e-3}, distributions={'learning_rate': FloatDistribution(1e-5, 1e-2, log=True)},
        value=rep['objective_value'], user_attrs={'config': dataclasses.asdict(cfg)}))
    empty = optuna.create_study(storage=open_storage(url), study_name='empty', direction='maximize')
    empty.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    return SimpleNamespace(tmp=tmp, data=data, url=url, cfg=cfg, rep=rep)


@pytest.fixture(scope='module')
def exported(search):
    summary = export_best(search.url, seeds=2, experiments_dir=search.tmp / 'exp')
    return SimpleNamespace(summary=summary, dir=search.tmp / 'exp' / 'stage2_exploit' / 'export')


def test_export_summary(search, exported):
    s, d = exported.summary, exported.dir
    assert json.loads((d / 'export_summary.json').read_text()) == json.loads(json.dumps(s))
    assert (s['study'], s['trial'], s['seeds']) == ('stage2_exploit', 0, [1, 2])   # the default base seed leaves out the search's 42
    assert s['search_value'] == pytest.approx(search.rep['objective_value'])
    rows = s['per_seed']
    assert [r['seed'] for r in rows] == [1, 2]
    for r in rows:
        assert set(r['per_class']) == set(NAMES)
        rep = json.loads((d / 'seeds' / f'seed_{r["seed"]}' / 'evaluation_report.json').read_text())
        assert (rep['seed'], rep['test_macro_f1']) == (r['seed'], r['test_macro_f1'])
    test = [r['test_macro_f1'] for r in rows]
    assert s['test_macro_f1']['mean'] == pytest.approx(np.mean(test))
    assert s['test_macro_f1']['std'] == pytest.approx(np.std(test, ddof=1))
    assert s['adjusted_score'] == pytest.approx(np.mean(test) - 0.1 * np.std(test, ddof=1))
    assert s['search_gap'] == pytest.approx(s['search_value'] - np.mean([r['objective_value'] for r in rows]))  # like for like: the study's objective
    best = max(rows, key=lambda r: r['val_macro_f1'])                         # chosen by validation, never test
    assert s['exported']['seed'] == best['seed']
    assert s['config']['learning_rate'] == 1e-3 and s['sources']['config'] == "trial user attr 'config'"
    assert s['data']['data_dir'] == str(search.data) and s['data']['n_train_used'] == search.rep['data']['n_train']
    assert s['disclaimer'] == DISCLAIMER
    assert DISCLAIMER in (d / 'README.md').read_text()
    assert not any(n.startswith('seed 42 is the seed the search trained with') for n in s['notes'])  # not re-run by default
    assert set(s['versions']) >= {'torch', 'transformers', 'optuna'}


def test_exported_model_loads_with_plain_transformers(exported):
    from transformers import AutoModel, AutoTokenizer
    enc = exported.dir / 'model' / 'encoder'
    model = AutoModel.from_pretrained(enc, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(enc, local_files_only=True)
    out = model(**tok(['I cannot sleep at night'], return_tensors='pt', return_token_type_ids=False))
    assert out.last_hidden_state.shape[-1] == model.config.hidden_size
    meta = json.loads((exported.dir / 'model' / 'classifier.json').read_text())
    assert meta['seed'] == exported.summary['exported']['seed']
    assert (meta['study'], meta['trial'], meta['backbone'], meta['label_names']) == ('stage2_exploit', 0, 'tiny', NAMES)
    assert set(meta['thresholds']) == set(NAMES) and meta['threshold_mode'] == 'global'
    assert meta['config']['seed'] == meta['seed']


PIPE = '''
import json, sys
from transformers import AutoModelForSequenceClassification, pipeline
d = sys.argv[1]
model = AutoModelForSequenceClassification.from_pretrained(d, trust_remote_code=True)
pipe = pipeline('text-classification', model=d, trust_remote_code=True, top_k=None)
posts = json.loads(sys.stdin.read())
out = pipe(posts, truncation=True)
print(json.dumps({'probs': [{x['label']: x['score'] for x in o} for o in out], 'config': model.config.to_dict(),
                  'imported': 'dataaug_multi_both' in sys.modules}))
'''


def test_hf_export_runs_in_plain_transformers_with_predicts_probabilities(search, exported, tmp_path):
    "hf_model/ loads offline with trust_remote_code in a process that never imports this package, and pipeline == predict."
    hf = exported.dir / 'hf_model'
    assert 'dataaug_multi_both' not in (hf / 'modeling_dsm.py').read_text().split('"""', 2)[2]   # only the docstring names it
    test = load_splits(search.data).test
    posts = list(test.texts[:12]) + ['I cannot sleep ' * 60]               # one longer than max_seq_length: truncation
    env = {'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'HOME': str(tmp_path), 'PATH': '/usr/bin:/bin'}
    r = subprocess.run([sys.executable, '-c', PIPE, str(hf)], input=json.dumps(posts), capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got['imported'] is False
    rows = predict_posts(load_predictor(exported.dir, 'cpu'), [(str(i), t) for i, t in enumerate(posts)], digits=None)
    theirs = np.array([[p[n] for n in NAMES] for p in got['probs']])
    ours = np.array([[r[f'{n}_prob'] for n in NAMES] for r in rows])
    assert np.abs(theirs - ours).max() < 1e-5
    cfg = got['config']
    assert cfg['id2label'] == {str(i): n for i, n in enumerate(NAMES)} and cfg['label2id'] == {n: i for i, n in enumerate(NAMES)}
    assert cfg['thresholds'] == _thresholds(exported) and cfg['problem_type'] == 'multi_label_classification'
    assert cfg['auto_map']['AutoModelForSequenceClassification'] == 'modeling_dsm.DSMForSequenceClassification'
    assert cfg['disclaimer'] == DISCLAIMER
    flagged = [[n for n in NAMES if p[n] >= cfg['thresholds'][n]] for p in got['probs']]
    assert flagged == [r['flagged'] for r in rows]


EVIDENCE = """
import json, sys, torch
from transformers import AutoModel, AutoTokenizer
d = sys.argv[1]
model = AutoModel.from_pretrained(d, trust_remote_code=True).eval()
tok = AutoTokenizer.from_pretrained(d, trust_remote_code=True)
enc, spans = model.sentence_inputs(tok, json.loads(sys.stdin.read()))
with torch.no_grad():
    out = model(**enc, n_sentences=max(map(len, spans)))
sp = torch.sigmoid(out.sentence_logits) * out.sentence_mask[..., None]
print(json.dumps({'post': torch.sigmoid(out.logits).tolist(), 'sent': [sp[b, :len(s)].tolist() for b, s in enumerate(spans)],
                  'spans': spans, 'imported': 'dataaug_multi_both' in sys.modules}))
"""


def test_hf_export_carries_the_evidence_head(search, exported, tmp_path):
    "AutoModel on hf_model/ with sentence ids: post and sentence probabilities equal the native model's (predict's one pass)."
    from dataaug_multi_both.predict import score_texts

    posts = list(load_splits(search.data).test.texts[:12]) + ['Fine day. ' + 'I cannot sleep at all. ' * 20]   # the last one is truncated
    env = {'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'HOME': str(tmp_path), 'PATH': '/usr/bin:/bin'}
    r = subprocess.run([sys.executable, '-c', EVIDENCE, str(exported.dir / 'hf_model')], input=json.dumps(posts), capture_output=True,
                       text=True, cwd=tmp_path, env=env, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got['imported'] is False
    ours = score_texts(load_predictor(exported.dir, 'cpu'), posts)
    assert [[tuple(x) for x in s] for s in got['spans']] == ours.spans
    assert np.abs(np.array(got['post']) - ours.probs).max() < 1e-5
    for theirs, mine in zip(got['sent'], ours.sentence_probs):
        assert np.abs(np.array(theirs).reshape(mine.shape) - mine).max() < 1e-5
    assert ours.lost[-1].any() and not np.array(got['sent'][-1])[ours.lost[-1]].any()   # truncated sentences: 0 on both sides
    assert 'sentence_logits' in (exported.dir / 'README.md').read_text()


def test_export_readme_uses_relative_paths(exported):
    text = (exported.dir / 'README.md').read_text()
    assert str(exported.dir) not in text and '/tmp' not in text
    assert "model='hf_model'" in text and '--export-dir .' in text


def test_predictions_reproduce_the_exported_test_score(search, exported):
    test = load_splits(search.data).test
    rows = predict_posts(load_predictor(exported.dir, 'cpu'), list(zip(test.post_ids, test.texts)), batch_size=64)
    pred = np.array([[int(n in r['flagged']) for n in NAMES] for r in rows])
    assert [r['post_id'] for r in rows] == test.post_ids
    assert classification_metrics(test.labels, pred, NAMES)['macro_f1'] == pytest.approx(exported.summary['exported']['test_macro_f1'])


def test_exported_test_figures_reproduce_through_predict(search, exported, tmp_path):
    "The export's test macro-F1 (post level) and evidence macro-F1 (sentence level), recomputed by scikit-learn from predict's output."
    from sklearn.metrics import f1_score

    from dataaug_multi_both.sentences import sentence_labels

    s = exported.summary
    assert s['task'] == 'both'
    test = load_splits(search.data).test
    (tmp_path / 'test.jsonl').write_text(''.join(json.dumps({'post_id': i, 'text': t}) + '\n' for i, t in zip(test.post_ids, test.texts)))
    r = subprocess.run([sys.executable, '-m', 'dataaug_multi_both.cli.predict', '--export-dir', str(exported.dir), '--device', 'cpu',
                        '--input', str(tmp_path / 'test.jsonl'), '--output', str(tmp_path / 'pred.jsonl')],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    head, *rows = [json.loads(line) for line in (tmp_path / 'pred.jsonl').read_text().splitlines()]
    assert head == {'disclaimer': HEADER} and [x['post_id'] for x in rows] == test.post_ids
    post = np.array([[int(n in x['flagged']) for n in NAMES] for x in rows])
    got = f1_score(test.labels, post, average='macro', zero_division=0)
    assert abs(got - s['exported']['test_macro_f1']) < 1e-6, (got, s['exported']['test_macro_f1'])
    gold = sentence_labels(test)                                      # the annotated sentences, as the run scored them
    y, yhat = np.concatenate(gold.labels).astype(int), []
    for x, spans in zip(rows, gold.spans):
        d = np.zeros((len(spans), len(NAMES)), int)
        for e in x['evidence_sentences']:
            d[spans.index((e['start'], e['end'])), [NAMES.index(c) for c in e['criteria']]] = 1
        yhat.append(d)
    got = f1_score(y, np.concatenate(yhat), average='macro', zero_division=0)
    assert np.concatenate(yhat).any() and y.any()                  # not a trivial all-negative match
    assert abs(got - s['exported']['test_evidence_macro_f1']) < 1e-6, (got, s['exported']['test_evidence_macro_f1'])
    seed = next(x for x in s['per_seed'] if x['seed'] == s['exported']['seed'])
    assert (seed['test_macro_f1'], seed['test_evidence_macro_f1']) == (s['exported']['test_macro_f1'], s['exported']['test_evidence_macro_f1'])


def _check_rows(rows, thr):
    assert rows
    for r in rows:
        flagged = r['flagged'] if isinstance(r['flagged'], list) else [f for f in r['flagged'].split(';') if f]
        for n in NAMES:
            p = float(r[f'{n}_prob'])
            assert 0.0 <= p <= 1.0 and p == round(p, 4)
            # flagged is decided on the unrounded probability: allow the rounding margin
            if abs(p - thr[n]) > 1e-4: assert (n in flagged) == bool(apply_thresholds(np.array([p]), thr[n])[0])


def _csv_rows(text):
    lines = text.splitlines()
    assert lines[0] == f'# {HEADER}'                                   # the disclaimer, once, first
    return list(csv.DictReader(lines[1:]))


def _thresholds(exported):
    return json.loads((exported.dir / 'model' / 'classifier.json').read_text())['thresholds']


def test_predict_cli_csv(exported, tmp_path, capsys):
    (tmp_path / 'posts.csv').write_text('post_id,text\np1,I have not slept in days\np2,"I eat nothing, I feel worthless"\n')
    cli_predict.main(['--export-dir', str(exported.dir), '--input', str(tmp_path / 'posts.csv'), '--output', str(tmp_path / 'out.csv')])
    rows = _csv_rows((tmp_path / 'out.csv').read_text())
    assert [r['post_id'] for r in rows] == ['p1', 'p2']
    _check_rows(rows, _thresholds(exported))
    assert NOT_A_DIAGNOSIS in capsys.readouterr().err


def test_predict_cli_jsonl_from_stdin(exported, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'stdin', io.StringIO('{"text": "so tired all the time"}\n{"post_id": "x", "text": "I want to die"}\n'))
    cli_predict.main(['--model', str(exported.dir / 'model'), '--input', '-', '--format', 'jsonl'])
    out = capsys.readouterr()
    head, *rows = [json.loads(line) for line in out.out.splitlines()]
    assert head == {'disclaimer': HEADER} and [r['post_id'] for r in rows] == ['1', 'x']
    assert all('disclaimer' not in r for r in rows)
    _check_rows(rows, _thresholds(exported))


def test_predict_module_entry_point(exported, tmp_path):
    (tmp_path / 'posts.jsonl').write_text('{"post_id": "a", "text": "nothing is fun anymore"}\n')
    r = subprocess.run([sys.executable, '-m', 'dataaug_multi_both.cli.predict', '--model', str(exported.dir),
                        '--input', str(tmp_path / 'posts.jsonl')], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    rows = _csv_rows(r.stdout)
    assert [x['post_id'] for x in rows] == ['a']
    _check_rows(rows, _thresholds(exported))


def _exit(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli_predict.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return e.value.code, err


@pytest.mark.parametrize('content,expected', [
    ('id,body\n1,hello\n', "has no column 'text'"),
    ('', 'is empty'),
    ('text\n', 'holds no posts'),
    ('post_id,text\n1,\n', 'has an empty text'),
    ('{"body": "hi"}\n', "has no 'text' string field"),
])
def test_predict_bad_input_exits_2(exported, tmp_path, capsys, content, expected):
    f = tmp_path / ('posts.jsonl' if content.startswith('{') else 'posts.csv')
    f.write_text(content)
    code, err = _exit(['--model', str(exported.dir), '--input', str(f)], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith('error:') and expected in err[0], err


def test_predict_missing_model_exits_2(tmp_path, capsys):
    (tmp_path / 'posts.csv').write_text('text\nhello\n')
    code, err = _exit(['--model', str(tmp_path / 'no_export'), '--input', str(tmp_path / 'posts.csv')], capsys)
    assert code == 2 and len(err) == 1 and 'does not exist' in err[0]
    (tmp_path / 'not_export').mkdir()
    code, err = _exit(['--model', str(tmp_path / 'not_export'), '--input', str(tmp_path / 'posts.csv')], capsys)
    assert code == 2 and len(err) == 1 and 'classifier.json' in err[0]


def test_predict_plain_text_on_stdin(exported, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'stdin', io.StringIO('I have not slept in days\n\nI eat nothing, I feel worthless\n'))
    rows = cli_predict.main(['--export-dir', str(exported.dir), '--input', '-'])
    assert [r['post_id'] for r in rows] == ['1', '3']
    _check_rows(_csv_rows(capsys.readouterr().out), _thresholds(exported))


def test_export_without_complete_trial_exits_2(search):
    r = subprocess.run([sys.executable, str(ROOT / 'scripts' / 'export_best.py'), '--storage', search.url,
                        '--study-name', 'empty', '--experiments-dir', str(search.tmp / 'exp')],
                       capture_output=True, text=True, timeout=120, check=False)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and err == ["error: study 'empty' has no complete trial: run more trials first"], r.stderr


def test_export_unknown_study_names_existing(search):
    from dataaug_multi_both.core import UserError
    with pytest.raises(UserError, match="existing studies are 'stage2_exploit', 'empty'"):
        export_best(search.url, 'nope', experiments_dir=search.tmp / 'exp')


def test_predict_evidence_points_at_the_right_characters(exported, tmp_path):
    "A task=both export: every flagged criterion gets its top sentences; offsets slice the post to exactly that sentence."
    from dataaug_multi_both.predict import post_evidence
    from dataaug_multi_both.sentences import split_sentences
    text = 'I have not slept in days.  Food means "nothing" to me 😶 now!\nI feel worthless, and so tired.'
    (tmp_path / 'posts.jsonl').write_text(json.dumps({'post_id': 'e', 'text': text}) + '\n')
    cli_predict.main(['--model', str(exported.dir), '--input', str(tmp_path / 'posts.jsonl'), '--output', str(tmp_path / 'out.jsonl'),
                      '--html', str(tmp_path / 'ev.html')])
    row = json.loads((tmp_path / 'out.jsonl').read_text().splitlines()[-1])   # after the disclaimer line
    assert sorted(row['evidence']) == sorted(row['flagged'])
    pred = load_predictor(exported.dir, 'cpu')
    ev = post_evidence(pred, [('e', text)], [NAMES], k=3)[0]         # every criterion, to check all offsets
    spans = split_sentences(text)
    assert sorted(ev) == sorted(NAMES) and all(len(v) == 3 for v in ev.values())
    for sents in ev.values():
        assert [s['score'] for s in sents] == sorted((s['score'] for s in sents), reverse=True)
        for s in sents:
            assert text[s['start']:s['end']] == s['sentence'] and (s['start'], s['end']) in spans
    assert {s['sentence'] for s in ev['SLEEP_ISSUES']} == {text[a:b] for a, b in spans}
    page = (tmp_path / 'ev.html').read_text()
    assert DISCLAIMER in page and NOT_A_DIAGNOSIS in page and '<h2>e</h2>' in page


def test_predict_refuses_bad_output_and_search_checkpoints_before_writing(search, exported, tmp_path, capsys):
    "Issue 7, point 8: a directory or unwritable --output, or a trial checkpoint as the model: one line, exit 2, nothing written."
    (tmp_path / 'posts.csv').write_text('text\nI cannot sleep\n')
    base = ['--input', str(tmp_path / 'posts.csv')]
    for out, expect in ((str(tmp_path), 'is a directory'), ('/proc/predictions.csv', 'is not writable')):
        code, err = _exit(['--export-dir', str(exported.dir), *base, '--output', out], capsys)
        assert code == 2 and len(err) == 1 and expect in err[0], err
    from dataaug_multi_both.model import build_model, load_tokenizer, save_classifier
    save_classifier(build_model(search.cfg, 'tiny', len(NAMES)), load_tokenizer('tiny'), tmp_path / 'trial_0' / 'checkpoint',  # as a trial keeps it
                    {'label_names': NAMES, 'thresholds': {n: 0.5 for n in NAMES}, 'config': dataclasses.asdict(search.cfg),
                     'backbone': 'tiny', 'study': 'stage1_broad', 'trial': 0})
    code, err = _exit(['--model', str(tmp_path / 'trial_0' / 'checkpoint'), *base, '--output', str(tmp_path / 'p.csv')], capsys)
    assert code == 2 and len(err) == 1 and "is a search checkpoint (study 'stage1_broad' trial 0)" in err[0], err
    assert not (tmp_path / 'p.csv').exists()
