#!/usr/bin/env python3
"""spd_golden.py — golden values for one SPD training step, computed in PyTorch
independently of pdc, for tests/test_spd_golden.c.

Writes tests/data/spd_golden.safetensors: fixed inputs (data batch, factor and
CI-function weights, every uniform draw) and, for several loss configurations
("cases"), the expected loss metrics, the gradient of the total loss w.r.t.
every trainable state and the value of every state (parameters and AdamW
moments) after one AdamW step. Reference values are computed in float64 and
stored as float32; the same computation in float32 is run too, to show that
the C test's tolerance is reachable by a correct float32 implementation.

The spec is /work/shared/METHOD.md (cited as "M§x"), whose reference is
goodfire-ai/spd. Every convention this file had to decide is marked
"CONVENTION" below.

Usage (creates tests/gen/.venv-torch with torch, numpy and onnx from PyPI on
first use, then re-runs itself inside it):

    python3 tests/gen/spd_golden.py [--out tests/data/spd_golden.safetensors]
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(HERE, ".venv-torch")
VENV_PY = os.path.join(VENV, "bin", "python")


def ensure_venv():
    """Re-exec inside tests/gen/.venv-torch, creating it when missing."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(VENV_PY):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    probe = subprocess.run([VENV_PY, "-c", "import torch, numpy, onnx"], capture_output=True)
    if probe.returncode != 0:
        subprocess.check_call([VENV_PY, "-m", "pip", "install", "--quiet", "torch", "numpy",
                               "onnx"])
    os.execv(VENV_PY, [VENV_PY, os.path.abspath(__file__)] + sys.argv[1:])


ensure_venv()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import struct  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from onnx import numpy_helper  # noqa: E402

# ---- sizes and fixed settings ------------------------------------------------

MODEL = os.path.join(ROOT, "models", "default.onnx")
OUT = os.path.join(ROOT, "tests", "data", "spd_golden.safetensors")
B = 6            # batch
C = 4            # subcomponents of W (both uses: the factor pair is shared)
H = 3            # CI function hidden width: ci_fn_type mlp, hidden [3]
ALPHA = 0.01     # leaky slope of both leaky-hard squashings (M§2.4)
EPS_IMP = 1e-12  # importance-minimality eps (M§4.3 default)
LR = 1e-3        # AdamW: lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0 (M§5.2)
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
SITES = ["W", "W@1"]  # pdc's site names: the direct use and the tied second use

# The C test's comparison: |got - want| <= RTOL*|want| + ATOL_REL*max|want of that tensor|.
# The absolute floor is relative to the tensor's own scale (float32 rounding of a
# sum of terms of that scale); the float32 torch run below must pass it too.
RTOL = 1e-5
ATOL_REL = 1e-6

# Loss configurations. Coefficients are deliberately distinct so a term wired
# to the wrong coefficient shows. The loss ORDER matters: pdc creates the
# uniform-draw inputs while building the losses in config order.
COEFFS = {"imp": 0.05, "stoch": 1.0, "layerwise": 0.7, "faith": 0.3}
CASES = [  # name, sigmoid_type, p, beta
    ("lh_p1", "leaky_hard", 1.0, 0.0),
    ("lh_p2", "leaky_hard", 2.0, 0.0),
    ("lh_p1_beta", "leaky_hard", 1.0, 0.5),
    ("hard_p2_beta", "hard", 2.0, 0.25),  # also the setting of the C finite-difference check
]
FD_CASE = "hard_p2_beta"
FD_STEP = 3e-3  # the C test's central-difference step (float32 program)
# The C test's FD criterion: |fd - g| <= FD_RTOL*max(|fd|,|g|) + FD_ATOL. FD_ATOL
# is the float32 noise floor of a central difference of a loss of ~0.75:
# a few float32 ulps of the loss over 2·FD_STEP (torch float32 measures ~2e-5).
# The float64 FD at this step must match autograd far more tightly (check_fd),
# which proves no perturbation crosses a kink of clamp or ReLU.
FD_RTOL = 1e-2
FD_ATOL = 5e-5


