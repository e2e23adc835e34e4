"""``keras-dit train --resume`` gives the uninterrupted run (weights, EMA, log.csv) whether ``checkpoint_every``
divides the epochs or not and after Ctrl-C; changed settings are applied or refused; log.csv agrees with the
checkpoint; the faults a user meets are one-line errors."""

import csv
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_dit.cli import builders, main
from keras_dit.cli.config import load_config
from keras_dit.ema import ema_optimizer
from keras_dit.training_callbacks import StopOnInterrupt
from tests.helpers import run_error, to_numpy
from tests.helpers import tiny_cli as tiny

FAST = ["--set", "train.tensorboard=false", "--set", "train.sample_every=0"]


def train(out, *extra, resume=False):
    main(["train", *(["--resume"] if resume else []), *tiny(out, *FAST, *extra)])


def log_rows(out):
    with open(os.path.join(out, "log.csv"), newline="") as f:
        return [(int(row["epoch"]), float(row["loss"])) for row in csv.DictReader(f)]


def state(out):
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    optimizer = ema_optimizer(model)
    averages = [to_numpy(optimizer._model_variables_moving_average[optimizer._get_variable_index(v)])
                for v in model.trainable_variables]
    return model.get_weights(), averages, int(to_numpy(model.optimizer.iterations))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("straight") / "run")
    train(out, "--set", "train.epochs=4")
    return out


def assert_same_run(out, expected):
    (weights, averages, steps), (weights_0, averages_0, steps_0) = state(out), state(expected)
    assert steps == steps_0 == 8
    for a, b in zip(weights + averages, weights_0 + averages_0):
        np.testing.assert_allclose(a, b, atol=1e-6)
    rows, rows_0 = log_rows(out), log_rows(expected)
    assert [e for e, _ in rows] == [0, 1, 2, 3]
    np.testing.assert_allclose([l for _, l in rows], [l for _, l in rows_0], rtol=1e-5)


def test_resume_when_checkpoint_every_does_not_divide_the_epochs(tmp_path):
    """3 epochs with checkpoint_every=2 (the last written by on_train_end), then --resume to 4, at a constant
    learning rate (a cosine schedule would stretch to the new epoch count). Before: the final checkpoint held the EMA
    as raw weights, and epoch 4 continued from it (loss 1.468 against 1.211 straight)."""
    out, expected, constant = str(tmp_path / "run"), str(tmp_path / "straight"), ("--set", "train.lr_schedule=constant")
    train(expected, "--set", "train.epochs=4", *constant)
    train(out, "--set", "train.epochs=3", "--set", "train.checkpoint_every=2", *constant)
    train(out, "--set", "train.epochs=4", "--set", "train.checkpoint_every=2", *constant, resume=True)
    assert_same_run(out, expected)


def test_resume_in_the_middle_of_an_epoch(straight, tmp_path, monkeypatch):
    """checkpoint_every_steps=3 with 2 steps per epoch: killed before step 4, after the step-3 checkpoint (the first
    batch of epoch 2), --resume trains epoch 2's second batch, then epochs 3 and 4: weights and EMA equal the
    uninterrupted run's (on JAX the mid-epoch save holds step 3's state, not the epoch start's), one log row per
    epoch. Before: checkpoints only at epoch ends, so the kill lost the whole epoch."""
    out = str(tmp_path / "run")
    batches = []

    def killed_at_step_4(self, batch, logs=None):
        batches.append(batch)
        if len(batches) == 4:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(StopOnInterrupt, "on_train_batch_begin", killed_at_step_4, raising=False)
    with pytest.raises(SystemExit):
        train(out, "--set", "train.epochs=4", "--set", "train.checkpoint_every_steps=3")
    monkeypatch.undo()
    assert state(out)[2] == 3 and [e for e, _ in log_rows(out)] == [0]
    train(out, "--set", "train.epochs=4", "--set", "train.checkpoint_every_steps=3", resume=True)
    assert_same_run(out, straight)


