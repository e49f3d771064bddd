"The demo corpus: ReDSM5's format, byte-for-byte determinism, planned label frequencies, the cache."
import csv
import hashlib
import re

import numpy as np
import pytest

from dataaug_multi_both.core import DSM5_CRITERIA, SPECIAL_CASE, UserError
from dataaug_multi_both.data import ANNOTATION_COLUMNS, ANNOTATIONS_FILE, POST_COLUMNS, POSTS_FILE, load_redsm5
from dataaug_multi_both.demo import FORMAT_VERSION, demo_data_dir, generate_demo_corpus


def _digest(d):
    return [hashlib.sha256((d / f).read_bytes()).hexdigest() for f in (POSTS_FILE, ANNOTATIONS_FILE)]


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        return next(r), list(r)


@pytest.fixture(scope="module")
def corpus_1000(tmp_path_factory):
    return generate_demo_corpus(tmp_path_factory.mktemp("demo"), n_posts=1000, seed=0)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = generate_demo_corpus(tmp_path / "a", n_posts=400, seed=3)
    b = generate_demo_corpus(tmp_path / "b", n_posts=400, seed=3)
    c = generate_demo_corpus(tmp_path / "c", n_posts=400, seed=4)
    assert _digest(a) == _digest(b)
    assert _digest(a)[0] != _digest(c)[0] and _digest(a)[1] != _digest(c)[1]
    assert _digest(generate_demo_corpus(tmp_path / "d", n_posts=400, seed=3, label_noise=0.0)) != _digest(a)


def test_columns_and_rows(corpus_1000):
    header, posts = _rows(corpus_1000 / POSTS_FILE)
    assert tuple(header) == POST_COLUMNS == ("post_id", "text")
    header, anns = _rows(corpus_1000 / ANNOTATIONS_FILE)
    assert tuple(header) == ANNOTATION_COLUMNS
    assert len(posts) == 1000 and len({p[0] for p in posts}) == 1000
    text = dict(posts)
    assert all(t.strip() for t in text.values())
    n_sentences = [len(re.split(r"(?<=[.!])\s+", t.strip())) for t in text.values()]
    assert min(n_sentences) == 3 and max(n_sentences) == 8
    symptoms = {a[3] for a in anns}
    assert symptoms <= set(DSM5_CRITERIA) | {SPECIAL_CASE} and set(DSM5_CRITERIA) <= symptoms
    assert "LEEP_ISSUES" not in symptoms  # the released file's typo only on request
    assert {a[4] for a in anns} == {"0", "1"}
    for pid, sid, sentence, _sym, _status, why in anns:
        assert sid.startswith(pid + "_") and sentence in text[pid] and why
    negations = [a for a in anns if a[4] == "0"]
    assert len(negations) > 150 and all(a[3] in DSM5_CRITERIA for a in negations)
    assert all(a[4] == "1" for a in anns if a[3] == SPECIAL_CASE)


def test_label_frequencies_match_plan(corpus_1000):
    c = load_redsm5(corpus_1000)
    share = dict(zip(c.label_names, c.labels.mean(0)))
    for k in ("DEPRESSED_MOOD", "WORTHLESSNESS"):
        assert 0.28 <= share[k] <= 0.42, (k, share[k])
    for k in ("PSYCHOMOTOR", "APPETITE_CHANGE"):
        assert 0.04 <= share[k] <= 0.09, (k, share[k])
    per_post = c.labels.sum(1)
    assert 0.2 <= np.mean(per_post == 0) <= 0.3
    assert np.mean((per_post >= 2) & (per_post <= 3)) > 0.25


def test_leep_typo_on_request(tmp_path):
    d = generate_demo_corpus(tmp_path, n_posts=200, seed=0, leep_typo=True)
    _, anns = _rows(d / ANNOTATIONS_FILE)
    assert sum(a[3] == "LEEP_ISSUES" for a in anns) == 1
    assert load_redsm5(d).labels[:, DSM5_CRITERIA.index("SLEEP_ISSUES")].sum() > 0


def test_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="n_posts must be a positive integer"):
        generate_demo_corpus(tmp_path, n_posts=0)
    with pytest.raises(UserError, match="label_noise must be in"):
        generate_demo_corpus(tmp_path, label_noise=1.5)


def test_demo_data_dir_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("DMB_CACHE_DIR", str(tmp_path))
    d = demo_data_dir(n_posts=150, seed=2)
    assert d.parent == tmp_path and d.name == f"demo-v{FORMAT_VERSION}-n150-s2"
    stamp = (d / POSTS_FILE).stat().st_mtime_ns
    assert demo_data_dir(n_posts=150, seed=2) == d
    assert (d / POSTS_FILE).stat().st_mtime_ns == stamp
    assert len(load_redsm5(d)) == 150
    (d / "complete.json").unlink()  # an interrupted copy is regenerated, identically
    before = _digest(d)
    demo_data_dir(n_posts=150, seed=2)
    assert _digest(d) == before and (d / "complete.json").is_file()
