"""Bad input gets one clear line and exit code 2, never a traceback, and nothing is left half-written."""
import shutil

import optuna
import pytest

from conftest import one_error_line, run_cli

TINY_RUN = ["--model", "tiny", "--epochs", "1", "--max-seq-length", "32", "--no-progress"]


def _corpus(tmp_path, demo_dir, posts=None, annotations=None):
    d = tmp_path / "data"
    shutil.copytree(demo_dir, d)
    if posts is not None:
        (d / "redsm5_posts.csv").write_bytes(posts)
    if annotations is not None:
        (d / "redsm5_annotations.csv").write_bytes(annotations)
    return d


ANN_HEADER = b"post_id,sentence_id,sentence_text,DSM5_symptom,status,explanation\n"


@pytest.mark.parametrize("posts,annotations,expect", [
    (b"post_id,txt\np1,hello\n", None, "no column 'text'"),
    (b"post_id,text\np1,caf\xe9\n", b"", "not UTF-8"),
    (b"post_id,text\np1,   \n", ANN_HEADER, "empty text"),
    (b"post_id,text\np1,hello\n", ANN_HEADER + b"p9,s0,x,ANHEDONIA,1,e\n", "'p9' is not in"),
    (b"post_id,text\np1,hello\n", ANN_HEADER + b"p1,s0,x,SADNESS,1,e\n", "unknown DSM5_symptom 'SADNESS'"),
    (b"post_id,text\np1,hello\n", ANN_HEADER + b"p1,s0,x,ANHEDONIA,yes,e\n", "status must be 0 or 1"),
])
def test_train_rejects_malformed_data(tmp_path, demo_dir, posts, annotations, expect):
    d = _corpus(tmp_path, demo_dir, posts, annotations)
    line = one_error_line(run_cli("cli.train", "--data-dir", str(d), "--out", str(tmp_path / "out"), *TINY_RUN))
    assert expect in line
    assert not (tmp_path / "out" / "evaluation_report.json").exists()


@pytest.mark.parametrize("args,expect", [
    (["--data-dir", "/no/such/dir"], "does not exist"),
    (["--model", "/no/such/model"], "unknown model"),
    (["--learning-rate", "-0.001"], "learning_rate must be in"),
    (["--optimizer", "adagrad"], "unknown optimizer 'adagrad'"),
    (["--batch-size", "16", "--grad-accum", "3"], "must be one of 16, 32, 64, 128"),
    (["--out", "/dev/null/out"], "not writable"),
    (["--config", "/no/such.yaml"], "does not exist"),
])
def test_train_rejects_bad_flags(tmp_path, demo_dir, args, expect):
    base = ["--data-dir", str(demo_dir), "--out", str(tmp_path / "out"), *TINY_RUN]
    line = one_error_line(run_cli("cli.train", *base, *args))
    assert expect in line


def _bad_backbones(tmp_path):
    """A model directory with a config but no weights, and one whose config.json is corrupt."""
    cfg = '{"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}'
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text(cfg)
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "config.json").write_text("{not json")
    return str(tmp_path / "noweights"), str(tmp_path / "corrupt")


def test_hpo_rejects_bad_input_without_creating_anything(tmp_path, demo_dir, capsys):
    """One line, exit 2, and no database file, study or experiments folder left behind (run in-process: fast)."""
    from dataaug_multi_both.cli.hpo import main
    from dataaug_multi_both.demo import generate_demo_corpus

    tiny_corpus = generate_demo_corpus(tmp_path / "three", n_posts=3, seed=0)
    noweights, corrupt = _bad_backbones(tmp_path)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    common = ["--storage", storage, "--experiments-dir", str(tmp_path / "exp"), "--data-dir", str(demo_dir),
              "--backbone", "tiny", "--no-progress"]
    cases = [
        (["stage1", "--storage", "redis://127.0.0.1:6379"], "is not one Optuna can use"),
        (["stage1", "--storage", "mysql://u@127.0.0.1/d"], "MySQL is not supported"),
        (["stage1", "--storage", "postgresql://nobody@127.0.0.1:1/none"], "cannot open storage"),
        (["stage1", "--trials", "0"], "n_trials must be > 0"),
        (["stage1", "--jobs", "-1"], "jobs must be > 0"),
        (["stage1", "--data-fraction", "1.5"], "must be in (0, 1]"),
        (["stage1", "--max-seq-length", "2"], "max_seq_lengths must be integers >= 8"),
        (["stage1", "--backbone", "no-such-model"], "unknown model"),
        (["stage1", "--backbone", noweights], "cannot load model"),
        (["stage1", "--backbone", corrupt], "cannot be loaded"),
        (["stage1", "--data-dir", str(tiny_corpus)], "too few posts"),
        (["stage1", "--experiments-dir", "/dev/null/exp"], "not writable"),
        (["stage2", "--top-k", "0"], "top_k must be > 0"),
        (["stage2"], "run `stage1` first"),
        (["report", "--study-name", "nope"], "no storage file"),
        (["export", "--study-name", "nope"], "no database at"),
    ]
    for args, expect in cases:
        sub, rest = args[0], args[1:]
        with pytest.raises(SystemExit) as e:
            main([sub, *(common if sub not in ("report", "export") else common[:4]), *rest])
        err = capsys.readouterr().err
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert e.value.code == 2 and "Traceback" not in err and lines[-1].startswith("error: "), (args, err)
        assert expect in lines[-1], (args, lines[-1])
        assert not (tmp_path / "optuna.db").exists(), args  # nothing created: no database file ...
        assert not (tmp_path / "exp").exists(), args        # ... and no experiments folder


