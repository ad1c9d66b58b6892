"""callbacks.weight_noise: gradients at noisy weights, applied to clean ones, through Lightning's real
loop."""

import pytest
import torch
from conftest import compose_config, runs_of

from seqlab.callbacks import WeightNoise
from seqlab.config import validate
from seqlab.errors import ConfigError
from seqlab.train import train


def test_the_gradient_is_taken_at_the_noisy_weights_and_the_clean_weights_come_back():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randn(8, 3)
    clean = [p.detach().clone() for p in net.parameters()]
    noise = WeightNoise(std=0.5)

    noise.on_train_batch_start(None, net, None, 0)
    noisy = [p.detach().clone() for p in net.parameters()]
    torch.nn.functional.mse_loss(net(x), y).backward()
    noise.on_before_optimizer_step(None, net, None)

    for p, c, n in zip(net.parameters(), clean, noisy, strict=False):
        assert torch.equal(p, c)  # exactly the clean weights, not clean + noise - noise
        assert (n - c).abs().mean() > 0.1  # the noise was there, about std 0.5 per weight
    # The same gradient as a model holding the noisy weights
    reference = torch.nn.Linear(4, 3)
    with torch.no_grad():
        for p, n in zip(reference.parameters(), noisy, strict=False):
            p.copy_(n)
    torch.nn.functional.mse_loss(reference(x), y).backward()
    for p, r in zip(net.parameters(), reference.parameters(), strict=False):
        torch.testing.assert_close(p.grad, r.grad)


def test_a_step_that_fails_before_the_optimizer_leaves_the_clean_weights():
    net = torch.nn.Linear(4, 3)
    clean = [p.detach().clone() for p in net.parameters()]
    noise = WeightNoise(std=0.5)
    noise.on_train_batch_start(None, net, None, 0)
    noise.on_exception(None, net, RuntimeError("a failed forward pass"))
    assert all(torch.equal(p, c) for p, c in zip(net.parameters(), clean, strict=False))


def test_std_zero_leaves_the_weights_alone():
    net = torch.nn.Linear(4, 3)
    before = [p.detach().clone() for p in net.parameters()]
    WeightNoise(std=0.0).on_train_batch_start(None, net, None, 0)
    assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=False))


def _final_val_loss(make_cfg, client, *overrides: str) -> float:
    cfg = make_cfg("task=adding", "task.n_train=64", "task.n_val=32", "trainer.max_epochs=2", *overrides)
    train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    assert run.info.status == "FINISHED"
    return run.data.metrics["val/loss"]


def test_in_a_real_run_noise_changes_training_but_never_what_is_evaluated(make_cfg, client):
    # lr 0: the weights never move, so whatever validation sees must be the initial, clean weights
    frozen = _final_val_loss(make_cfg, client, "optimizer.lr=0")
    assert _final_val_loss(make_cfg, client, "optimizer.lr=0", "callbacks.weight_noise.std=0.5") == frozen
    # lr > 0: the gradients come from noisy weights, so training ends elsewhere
    plain = _final_val_loss(make_cfg, client)
    assert _final_val_loss(make_cfg, client, "callbacks.weight_noise.std=0.1") != plain


def test_a_noisy_run_is_repeatable(make_cfg, client):
    first = _final_val_loss(make_cfg, client, "callbacks.weight_noise.std=0.1")
    assert _final_val_loss(make_cfg, client, "callbacks.weight_noise.std=0.1") == first


@pytest.mark.parametrize("value", ["-0.1", "nan", "true", "loud"])
def test_a_bad_std_is_refused_at_start_up(value):
    cfg = compose_config([f"callbacks.weight_noise.std={value}"])
    with pytest.raises(
        ConfigError, match=r"Invalid callbacks\.weight_noise\.std=.*finite number >= 0"
    ) as err:
        validate(cfg)
    assert value in str(err.value).lower()


def test_a_typo_under_weight_noise_names_the_key():
    cfg = compose_config(["+callbacks.weight_noise.sdt=0.1"])
    with pytest.raises(
        ConfigError, match=r"callbacks.weight_noise.sdt.*Did you mean 'callbacks.weight_noise.std'"
    ):
        validate(cfg)