# ---- the target model ----------------------------------------------------------

def load_target():
    """W [5,2] and b [5] of models/default.onnx, checking its structure is the
    one this reference re-implements: y = Relu((x·W)·Wᵀ + b), Wᵀ via Transpose."""
    m = onnx.load(MODEL)
    ops = [(n.op_type, list(n.input)) for n in m.graph.node]
    want = [("MatMul", ["x", "W"]), ("Transpose", ["W"]), ("MatMul", ["h", "W_T"]),
            ("Add", ["hWt", "b"]), ("Relu", ["pre"])]
    if ops != want:
        sys.exit(f"spd_golden: {MODEL} is not the model this reference implements: {ops}")
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return init["W"].astype(np.float64), init["b"].astype(np.float64)


# ---- squashing functions (M§2.4) ---------------------------------------------------

class LowerLeakyHard(torch.autograd.Function):
    """clamp(x,0,1) forward; straight-through backward with the sign exception:
    x <= 0 passes ALPHA·g only when the upstream gradient g < 0 (the loss wants
    the value to rise), 0 < x <= 1 passes g, x > 1 passes 0 (M§2.4 table; spd
    spd/models/sigmoids.py LowerLeakyHardSigmoidFunction). The tie x = 0 takes
    the lower branch.
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


# ---- one SPD step ----------------------------------------------------------------

def site_factors(P, Wt):
    """Per site: (V, U, Δ) as that use reads them.
    CONVENTION (tied weights, M§1.6): one factor pair V [5,C], U [C,2] for the
    initializer W in the first use's right-multiply layout (W ≈ V·U, M§1.1).
    The second use computes h·Wᵀ, so it reads V' = Uᵀ [2,C], U' = Vᵀ [C,5] and
    Δ' = Δᵀ; its gradients add into the one pair (autograd does this)."""
    V, U = P["W.V"], P["W.U"]
    delta = Wt - V @ U
    return {"W": (V, U, delta), "W@1": (U.T, V.T, delta.T)}


def ci_fn(P, site, a, V):
    """ci_fn_type mlp (M§2.2): per component c a scalar MLP 1 → H → 1 on
    h_c = a·v_c, exact (erf) GELU between the layers.
    CONVENTION (pdc's layout): W0 [C,1,H], b0 [C,H], W1 [C,H,1], b1 [C,1].
    The input is h = a·V with the CURRENT V (M§2.1: the mlp CI fn backprops
    into V); for the tied use V' = Uᵀ, so it backprops into U."""
    hc = a @ V                                          # [N, C]
    pre = hc.T[:, :, None] @ P[f"ci.{site}.W0"] + P[f"ci.{site}.b0"][:, None, :]  # [C,N,H]
    z = torch.nn.functional.gelu(pre) @ P[f"ci.{site}.W1"] + P[f"ci.{site}.b1"][:, None, :]
    return z[:, :, 0].T                                 # [N, C]


def masked_site(a, fac, m, delta_mask):
    """y = ((a·V) ⊙ m)·U + δ ⊙ (a·Δ) (M§1.2); the bias b is the target's Add,
    outside the decomposed MatMul, so it is never masked (M§1.4)."""
    V, U, D = fac
    return ((a @ V) * m) @ U + delta_mask * (a @ D)


def mse(y, t):
    """M§4.1: Σ (pred − target)² / numel — mean over batch and features."""
    return ((y - t) ** 2).sum() / y.numel()