def test_ctrl_c_stops_within_a_step_and_resumes_exactly(straight, tmp_path, monkeypatch):
    """SIGINT in the middle of epoch 3: stopped at that batch's end (exit 130), the epoch-2 checkpoint and log
    kept, --resume redoes epoch 3 and gives the uninterrupted run."""
    out = str(tmp_path / "run")
    batches = []

    def interrupt(self, batch, logs=None):
        batches.append(batch)
        if len(batches) == 6:  # epoch 3, batch 2 of 2 (64 images / batch 32)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(StopOnInterrupt, "on_train_batch_begin", interrupt, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        train(out, "--set", "train.epochs=4")
    assert exit_info.value.code == 130 and len(batches) == 6
    assert [e for e, _ in log_rows(out)] == [0, 1] and state(out)[2] == 4
    monkeypatch.undo()
    train(out, "--set", "train.epochs=4", resume=True)
    assert_same_run(out, straight)


def test_killed_between_log_and_checkpoint_leaves_no_duplicate_rows(straight, tmp_path, monkeypatch):
    """The log is written just before the checkpoint; a kill in between leaves rows the resume drops. Before:
    redone epochs were appended twice, and a kill after the checkpoint rename lost that epoch's row."""
    out = str(tmp_path / "run")
    import keras_dit.training_callbacks as callbacks

    real, calls = callbacks.atomic_save, []

    def killed_on_the_third_save(model, path):
        calls.append(path)
        if len(calls) == 3:
            for name in (".tmp-killed.keras", ".tmp-killed.csv"):  # half-written checkpoint and log
                open(os.path.join(os.path.dirname(path), name), "wb").close()
            raise KeyboardInterrupt("killed")
        real(model, path)

    monkeypatch.setattr(callbacks, "atomic_save", killed_on_the_third_save)
    with pytest.raises(SystemExit):
        train(out, "--set", "train.epochs=4")
    monkeypatch.undo()
    assert [e for e, _ in log_rows(out)] == [0, 1, 2] and state(out)[2] == 4  # the row of epoch 3 is ahead
    train(out, "--set", "train.epochs=4", resume=True)
    assert not any(os.path.exists(os.path.join(out, name)) for name in (".tmp-killed.keras", ".tmp-killed.csv"))
    assert_same_run(out, straight)


def test_resume_applies_new_optimizer_settings_and_refuses_data_changes(straight, tmp_path, capsys):
    out, constant = str(tmp_path / "run"), ("--set", "train.lr_schedule=constant")
    train(out, "--set", "train.epochs=1", *constant)
    line = run_error(capsys, ["train", "--resume", *tiny(out, *FAST, *constant, "--set", "data.batch_size=16")])
    assert "cannot change data.batch_size" in line and "--set data.batch_size=32" in line
    line = run_error(capsys, ["train", "--resume", *tiny(out, *FAST, *constant, "--set", "train.ema=false")])
    assert "cannot change train.ema" in line
    line = run_error(capsys, ["train", "--resume", *tiny(out, *FAST)])  # the preset's cosine schedule
    assert "cannot change train.lr_schedule" in line and "--set train.lr_schedule=constant" in line
    train(out, "--set", "train.epochs=2", "--set", "train.learning_rate=0.0005", "--set", "train.clipnorm=1.0",
          *constant, resume=True)
    said = capsys.readouterr().out
    assert "train.learning_rate changed from 0.002 to 0.0005" in said and "train.clipnorm changed" in said
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    assert float(to_numpy(model.optimizer.learning_rate)) == pytest.approx(5e-4)
    assert model.optimizer.clipnorm == 1.0
    recorded = open(os.path.join(out, "config.yaml")).read()
    assert "learning_rate: 0.0005" in recorded and "clipnorm: 1.0" in recorded