def test_demo_rejects_bad_input_before_training(tmp_path, capsys):
    """`make demo ARGS=...` with a bad budget, seed count or storage: one line, exit 2, nothing created, no calibration run."""
    from dataaug_multi_both.cli.hpo import main

    common = ["--storage", f"sqlite:///{tmp_path}/optuna.db", "--experiments-dir", str(tmp_path / "exp"), "--backbone", "tiny"]
    cases = [
        (["--time-budget", "-5"], "--time-budget must be"),
        (["--n-seeds", "1"], "at least 2"),
        (["--storage", "mysql://u@127.0.0.1/d"], "MySQL is not supported"),
    ]
    for rest, expect in cases:
        with pytest.raises(SystemExit) as e:
            main(["demo", *common, *rest])
        captured = capsys.readouterr()
        lines = [ln for ln in captured.err.strip().splitlines() if ln.strip()]
        assert e.value.code == 2 and "Traceback" not in captured.err and lines[-1].startswith("error: "), (rest, captured.err)
        assert expect in lines[-1], (rest, lines[-1])
        assert "calibrated" not in captured.out, rest
        assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "exp").exists(), rest


def test_existing_study_with_other_direction(tmp_path, demo_dir):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    optuna.create_study(storage=storage, study_name="stage1_broad", direction="minimize")
    line = one_error_line(run_cli("cli.hpo", "stage1", "--storage", storage, "--experiments-dir", str(tmp_path / "exp"),
                                  "--data-dir", str(demo_dir), "--model", "tiny", "--no-progress"))
    assert "minimises" in line
    assert len(optuna.load_study(study_name="stage1_broad", storage=storage).trials) == 0


# ---- data files that used to get a misleading message (issue 12), and issue 7's point 8: checked in-process (fast)

def _train_error(argv, capsys):
    "Run the train command in this process; return (exit code, stderr lines)."
    from dataaug_multi_both.cli import train
    with pytest.raises(SystemExit) as e:
        train.main(argv)
    return e.value.code, [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]


@pytest.mark.parametrize("posts,annotations,expect", [
    (b"post_id,text\n", None, "redsm5_posts.csv in"),                                  # not blamed on the annotations
    (b"post_id,text\np1,\"an opening quote never closed\np2,hello\n", None, "not valid CSV from line 2"),
    (b"post_id;text\np1;hello\n", None, "separated by semicolons"),
    (b"post_id,text\np1,hello\n", ANN_HEADER, "has a header but no rows"),            # used to run and score 0
])
def test_bad_data_files_say_what_is_wrong(tmp_path, demo_dir, capsys, posts, annotations, expect):
    d = _corpus(tmp_path, demo_dir, posts, annotations)
    code, err = _train_error(["--data-dir", str(d), "--out", str(tmp_path / "out"), *TINY_RUN], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and expect in err[0], err
    assert not (tmp_path / "out").exists()                                            # nothing written


def test_a_post_over_128_kib_is_read(tmp_path, demo_dir):
    from dataaug_multi_both.data import load_redsm5
    d = _corpus(tmp_path, demo_dir)
    rows = (d / "redsm5_posts.csv").read_text().splitlines()
    pid = rows[1].split(",")[0]
    rows[1] = f'{pid},"{"I cannot sleep. " * 10_000}"'                                # 160 KB in one field
    (d / "redsm5_posts.csv").write_text("\n".join(rows) + "\n")
    assert len(load_redsm5(d).posts[0].text) > 131_072


def test_config_file_that_is_not_utf8(tmp_path, demo_dir, capsys):
    cfg = tmp_path / "knobs.yaml"
    cfg.write_bytes(b"epochs: 1\nnote: caf\xe9\n")
    code, err = _train_error(["--config", str(cfg), "--data-dir", str(demo_dir), "--out", str(tmp_path / "out"), *TINY_RUN], capsys)
    assert code == 2 and err == [f"error: config file {str(cfg)!r} is not UTF-8 text (byte 19): re-save it as UTF-8 JSON or YAML"]
    assert not (tmp_path / "out").exists()


def test_flags_accept_underscores_and_suggest_the_closest(capsys):
    from dataaug_multi_both.cli import train
    args = train.parser().parse_args(["--learning_rate", "1e-4", "--output_dir", "x", "--max_seq_length=64"])
    assert (args.learning_rate, args.out, args.max_seq_length) == (1e-4, "x", 64)
    with pytest.raises(SystemExit) as e:
        train.parser().parse_args(["--learnig-rate", "1e-4"])
    assert e.value.code == 2
    assert "unrecognized arguments: --learnig-rate 1e-4 (did you mean --learning-rate?)" in capsys.readouterr().err
    assert "one of adam, adamw, sgd" in train.parser().format_help()


def test_output_into_head_ends_quietly(tmp_path):
    "`doctor | head -1`: no BrokenPipeError traceback (cli_entry handles a closed pipe for every command)."
    import subprocess
    import sys
    r = subprocess.run(f"{sys.executable} -m dataaug_multi_both.cli.doctor --no-bench | head -1", shell=True,
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() and "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