def spd_step(inp, case, dtype, want_fd=False):
    """Loss terms, total, gradients and the AdamW step for one case. Returns a
    dict of numpy float64 arrays named as in the golden file (without the case
    prefix), plus diagnostics."""
    _, sigmoid_type, p, beta = case
    t = {k: torch.tensor(v, dtype=dtype) for k, v in inp.items()}
    P = {k: t["state/" + k].clone().requires_grad_(True) for k in param_names()}
    x, Wt, b = t["x"], t["target/W"], t["target/b"]

    def forward(P, diag=None):
        # clean target forward: the site inputs feed the CI functions (M§2.1,
        # M§5.4); for "W@1" that is the CLEAN h = x·W, not a masked one
        h_clean = x @ Wt
        y_t = torch.relu(h_clean @ Wt.T + b)
        facs = site_factors(P, Wt)
        site_in = {"W": x, "W@1": h_clean}
        g_lo, g_up, zs = {}, {}, {}
        for s in SITES:
            zs[s] = ci_fn(P, s, site_in[s], facs[s][0])
            g_lo[s], g_up[s] = squash(zs[s], sigmoid_type)
            if diag is not None:
                g_lo[s].retain_grad()
        draws = iter(t[f"draw.{k}"] for k in range(4 * len(SITES)))
        relu_in = []

        def model(masks):
            """the target forward with the sites in `masks` replaced; others
            run the plain target weights (M§3.2 LayerRouter for one site)."""
            a = x
            h = masked_site(a, facs["W"], *masks["W"]) if "W" in masks else a @ Wt
            pre = (masked_site(h, facs["W@1"], *masks["W@1"]) if "W@1" in masks else h @ Wt.T) + b
            relu_in.append(pre)
            return torch.relu(pre)

        def stochastic_masks(s):
            # M§3.1: m = g + (1 − g) ⊙ r, r ~ U(0,1) [B,C]; δ ~ U(0,1) [B,1] (M§1.3),
            # one δ per position and site. g is NOT detached: ∂m/∂g = 1 − r.
            # CONVENTION: draw order = pdc's input-creation order: the m-draw
            # then the δ-draw of each site, sites in order; StochasticRecon's
            # draws first, then StochasticReconLayerwise's (config order).
            r = next(draws)
            dm = next(draws)
            return (g_lo[s] + (1 - g_lo[s]) * r, dm)

        terms = {}
        # M§4.3 importance minimality on g_upper: Σ_sites Σ_c [M + β·M·log2(1+S)],
        # S = Σ_n (g_up + eps)^p, M = S / N. world_size = 1.
        imp = 0
        for s in SITES:
            S = ((g_up[s] + EPS_IMP) ** p).sum(0)
            M = S / g_up[s].shape[0]
            imp = imp + (M + beta * M * torch.log2(1 + S)).sum()
        terms["ImportanceMinimalityLoss"] = imp
        # M§4.4 StochasticRecon: all sites masked in one forward, Δ on, S = 1.
        all_masks = {s: stochastic_masks(s) for s in SITES}
        terms["StochasticReconLoss"] = mse(model(all_masks), y_t)
        # M§4.4 layerwise: one forward per site with only that site masked;
        # Σ over sites of the summed squared errors / total element count,
        # i.e. the mean of the per-site MSEs.
        lw = [mse(model({s: stochastic_masks(s)}), y_t) for s in SITES]
        terms["StochasticReconLayerwiseLoss"] = sum(lw) / len(lw)
        # M§4.2: Σ over decomposed modules of ‖Δ‖² / Σ numel. CONVENTION (as
        # spd: weight_deltas has one entry per module, and a tied weight is two
        # modules): the tied Δ counts twice, over 2·10 entries.
        sq = sum((facs[s][2] ** 2).sum() for s in SITES)
        terms["FaithfulnessLoss"] = sq / sum(facs[s][2].numel() for s in SITES)
        # M§4.9: total = Σ coeff·term.
        # CONVENTION (M§4.1): the recon target is the target model's own output
        # y_t, a constant; S = 1 mask sample (M§3.1, every shipped config);
        # importance N = the B positions of the batch, zero rows included.
        total = (COEFFS["imp"] * terms["ImportanceMinimalityLoss"]
                 + COEFFS["stoch"] * terms["StochasticReconLoss"]
                 + COEFFS["layerwise"] * terms["StochasticReconLayerwiseLoss"]
                 + COEFFS["faith"] * terms["FaithfulnessLoss"])
        if diag is not None:
            diag.update(g_lo=g_lo, z=zs, relu_in=relu_in)
        # M§7.2 CI-L0 per site: mean over positions of Σ_c 1[g_lo > τ], τ = the
        # default ci_alive_threshold 0.1 (pdc logs it as a metric of the step)
        l0 = {s: (g_lo[s] > 0.1).to(dtype).sum(1).mean() for s in SITES}
        return total, terms, l0

    diag = {}
    total, terms, l0 = forward(P, diag)
    total.backward()
    out = {f"metric/loss/{k}": v.detach() for k, v in terms.items()}
    out["metric/loss/total"] = total.detach()
    for s in SITES:
        out[f"metric/l0/{s}"] = l0[s]
    grads = {k: P[k].grad.detach().clone() for k in param_names()}
    for k in param_names():
        out[f"grad/{k}"] = grads[k]
    # one AdamW step with torch's own optimizer (M§5.2): the `next` of every
    # parameter and of both moments (pdc names them adam.m.<p>, adam.v.<p>)
    opt = torch.optim.AdamW([P[k] for k in param_names()], lr=LR, betas=BETAS, eps=ADAM_EPS,
                            weight_decay=0.0)
    opt.step()
    for k in param_names():
        st = opt.state[P[k]]
        out[f"next/{k}"] = P[k].detach().clone()
        out[f"next/adam.m.{k}"] = st["exp_avg"].detach().clone()
        out[f"next/adam.v.{k}"] = st["exp_avg_sq"].detach().clone()
    res = {k: v.numpy().astype(np.float64) for k, v in out.items()}
    extra = {"diag": diag, "grads": grads}
    if want_fd:
        extra["fd"] = finite_differences(forward, t)
    return res, extra


