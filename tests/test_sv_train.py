"""Training end to end on a toy corpus: CLI train/extract/score, resume, and DDP with 2 CPU ranks."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from click.testing import CliRunner
from matplotlib.image import imread

from cimc.cli import cli
from cimc.config import ConfigError, load_config
from cimc.data.trials import Trial, write_trials
from cimc.sv.checkpoint import list_checkpoints, load_state
from cimc.sv.config import SvConfig
from cimc.sv.toy import make_toy_cuts
from cimc.sv.train import train
from cimc.vectors import load_vectors

TINY = """\
model: {channels: 16, se_bottleneck: 8, attention_channels: 8}
train: {epochs: 1, batch_size: 4, num_workers: 0, heldout_fraction: 0.2, device: cpu, crop_seconds: [0.5, 0.8]}
extract: {num_workers: 0, device: cpu}
augment: {prob: 0.5}
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    make_toy_cuts(root / "train", num_speakers=3, utts_per_speaker=4, seconds=(0.3, 1.2)).to_file(root / "train.jsonl.gz")
    test = make_toy_cuts(root / "test", num_speakers=3, utts_per_speaker=2, seconds=1.0, seed=1)
    test.to_file(root / "test.jsonl.gz")
    pairs = itertools.combinations([c.id for c in test], 2)
    write_trials(root / "trials.txt", [Trial(a, b, a.split("-")[0] == b.split("-")[0]) for a, b in pairs])
    (root / "tiny.yaml").write_text(TINY)
    return root


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_train_extract_score(corpus, tmp_path):
    exp = tmp_path / "exp"
    invoke("sv", "train", "--config", corpus / "tiny.yaml", "--cuts", corpus / "train.jsonl.gz", "--exp-dir", exp,
           "head.name=ocsoftmax")
    assert (exp / ".done").is_file() and (exp / "final.pt").is_file()
    assert imread(exp / "training.png").shape == (400, 1000, 4)  # loss and accuracy per epoch
    assert load_config(SvConfig, exp / "config.yaml").head.name == "ocsoftmax"  # resolved config saved
    assert sorted((exp / "labels.txt").read_text().split()) == sorted(["spk0", "0", "spk1", "1", "spk2", "2"])
    for part in ("test", "train"):
        invoke("sv", "extract", "--exp-dir", exp, "--cuts", corpus / f"{part}.jsonl.gz", "--output", exp / f"emb_{part}")
    ids, vectors = load_vectors(exp / "emb_test")
    assert vectors.shape == (6, 192) and len(ids) == 6
    out = invoke("sv", "score", "--config", exp / "config.yaml", "--trials", corpus / "trials.txt", "--vectors",
                 exp / "emb_test", "--train-vectors", exp / "emb_train", "--output-dir", exp / "scores", "--name", "toy")
    table = out[out.index("system "):].splitlines()  # the log lines come first
    assert table[0].split()[:2] == ["system", "EER(%)"] and table[2].startswith("toy")
    assert {p.name for p in (exp / "scores").iterdir()} >= {"scores.txt", "results.txt", "results.json", "det.png"}
    # A finished experiment asked for again is skipped, not retrained (workers and device may differ)...
    before = (exp / "final.pt").stat().st_mtime_ns
    invoke("sv", "train", "--config", corpus / "tiny.yaml", "--cuts", corpus / "train.jsonl.gz", "--exp-dir", exp,
           "head.name=ocsoftmax", "train.num_workers=1", "extract.max_seconds=5", "score.snorm=true")
    assert (exp / "final.pt").stat().st_mtime_ns == before
    saved = load_config(SvConfig, exp / "config.yaml")  # stage 7 reads the score settings from here: updated
    assert saved.score.snorm and saved.extract.max_seconds == 5 and saved.head.name == "ocsoftmax"
    # ...and asked for with another model is refused by field, not answered with the old one
    with pytest.raises(ConfigError, match=r"exp was trained with another config .*head\.name 'ocsoftmax' -> 'aam'"):
        CliRunner().invoke(cli, ["sv", "train", "--config", str(corpus / "tiny.yaml"), "--cuts",
                                 str(corpus / "train.jsonl.gz"), "--exp-dir", str(exp)], catch_exceptions=False)


