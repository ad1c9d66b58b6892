"""The overhead benchmark's baseline trains exactly what seqlab trains, or its ratio would not be about
seqlab's machinery alone. In the default suite, as a test of seqlab's training path: a change to how a
run builds or steps its model that the hand-written loop does not share fails here, not in a benchmark.

benchmarks/ is a folder of the checkout, not an installed package: the checkout goes on sys.path here
(`python -m pytest` puts the working folder there, a bare `pytest` does not).
"""

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
if str(CHECKOUT) not in sys.path:
    sys.path.insert(0, str(CHECKOUT))


def test_the_bare_loop_ends_with_the_weights_seqlab_ends_with(make_cfg, tmp_path):
    # Same initial weights, batches, loss, clipping, optimizer steps and torch numerics (deterministic
    # mode, set by seqlab.train.build for both). Without dropout nothing random is left, so after two
    # epochs of three batches (validation in between) seqlab's last.ckpt and the bare loop's last.pt hold
    # equal weights. It fails if, say, the bare loop skipped the clipping.
    import torch

    from benchmarks.bare_loop import train_bare
    from seqlab.train import train

    cfg = make_cfg("trainer.max_epochs=2", "trainer.gradient_clip_val=0.05", "optimizer.lr=0.01")
    train(cfg)
    seqlab_state = torch.load(Path(cfg.callbacks.last_checkpoint.dirpath) / "last.ckpt", weights_only=True)
    train_bare(cfg, checkpoint_dir=tmp_path / "bare")
    bare_state = torch.load(tmp_path / "bare" / "last.pt", weights_only=True)
    seqlab_weights = {
        k.removeprefix("net."): v for k, v in seqlab_state["state_dict"].items() if k.startswith("net.")
    }
    assert seqlab_weights.keys() == bare_state["model"].keys()
    moved = [k for k, v in seqlab_weights.items() if not torch.equal(v, bare_state["model"][k])]
    assert not moved, moved
    assert bare_state["epoch"] == seqlab_state["epoch"] == 1