def finite_differences(forward, t):
    """Central differences of the total loss w.r.t. every trainable entry, at
    the C test's step, in this run's dtype (the C test does the same on the
    float32 program)."""
    fd = {}
    with torch.no_grad():
        for k in param_names():
            base = t["state/" + k]
            g = torch.zeros_like(base).reshape(-1)
            for i in range(base.numel()):
                vals = []
                for sgn in (1, -1):
                    P = {n: t["state/" + n].clone() for n in param_names()}
                    P[k].reshape(-1)[i] += sgn * FD_STEP
                    vals.append(forward(P)[0])
                g[i] = (vals[0] - vals[1]) / (2 * FD_STEP)
            fd[k] = g.reshape(base.shape)
    return fd


def param_names():
    names = ["W.V", "W.U"]
    for s in SITES:
        names += [f"ci.{s}.W0", f"ci.{s}.b0", f"ci.{s}.W1", f"ci.{s}.b1"]
    return names


# ---- fixed inputs -------------------------------------------------------------------

def make_inputs(seed, W, b):
    """Everything the program is fed, from one seeded numpy RNG, rounded to
    float32 (what pdc sees); the float64 reference starts from the same values."""
    rng = np.random.default_rng(seed)
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    x = rng.uniform(0.0, 1.0, (B, 5)) * (rng.uniform(0, 1, (B, 5)) < 0.5)
    x[2] = 0.0  # an all-zero row, as sparse data has: it still counts in every mean
    inp = {"x": f32(x), "target/W": f32(W), "target/b": f32(b),
           "state/W.V": f32(rng.normal(0, 1 / math.sqrt(5), (5, C))),
           "state/W.U": f32(rng.normal(0, 1 / math.sqrt(C), (C, 2)))}
    for s in SITES:  # wide enough that z covers z <= 0, (0, 1] and z > 1
        inp[f"state/ci.{s}.W0"] = f32(rng.normal(0, 2.0, (C, 1, H)))
        inp[f"state/ci.{s}.b0"] = f32(rng.normal(0, 0.5, (C, H)))
        inp[f"state/ci.{s}.W1"] = f32(rng.normal(0, 1.0, (C, H, 1)))
        inp[f"state/ci.{s}.b1"] = f32(rng.uniform(-0.6, 1.3, (C, 1)))
    for k in range(len(SITES)):  # StochasticRecon, then the layerwise forwards
        for s in range(len(SITES)):
            n = 2 * (k * len(SITES) + s)
            inp[f"draw.{n}"] = f32(rng.uniform(0, 1, (B, C)))
            inp[f"draw.{n + 1}"] = f32(rng.uniform(0, 1, (B, 1)))
    return inp


