"""The optimisers and learning-rate schedules ``train.optimizer`` / ``train.schedule`` choose."""

import math

import pytest
import torch
from torch import nn

from rsvg.config import TrainConfig, load_config
from rsvg.engine.optim import build_optimizer, build_scheduler, lr_factor


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1))


@pytest.mark.parametrize(("name", "kind"), [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam),
                                            ("rmsprop", torch.optim.RMSprop)])
def test_the_optimizer_option_picks_the_class_and_keeps_the_groups(name, kind):
    cfg = TrainConfig(optimizer=name, lr=1e-3, lr_pretrained=1e-4, weight_decay=5e-4)
    model = net()
    opt = build_optimizer(model, cfg, {"0.weight", "0.bias"})
    assert type(opt) is kind
    groups = [(g["name"], g["lr"], len(g["params"])) for g in opt.param_groups]
    assert groups == [("new", 1e-3, 2), ("pretrained", 1e-4, 2)]
    assert all(g["weight_decay"] == 5e-4 for g in opt.param_groups)
    if name == "rmsprop":  # torch's defaults, as the one-stage references use it
        assert opt.param_groups[0]["alpha"] == 0.99 and opt.param_groups[0]["eps"] == 1e-8


def test_rmsprop_steps_as_torch_documents_it():
    model = net()
    cfg = TrainConfig(optimizer="rmsprop", lr=1e-2, lr_pretrained=1e-2, weight_decay=0.0)
    opt = build_optimizer(model, cfg, set())
    x = torch.randn(8, 4)
    model(x).pow(2).mean().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    for p, g, b in zip(model.parameters(), grads, before, strict=True):
        square = (1 - 0.99) * g * g  # the running average after one step from zero
        torch.testing.assert_close(p.detach(), b - 1e-2 * g / (square.sqrt() + 1e-8))


def test_the_poly_schedule_decays_per_whole_epoch():
    cfg = TrainConfig(schedule="poly", epochs=100, poly_power=0.9)
    steps = 10
    assert lr_factor(0, steps, cfg) == 1.0 and lr_factor(9, steps, cfg) == 1.0  # the whole first epoch
    assert math.isclose(lr_factor(10, steps, cfg), 0.99**0.9)
    assert math.isclose(lr_factor(505, steps, cfg), 0.5**0.9)
    assert lr_factor(100 * steps, steps, cfg) == 0.0
    opt = build_optimizer(net(), cfg, set())
    scheduler = build_scheduler(opt, cfg, steps)
    for _ in range(25):
        opt.step()
        scheduler.step()
    assert math.isclose(opt.param_groups[0]["lr"], cfg.lr * 0.98**0.9)


def test_the_step_schedule_gives_resc_s_halving():
    cfg = load_config(None, ["train.schedule=step", "train.step_epochs=[10, 20, 30]", "train.gamma=0.5"]).train
    assert [lr_factor(e * 4, 4, cfg) for e in (0, 9, 10, 19, 20, 35)] == [1, 1, 0.5, 0.5, 0.25, 0.125]


def test_unknown_choices_are_named():
    with pytest.raises(ValueError, match=r"train\.optimizer must be one of adamw, adam, rmsprop, got 'sgd'"):
        load_config(None, ["train.optimizer=sgd"])
    with pytest.raises(ValueError, match=r"train\.schedule must be one of step, cosine, constant, poly"):
        load_config(None, ["train.schedule=linear"])
    with pytest.raises(ValueError, match=r"train\.poly_power must not be negative"):
        load_config(None, ["train.poly_power=-1"])
    with pytest.raises(ValueError, match=r"train\.betas must be two numbers in \[0, 1\)"):
        load_config(None, ["train.betas=[0.9, 1.5]"])
    with pytest.raises(ValueError, match=r"train\.freeze_epochs must be at least 0"):
        load_config(None, ["train.freeze_epochs=-1"])
