"""The search report and its plots, on studies made with plain Optuna code in a temporary SQLite file.

Scores come from a made-up function of the parameters (no training): these tests check what the report and the
plots do with what a search stores, not how good a model is.
"""
import json
import math
import re
from importlib import resources

import numpy as np
import optuna
import plotly.graph_objects as go
import pytest
from optuna.trial import TrialState

from dataaug_multi_both import plots
from dataaug_multi_both.core import UserError
from dataaug_multi_both.narrow import clip_params, load_report, narrow_space, ranked_trials, save_space
from dataaug_multi_both.core import DISCLAIMER
from dataaug_multi_both.report import format_summary, load_study, study_summary, write_report
from dataaug_multi_both.space import base_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
LABELS = ["DEPRESSED_MOOD", "ANHEDONIA", "APPETITE_CHANGE", "SLEEP_ISSUES", "PSYCHOMOTOR", "FATIGUE",
          "WORTHLESSNESS", "COGNITIVE_ISSUES", "SUICIDAL_THOUGHTS"]


def _study(space, n, name, exp_dir, data_dir, seed=0, steps=8, enqueue=()):
    """An in-memory study as a search leaves it: sampled params, intermediate values, states, user attrs, reports."""
    rng = np.random.default_rng(seed)
    st = optuna.create_study(study_name=name, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    save_space(st, space)
    for params, attrs in enqueue:
        st.enqueue_trial(params, user_attrs=attrs)
    for i in range(n):
        t = st.ask()
        p = space.suggest(t)
        score = 0.6 - 0.07 * (math.log10(p["learning_rate"]) + 4) ** 2 + 0.05 * (p["pooling"] == "mean") + rng.normal(0, 0.01)
        curve = [score * (1 - math.exp(-s / 2)) / (1 - math.exp(-steps / 2)) for s in range(1, steps + 1)]
        if i == 1:
            t.set_user_attr("error", "RuntimeError: made-up failure")
            st.tell(t, state=TrialState.FAIL)
            continue
        pruned = i % 3 == 2 and "stage1_trial" not in t.user_attrs
        stop = steps // 2 if pruned else steps
        for s in range(stop):
            t.report(curve[s], s + 1)
        t.set_user_attr("runtime_seconds", 5.0 * stop)
        if pruned:
            t.set_user_attr("pruned_at", {"index": stop, "epoch": 1, "score": curve[stop - 1]})
            st.tell(t, state=TrialState.PRUNED)
            continue
        thr = {lab: 0.4 for lab in LABELS}
        t.set_user_attr("thresholds", thr)
        per_class = {lab: {"precision": 0.6, "recall": 0.5, "f1": 0.55, "support": 10} for lab in LABELS}
        rep = {"trial": t.number, "study": name, "val_macro_f1": curve[-1], "test_macro_f1": curve[-1] - 0.03,
               "per_class": per_class, "thresholds": thr, "threshold_mode": "global", "data_dir": str(data_dir),
               "split_seed": 0, "data": {"label_names": LABELS}, "state": "COMPLETE"}
        d = exp_dir / name / f"trial_{t.number}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "evaluation_report.json").write_text(json.dumps(rep))
        st.tell(t, curve[-1])
    return st


@pytest.fixture(scope="module")
def stored(tmp_path_factory, demo_dir):
    """Stage 1 (24 trials) and a narrowed Stage 2 (8 trials, 5 re-run from Stage 1) in one SQLite file."""
    tmp = tmp_path_factory.mktemp("report")
    url, exp = f"sqlite:///{tmp}/optuna.db", tmp / "exp"
    s1 = _study(base_space(1), 24, "stage1_broad", exp, demo_dir)
    space2, nrep = narrow_space(s1.trials, base_space(2), top_k=8)
    top = ranked_trials(s1.trials)[:5]
    enq = [(clip_params(t.params, space2, top[0].params), {"stage1_trial": t.number, "stage1_value": t.value}) for t in top]
    s2 = _study(space2, 8, "stage2_exploit", exp, demo_dir, seed=1, steps=16, enqueue=enq)
    save_space(s2, space2, nrep)
    for st in (s1, s2):  # one write per trial: fast on SQLite
        optuna.copy_study(from_study_name=st.study_name, from_storage=st._storage, to_storage=url)
    optuna.create_study(storage=url, study_name="empty", direction="maximize")
    return {"url": url, "exp": exp, "tmp": tmp}


def test_report_html_is_one_self_contained_file(stored):
    page = write_report(stored["url"], "stage2_exploit", experiments_dir=stored["exp"])
    assert page == stored["exp"] / "stage2_exploit" / "report.html" and page.is_file()
    html = page.read_text()
    srcs = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?([^\"' >]+)", html, flags=re.IGNORECASE)
    assert srcs == []  # nothing loaded from beside the page or the network: the file can be sent on its own
    js = (resources.files("plotly") / "package_data" / "plotly.min.js").read_text()
    assert html.count(js) == 1  # plotly.js inlined exactly once
    assert not list(page.parent.rglob("plotly.min.js"))
    assert html.count('class="plotly-graph-div"') == 6  # importance, history, intermediate, narrowing, per class, rank
    assert DISCLAIMER in html
    assert html.index('id="small-sample"') < html.index("<h2>Summary</h2>")  # 6 complete trials: the caveat comes first
    assert "<h2>What was searched</h2>" in html and "trials in stage1_broad" in html

    shared = write_report(stored["url"], "stage2_exploit", out_dir=stored["tmp"] / "shared", experiments_dir=stored["exp"],
                          shared_js=True)
    assert re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?([^\"' >]+)", shared.read_text()) == ["plotly.min.js"]
    assert (shared.parent / "plotly.min.js").read_text() == js and len(shared.read_text()) < 1_000_000

    summary = json.loads((page.parent / "report.json").read_text())
    assert summary["counts"] == {"COMPLETE": 6, "PRUNED": 1, "FAIL": 1, "RUNNING": 0, "WAITING": 0}
    assert summary["importances"]["n_complete"] == 6 and summary["importances"]["evaluator"] == "ped-anova"
    assert abs(sum(summary["importances"]["importances"].values()) - 1) < 1e-6
    assert summary["best"]["number"] == summary["top_trials"][0]["number"]
    assert summary["narrowing"]["top_k"] == 8
    assert summary["rank_correlation"]["stage1_study"] == "stage1_broad" and summary["rank_correlation"]["n"] == 4
    assert -1 <= summary["rank_correlation"]["rho"] <= 1
    assert 0 < summary["tfidf_baseline"]["test_macro_f1"] <= 1 and summary["tfidf_baseline"]["threshold_mode"] == "global"


def test_summary_and_text_table(stored):
    s = study_summary(stored["url"], "stage1_broad", top=3, experiments_dir=stored["exp"], floor=False)
    assert s["counts"]["PRUNED"] == 8 and s["counts"]["FAIL"] == 1 and s["n_trials"] == 24
    assert s["pruned_share"] == pytest.approx(8 / 24)
    assert len(s["top_trials"]) == 3 and s["rank_correlation"] is None and s["narrowing"] is None
    text = format_summary(s)
    assert "trials: 24 = complete 15, pruned 8, fail 1, running 0, waiting 0; pruned share 33%" in text
    assert "top 3 trials:" in text and "importances (PED-ANOVA, 15 complete trials):" in text


def test_missing_study_or_storage_is_a_user_error(stored):
    with pytest.raises(UserError, match=r"no study 'stage3'.*\(studies there: empty, stage1_broad, stage2_exploit\)"):
        write_report(stored["url"], "stage3", out_dir=stored["tmp"] / "r")
    with pytest.raises(UserError, match="no study 'stage3'"):
        study_summary(stored["url"], "stage3")
    missing = stored["tmp"] / "nope.db"
    with pytest.raises(UserError, match="no storage file"):
        load_study(f"sqlite:///{missing}", "stage1_broad")
    assert not missing.exists()


def test_empty_study_reports_and_plots_without_crashing(stored):
    empty = load_study(stored["url"], "empty")
    figs = [plots.plot_importance(empty), plots.plot_importance(empty, "fanova"), plots.plot_history(empty),
            plots.plot_intermediate(empty), plots.plot_narrowing(None), plots.plot_per_class({}),
            plots.plot_rank_correlation(empty, empty)]
    for f in figs:
        assert isinstance(f, go.Figure) and len(f.layout.annotations) == 1
    s = study_summary(stored["url"], "empty")
    assert s["importances"]["importances"] is None and "at least 2 complete trials" in s["importances"]["reason"]
    assert s["best"] is None and s["pruned_share"] is None
    page = write_report(stored["url"], "empty", out_dir=stored["tmp"] / "empty_report")
    assert page.is_file() and not (page.parent / "plotly.min.js").exists()
    assert json.loads((page.parent / "report.json").read_text())["counts"]["COMPLETE"] == 0


def test_report_names_the_export_score(stored):
    "An export beside the study puts its re-trained test macro-F1 (mean ± std) into the summary, the table and the page."
    d = stored["exp"] / "stage2_exploit" / "export"
    d.mkdir(parents=True, exist_ok=True)
    (d / "export_summary.json").write_text(json.dumps({"trial": 3, "seeds": [42, 43, 44], "exported": {"seed": 43},
        "test_macro_f1": {"n": 3, "mean": 0.61234, "std": 0.0212}, "val_macro_f1": {"n": 3, "mean": 0.6, "std": 0.01}}))
    try:
        s = study_summary(stored["url"], "stage2_exploit", experiments_dir=stored["exp"], floor=False)
        assert s["export"]["test_mean"] == 0.61234 and s["export"]["n"] == 3
        assert "export: test macro-F1 0.6123 ± 0.0212 over 3 re-trained seed(s) of trial 3" in format_summary(s)
        page = write_report(stored["url"], "stage2_exploit", out_dir=stored["tmp"] / "x", experiments_dir=stored["exp"], floor=False)
        assert "0.6123 ± 0.0212 over 3 seeds (trial 3)" in page.read_text()
    finally:
        (d / "export_summary.json").unlink()


def test_plots_draw_what_the_study_holds(stored):
    s2 = load_study(stored["url"], "stage2_exploit")
    s1 = load_study(stored["url"], "stage1_broad")
    imp = plots.plot_importance(s1)
    assert imp.layout.title.text == "Hyperparameter importance (PED-ANOVA, 15 complete trials)"
    inter = plots.plot_intermediate(s1)
    assert [d.name for d in inter.data] == ["complete trials", "pruned trials", "pruned here"]
    assert set(inter.data[-1].x) == {4}  # pruned trials stop at pass 4 of 8
    nar = plots.plot_narrowing(load_report(s2), base_space(1))
    assert nar.layout.xaxis.type == "log"  # the first knob, learning_rate
    cat_axes = [a for k, a in nar.layout.to_plotly_json().items() if k.startswith("xaxis") and a.get("type") == "category"]
    assert cat_axes and all(a["tickangle"] == 0 for a in cat_axes)  # wrapped labels, never rotated into the next row
    assert "decision_thresholds_per_class" not in [a.text for a in nar.layout.annotations if a.text.startswith("<b>")]
    hist = plots.plot_history(s1)
    assert hist.layout.xaxis.tickformat == "d"
    assert [d.name for d in hist.data if "test" in str(d.name).lower()] == []  # test stays out of per-trial views
    rc = plots.rank_correlation(s1, s2)
    assert rc["n"] == 4 and all(p["stage1_value"] == s1.trials[p["stage1_trial"]].value for p in rc["pairs"])


from browser import keep_screenshot, leaving, needs_chromium, render  # noqa: E402


@needs_chromium
def test_report_renders_offline_in_chromium(stored, tmp_path):
    "The report, copied alone into an empty folder, draws every figure in headless Chromium with no request leaving."
    page = write_report(stored["url"], "stage2_exploit", out_dir=tmp_path / "made", experiments_dir=stored["exp"], floor=False)
    alone = tmp_path / "sent" / "report.html"
    alone.parent.mkdir()
    alone.write_bytes(page.read_bytes())  # as a colleague receives it: the one file
    r = render(alone, tmp_path / "report.png", height=1000)
    keep_screenshot(tmp_path / "report.png")
    assert leaving(r["requests"]) == [], leaving(r["requests"])
    assert r["errors"] == [], r["errors"]
    f = r["facts"]
    assert f["plotly_divs"] == 6 and f["plotly_drawn"] == 6, f
    assert "Small sample" in f["text"] and "What was searched" in f["text"]