def test_resume_continues_after_the_last_checkpoint(corpus, tmp_path):
    from lhotse import CutSet

    cuts = list(CutSet.from_file(corpus / "train.jsonl.gz"))
    config = load_config(SvConfig, corpus / "tiny.yaml", ["train.average_last=2"])
    train(config, cuts, tmp_path)
    first = load_state(tmp_path / "checkpoints" / "epoch_1.pt")
    config.train.epochs = 2
    with pytest.raises(ConfigError, match=r"another config .*train\.lr 0\.001 -> 0\.01"):  # not spliced
        train(load_config(SvConfig, corpus / "tiny.yaml", ["train.average_last=2", "train.epochs=2",
                                                          "train.lr=0.01"]), cuts, tmp_path)
    train(config, cuts, tmp_path)  # more epochs extend the run
    assert [e for e, _ in list_checkpoints(tmp_path)] == [1, 2]
    second = load_state(tmp_path / "checkpoints" / "epoch_2.pt")
    assert [h["epoch"] for h in second["history"]] == [1, 2]
    assert second["history"][0] == first["history"][0]  # epoch 1 was not rerun
    # The resumed optimiser continued: its step count covers both epochs.
    steps = [s["step"] for s in second["optimizer"]["state"].values()]
    assert float(steps[0]) == 2 * float([s["step"] for s in first["optimizer"]["state"].values()][0])
    final = load_state(tmp_path / "final.pt")
    assert final["selected"] in {"average of last 2 epochs", "epoch 1", "epoch 2"} and "heldout_loss" in final


DDP_SCRIPT = """
import os, sys, torch
from lhotse import CutSet
from cimc.config import ConfigError, load_config
from cimc.sv.config import SvConfig
from cimc.sv.train import train
from cimc.utils import setup_logging
setup_logging()
torch.set_num_threads(1)
config = load_config(SvConfig, sys.argv[1], ["train.heldout_fraction=0", "train.average_last=1", "train.epochs=2"])
net = train(config, list(CutSet.from_file(sys.argv[2])), sys.argv[3])
torch.save({k: v for k, v in net.named_parameters()}, os.path.join(sys.argv[3], f"rank{os.environ['RANK']}.pt"))
"""


def test_ddp_two_cpu_ranks_hold_identical_weights(corpus, tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
               str(corpus / "tiny.yaml"), str(corpus / "train.jsonl.gz"), str(tmp_path / "exp")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / "exp" / f"rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0, msg=name)
    # Training moved the weights (the ranks are not trivially equal by never stepping).
    epoch1 = load_state(tmp_path / "exp" / "checkpoints" / "epoch_1.pt")["model"]
    assert any(not torch.equal(epoch1[name], rank0[name]) for name in rank0)
    assert "rank 0 of 2" in done.stderr and (tmp_path / "exp" / ".done").is_file()


def test_lr_schedule_warms_up_then_decays_to_final():
    from cimc.sv.train import lr_factor

    factors = [lr_factor(s, warmup_steps=4, total_steps=14, final_ratio=0.01) for s in range(15)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[4] == pytest.approx(1.0) and factors[14] == pytest.approx(0.01)
    assert factors[9] == pytest.approx(0.01**0.5)  # exponential: halfway in log space at half the decay
    assert all(a >= b for a, b in zip(factors[3:], factors[4:]))


def test_average_states_is_the_elementwise_mean(tmp_path):
    from cimc.sv.checkpoint import average_states, save_checkpoint

    states = [{"w": torch.full((2, 2), float(i)), "bn.num_batches_tracked": torch.tensor(i)} for i in (1, 2, 6)]
    paths = []
    for i, state in enumerate(states):
        paths.append(tmp_path / f"epoch_{i}.pt")
        save_checkpoint(paths[-1], {"model": state})
    average = average_states(paths)
    torch.testing.assert_close(average["w"], torch.full((2, 2), 3.0))
    assert average["bn.num_batches_tracked"].item() == 6  # integer counters come from the newest


def test_history_figure_draws_training_and_heldout_per_epoch():
    from cimc.sv.train import history_figure

    history = [{"epoch": e, "loss": 5.0 / e, "accuracy": 0.2 * e, **({"heldout_loss": 6.0 / e} if e > 1 else {})}
               for e in (1, 2, 3)]
    loss, accuracy = history_figure(history).axes
    assert [(line.get_label(), list(line.get_xdata()), list(line.get_ydata())) for line in loss.lines] == \
        [("training", [1, 2, 3], [5.0, 2.5, 5.0 / 3]), ("held-out", [2, 3], [3.0, 2.0])]
    assert [line.get_label() for line in accuracy.lines] == ["training"]
    assert list(accuracy.lines[0].get_ydata()) == [0.2, 0.4, 0.6000000000000001]
    with pytest.raises(ValueError, match="no training history"):
        history_figure([])