def usable(extra, sign_check=True):
    """Reject inputs that would make the test weak or fragile: every squashing
    region must be populated, the sign exception must fire both ways, no value
    may sit near a kink (0 or 1 of the squashing, 0 of the ReLU) where float32
    could take the other branch, and no gradient may be tiny but nonzero
    (AdamW's g/(|g|+eps) is ill-conditioned there)."""
    d = extra["diag"]
    z = torch.cat([d["z"][s].detach().reshape(-1) for s in SITES])
    regions = [(z <= 0).sum(), ((z > 0) & (z <= 1)).sum(), (z > 1).sum()]
    if min(int(r) for r in regions) < 4:
        return False, f"a squashing region nearly empty {[int(r) for r in regions]}"
    margin = min(z.abs().min(), (z - 1).abs().min())
    pre = torch.cat([p.detach().reshape(-1) for p in d["relu_in"]])
    if margin < 1e-3 or pre.abs().min() < 1e-3:
        return False, "a value near a kink"
    up = torch.cat([d["g_lo"][s].grad.reshape(-1) for s in SITES])
    dead = z <= 0
    if sign_check and (int((up[dead] < 0).sum()) < 2 or int((up[dead] > 0).sum()) < 2):
        return False, "sign exception not exercised both ways"
    for k, g in extra["grads"].items():
        a = g.abs()
        if ((a > 0) & (a < 1e-5)).any():
            return False, f"tiny gradient in {k}"
    return True, f"z regions {[int(r) for r in regions]}, kink margin {float(margin):.3g}"


def compare(got, want):
    """max relative error and whether `got` passes the C test's criterion"""
    worst, ok = 0.0, True
    for k, w in want.items():
        g = got[k]
        scale = np.abs(w).max()
        err = np.abs(g - w)
        ok &= bool((err <= RTOL * np.abs(w) + ATOL_REL * scale).all())
        nz = np.abs(w) > ATOL_REL * scale
        if nz.any():
            worst = max(worst, float((err[nz] / np.abs(w[nz])).max()))
    return worst, ok


def check_fd(fd, grads):
    """max |fd - g| / (|g| + 1e-6). FD64 must agree with autograd64 to ~1e-4
    everywhere: then no FD step crosses a kink, and the C test's float32 FD
    differences are float32 noise and truncation only."""
    worst = 0.0
    for k in grads:
        a, f = grads[k].numpy(), fd[k].numpy()
        worst = max(worst, float((np.abs(a - f) / (np.abs(a) + 1e-6)).max()))
    return worst


def fd_passes(fd, grads):
    """the C test's FD criterion, applied to a torch run"""
    worst, ok = 0.0, True
    for k in grads:
        a, f = grads[k].numpy().astype(np.float64), fd[k].numpy().astype(np.float64)
        d = np.abs(a - f)
        ok &= bool((d <= FD_RTOL * np.maximum(np.abs(a), np.abs(f)) + FD_ATOL).all())
        worst = max(worst, float(d.max()))
    return worst, ok


