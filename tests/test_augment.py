"Fast checks that augmentation is deterministic per (seed, epoch) and that every knob changes the data."
import random

import pytest

from dataaug_multi_both.augment import augment_text, augment_texts, perturb_word
from dataaug_multi_both.config import AUG_METHODS
from dataaug_multi_both.core import UserError

POST = "I can't sleep at night and I feel worthless. Nothing makes me happy anymore."
_rng = random.Random(11)
_WORDS = ('sad tired sleep night happy friends feel worthless eat food nothing always really bad good '
          'I the and to my me a of it work school think help want').split()
POSTS = [' '.join(_rng.choice(_WORDS) for _ in range(60)) + '.' for _ in range(200)]


def _mean_words(ts): return sum(len(t.split()) for t in ts) / len(ts)
def _share_changed(a, b): return sum(x != y for x, y in zip(a, b)) / len(a)


@pytest.mark.parametrize('method', AUG_METHODS)
def test_deterministic_per_seed_and_epoch(method):
    a = augment_texts(POSTS, method, 0.7, seed=3, epoch=2)
    b = augment_texts(list(POSTS), method, 0.7, seed=3, epoch=2)
    assert a == b
    assert all(isinstance(t, str) and t.strip() for t in a)


@pytest.mark.parametrize('method', [m for m in AUG_METHODS if m != 'none'])
def test_seed_and_epoch_change_the_output(method):
    base = augment_texts(POSTS, method, 1.0, seed=0, epoch=0)
    assert base != POSTS
    assert augment_texts(POSTS, method, 1.0, seed=1, epoch=0) != base
    assert augment_texts(POSTS, method, 1.0, seed=0, epoch=1) != base


def test_none_and_prob_zero_are_identity():
    assert augment_texts(POSTS, 'none', 1.0, seed=0) == POSTS
    for m in AUG_METHODS: assert augment_texts(POSTS, m, 0.0, seed=0) == POSTS
    assert augment_text(POST, 'none', random.Random(0)) == POST


def test_prob_sets_share_of_changed_posts():
    lo, hi = augment_texts(POSTS, 'swap', 0.25, seed=0), augment_texts(POSTS, 'swap', 0.75, seed=0)
    assert abs(_share_changed(POSTS, lo) - 0.25) < 0.1
    assert abs(_share_changed(POSTS, hi) - 0.75) < 0.1
    changed_lo = [i for i, (a, b) in enumerate(zip(lo, POSTS)) if a != b]
    assert all(hi[i] == lo[i] for i in changed_lo)  # raising prob only adds augmented posts


def test_eda_delete_prob_removes_words():
    few = _mean_words(augment_texts(POSTS, 'eda', 1.0, seed=0, eda_delete_prob=0.05))
    many = _mean_words(augment_texts(POSTS, 'eda', 1.0, seed=0, eda_delete_prob=0.5))
    assert many < few - 15


def test_eda_swap_prob_reorders_words():
    def broken_pairs(a, b):
        def pairs(t): w = t.split(); return set(zip(w, w[1:]))
        return sum(len(pairs(s) - pairs(t)) for s, t in zip(a, b)) / len(a)
    still = augment_texts(POSTS, 'eda', 1.0, seed=0, eda_delete_prob=0.0, eda_swap_prob=0.0)
    moved = augment_texts(POSTS, 'eda', 1.0, seed=0, eda_delete_prob=0.0, eda_swap_prob=0.3)
    assert broken_pairs(POSTS, moved) > broken_pairs(POSTS, still) + 15


def test_strength_touches_more_words():
    def n_diff(s): return sum(a != b for a, b in zip(POST.split(), s.split()))
    lo = sum(n_diff(augment_text(POST, 'char_perturb', random.Random(s), strength=0.1)) for s in range(50))
    hi = sum(n_diff(augment_text(POST, 'char_perturb', random.Random(s), strength=0.6)) for s in range(50))
    assert hi > 2 * lo


def test_char_perturb_keeps_word_count_and_changes_every_post():
    out = augment_texts(POSTS, 'char_perturb', 1.0, seed=0)
    assert [len(t.split()) for t in out] == [len(t.split()) for t in POSTS]
    assert all(a != b for a, b in zip(out, POSTS))
    r = random.Random(0)
    for w in ['I', 'ok', 'worthless.', "can't"]:
        for _ in range(30): assert perturb_word(w, r) != w and len(perturb_word(w, r).split()) == 1


def test_insert_and_synonym():
    ins = augment_text(POST, 'insert', random.Random(0), strength=0.3)
    assert len(ins.split()) > len(POST.split())
    syn = augment_text(POST, 'synonym', random.Random(0), strength=0.3)
    assert syn != POST and syn[0] == 'I'


@pytest.mark.parametrize('text', ['', '   ', 'Tired.', '!!! ...', 'ok'])
@pytest.mark.parametrize('method', AUG_METHODS)
def test_never_blank(text, method):
    for s in range(10):
        out = augment_texts([text], method, 1.0, seed=s, eda_delete_prob=1.0, eda_swap_prob=1.0)[0]
        assert out == text if not text.strip() else out.strip()


def test_bad_input_is_a_user_error():
    with pytest.raises(UserError, match='choose one of eda, synonym, insert, swap, char_perturb, none'):
        augment_texts(POSTS, 'mixup', 0.5, seed=0)
    with pytest.raises(UserError, match='augmentation_prob must be'): augment_texts(POSTS, 'eda', 1.5, seed=0)
    with pytest.raises(UserError, match='eda_delete_prob must be'): augment_texts(POSTS, 'eda', 0.5, seed=0, eda_delete_prob=-0.1)
    with pytest.raises(UserError, match='not one string'): augment_texts(POST, 'eda', 0.5, seed=0)
    with pytest.raises(UserError, match='not text'): augment_texts([POST, None], 'eda', 0.5, seed=0)
