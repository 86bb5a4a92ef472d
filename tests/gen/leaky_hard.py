"""leaky_hard.py — the squashing functions of METHOD §2.4 as torch autograd Functions,
shared by the golden-step generators (golden_common.py) and the benchmark's PyTorch
step (bench/torch_step.py). Imports only torch: the caller sets up its venv."""
import torch

ALPHA = 0.01     # leaky slope of both leaky-hard squashings (M§2.4)


class LowerLeakyHard(torch.autograd.Function):
    """clamp(x,0,1) forward; straight-through backward with the sign exception:
    x <= 0 passes ALPHA·g only when the (fully accumulated) upstream gradient
    g < 0 (the loss wants the value to rise), 0 < x <= 1 passes g, x > 1 passes
    0 (M§2.4 table, M§13.1; spd spd/models/sigmoids.py
    LowerLeakyHardSigmoidFunction). The tie x = 0 takes the lower branch.
    CONVENTION: g < 0 and ALPHA = 0.01 as METHOD states. (One stored spd
    version of sigmoids.py gates on g > 0 with a default alpha of 0; the one
    METHOD cites, and the VPD sign-exception description, use g < 0.)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        zero = torch.zeros_like(g)
        dead = torch.where(g < 0, ALPHA * g, zero)
        return torch.where(x <= 0, dead, torch.where(x <= 1, g, zero))


class UpperLeakyHard(torch.autograd.Function):
    """x > 1: 1 + ALPHA·(x − 1); else clamp(x, 0, 1). Backward: 0 for x < 0,
    g on [0, 1], ALPHA·g for x > 1 (M§2.4). Written as a Function so the
    boundary conventions are explicit rather than autograd-of-where."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 1, 1 + ALPHA * (x - 1), x.clamp(0.0, 1.0))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        zero = torch.zeros_like(g)
        return torch.where(x < 0, zero, torch.where(x <= 1, g, ALPHA * g))


def squash(z, sigmoid_type):
    """(g_lower, g_upper). leaky_hard: σ_lower = lower_leaky_hard (masks),
    σ_upper = upper_leaky_hard (importance minimality); any other type uses one
    function for both (M§2.1, M§2.4). 'hard' is clamp(x,0,1) with autograd's
    clamp gradient (1 on [0,1], boundaries included)."""
    if sigmoid_type == "leaky_hard":
        return LowerLeakyHard.apply(z), UpperLeakyHard.apply(z)
    g = z.clamp(0.0, 1.0)
    return g, g


# ---- model pieces ----------------------------------------------------------------