def test_cosine_schedule_decays_to_zero_and_a_longer_resume_stretches_it(tmp_path, capsys):
    """``train.lr_schedule: cosine`` (the digits preset's) goes from the learning rate to 0 over the run's steps, as
    a function of the optimizer's step (so the exact-resume tests above hold with it); resuming to more epochs
    rebuilds it over the new step count and says so."""
    rate = builders.build_learning_rate(load_config("digits", ["train.epochs=4"]), steps_per_epoch=25)
    np.testing.assert_allclose([float(to_numpy(rate(step))) for step in (0, 50, 100)], [2e-3, 1e-3, 0.0], atol=1e-9)
    out = str(tmp_path / "run")
    train(out, "--set", "train.epochs=1")
    train(out, "--set", "train.epochs=2", resume=True)
    said = capsys.readouterr().out
    assert "schedule changed from CosineDecay(0.002 over 2 steps) to CosineDecay(0.002 over 4 steps)" in said
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    assert int(to_numpy(model.optimizer.iterations)) == 4
    assert float(to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.0, abs=1e-9)


def test_grokfast_key_and_a_grid_at_the_end(tmp_path):
    """train.grokfast wraps the optimizer; a run shorter than sample_every still writes its final grid."""
    from keras_dit.optimizers import GradientFilterEMA

    out = str(tmp_path / "run")
    main(["train", *tiny(out, "--set", "train.tensorboard=false", "--set", "train.epochs=1",
                         "--set", "train.sample_every=5", "--set", "train.grokfast={alpha: 0.9, lamb: 1.0}")])
    assert os.listdir(os.path.join(out, "grids")) == ["epoch_001.png"]
    optimizer = keras.saving.load_model(os.path.join(out, "model.keras")).optimizer
    assert isinstance(optimizer, GradientFilterEMA) and (optimizer.alpha, optimizer.lamb) == (0.9, 1.0)


def test_faults_are_one_line_errors(straight, tmp_path, capsys):
    """Before: tracebacks with exit 1 (NaN stop, output_dir a file), and epochs=-3 exited 0."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = run_error(capsys, ["train", *tiny(str(blocker), *FAST)])
    assert "output_dir" in line and "is a file" in line
    line = run_error(capsys, ["train", *tiny(str(blocker / "run"), *FAST)])
    assert "output_dir" in line and "is a file" in line
    line = run_error(capsys, ["train", *tiny(str(tmp_path / "nan"), *FAST, "--set", "train.learning_rate=1e30")])
    assert "--set train.clipnorm=1.0" in line and "--resume" in line
    line = run_error(capsys, ["train", *tiny(str(tmp_path / "x"), "--set", "train.epochs=-3")])
    assert "train.epochs in --set must be >= 1, got -3" in line
    assert not os.path.exists(tmp_path / "x")
    line = run_error(capsys, ["sample", *tiny(straight, "--set", f"sample.output={blocker}/samples")])
    assert "sample.output" in line and "is a file" in line  # checked before generating


@pytest.mark.large  # a fresh process: imports and compiles for ~30 s on 2 shared cores
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_real_ctrl_c_stops_the_command(tmp_path):
    """A real SIGINT to ``keras-dit train`` after its first checkpoint: exit 130 long before the run's end.
    Before: ignored on JAX in 4 of 5 tries (Keras swallowed the KeyboardInterrupt while waiting for the loss)."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    process = subprocess.Popen([sys.executable, "-c", "from keras_dit.cli import main; main()", "train",
                                *tiny(str(out), *FAST, "--set", "train.epochs=1000", "--set", "data.limit=320")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):
            if (out / "model.keras").exists() or process.poll() is not None:
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err[-2000:]  # within communicate's 60 s (4-6 s measured on 2 busy cores)
    assert "--resume" in err
    epochs = [row["epoch"] for row in csv.DictReader(open(out / "log.csv", newline=""))]
    assert 1 <= len(epochs) < 100