# ---- safetensors writer (no dependency on the safetensors package) ------------------

def write_safetensors(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, arr in tensors.items():
        a = np.ascontiguousarray(arr)
        dt = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64"}[a.dtype]
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(tmp, path)


def pick_seed(W, b):
    """The first seed whose inputs exercise every branch robustly (see usable)
    and whose float64 finite differences at FD_STEP match autograd (so the C
    test's FD check never straddles a kink). Deterministic: same file every run."""
    fd_case = [c for c in CASES if c[0] == FD_CASE][0]
    rejected = {}
    for seed in range(1000):
        inp = make_inputs(seed, W, b)
        _, extra = spd_step(inp, CASES[0], torch.float64)
        ok, why = usable(extra)
        if ok:
            _, fd_extra = spd_step(inp, fd_case, torch.float64, want_fd=True)
            fd_err = check_fd(fd_extra["fd"], fd_extra["grads"])
            ok, why = usable(fd_extra, sign_check=False)
            if ok and fd_err < 1e-4:
                print(f"seeds below {seed} rejected, by reason: {rejected}")
                return seed, inp, f"{why}; FD64 vs autograd64 max rel err {fd_err:.2g}"
            why = why if not ok else "FD64 disagrees"
        reason = why.split(" [")[0].split(" (")[0].split(" in ")[0]
        rejected[reason] = rejected.get(reason, 0) + 1
    sys.exit("spd_golden: no usable seed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    W, b = load_target()

    seed, inp, why = pick_seed(W, b)
    print(f"seed {seed}: {why}")

    tensors = {k: v for k, v in inp.items()}
    meta = {"generator": "tests/gen/spd_golden.py", "torch": torch.__version__,
            "numpy": np.__version__, "seed": str(seed), "rtol": str(RTOL),
            "atol_rel": str(ATOL_REL), "fd_case": FD_CASE,
            "cases": ",".join(c[0] for c in CASES), "coeffs": json.dumps(COEFFS)}
    for case in CASES:
        name, sig, p, beta = case
        ref, _ = spd_step(inp, case, torch.float64)
        f32, f32_extra = spd_step(inp, case, torch.float32, want_fd=name == FD_CASE)
        worst, ok = compare(f32, ref)
        line = f"{name}: torch float32 vs float64 max rel err {worst:.3g} ({'passes' if ok else 'FAILS'} the C criterion)"
        if name == FD_CASE:
            fe, fd_ok = fd_passes(f32_extra["fd"], f32_extra["grads"])
            line += f"; float32 FD vs autograd max |diff| {fe:.3g} ({'passes' if fd_ok else 'FAILS'})"
            ok &= fd_ok
        print(line)
        if not ok:
            sys.exit("spd_golden: float32 torch misses the C test's tolerance "
                     "(golden or FD); the tolerance would be unfair to pdc")
        for k, v in ref.items():
            tensors[f"{name}/{k}"] = np.asarray(v, np.float32)
        # the case's configuration, read by the C test to build its program:
        # [hard?, p, beta, eps, coeff imp, stoch, layerwise, faith, lr]
        tensors[f"{name}/config"] = np.array(
            [1.0 if sig == "hard" else 0.0, p, beta, EPS_IMP, COEFFS["imp"], COEFFS["stoch"],
             COEFFS["layerwise"], COEFFS["faith"], LR], np.float64)
        meta[f"case.{name}"] = json.dumps({"sigmoid_type": sig, "p": p, "beta": beta,
                                           "eps": EPS_IMP, "alpha": ALPHA, "f32_max_rel": worst})
    tensors["fd/config"] = np.array([FD_STEP, FD_RTOL, FD_ATOL], np.float64)
    tensors["check/config"] = np.array([RTOL, ATOL_REL], np.float64)
    write_safetensors(args.out, tensors, meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, {len(tensors)} tensors), "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
