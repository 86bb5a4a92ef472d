#!/usr/bin/env python3
"""vpd_golden.py — golden values for one VPD training step, computed in PyTorch
independently of pdc, for tests/test_vpd_golden.c.

Writes tests/data/vpd_golden.safetensors and tests/data/vpd_golden_seq.onnx (the
target on sequences, for the transformer case): fixed inputs (data batch, factor
and global-CI weights, MLP and transformer, AdamW moments, the persistent
adversarial sources and their Adam moments, every uniform draw, the
subset-routing bits) and, for each case,
the per-step scalars (lr, p, both bias corrections, the source lr and the
source Adam's bias corrections of each ascent), the expected loss metrics, the
gradient of the total loss w.r.t. every trainable state (before clipping), the
gradient-norm metric, the warmup losses and the source gradient of every ascent,
and the value of every state after the step. Three cases: two with the global
shared MLP CI function on models/default.onnx, one ("tf_seq") with the global
shared transformer (M§2.3) on sequences of 3. Reference values are computed in
float64 and stored as float32; the same computation in float32 is run too, to
show that the C test's tolerance is reachable by a correct float32
implementation.

The spec is /work/shared/METHOD.md (cited as "M§x"); the VPD objective is
M§4.9 "VPD Pile 4L" (importance minimality with the frequency term and p
annealing, subset-routed stochastic reconstruction, persistent PGD, faithfulness)
with the step of M§4.7 and the optimisation of M§5.1–5.2. Every convention this
file had to decide is marked "CONVENTION" below.

What the two golden generators share (the venv, the target model, the
squashing functions, the common losses, the tolerance rule, the file writer)
is in golden_common.py.

Usage (uses tests/gen/.venv-torch, creating it as spd_golden.py does):

    python3 tests/gen/vpd_golden.py [--out tests/data/vpd_golden.safetensors]
"""
import json
import math
import sys

import golden_common as gc  # first: re-runs this script in tests/gen/.venv-torch
import numpy as np
import torch
# the shared model pieces by name: the step below reads them as its vocabulary
from golden_common import B, SITES, f32, masked_site, mse, site_factors, squash

# ---- sizes and fixed settings ------------------------------------------------

C = 4            # subcomponents of W (both uses share the factor pair)
H = 6            # global_shared_mlp hidden [6]
D_IN = {"W": 5, "W@1": 2}
STEPS = 20       # the run's length: fractions and schedules are of 20 steps
N_WARM = 2       # PPGD n_warmup_steps (M§4.7)
ALIVE = 0.0      # ci_alive_threshold of the LM/VPD configs (M§13.5), for the L0 metrics

# M§4.3 importance minimality as in the VPD run: p 2.0 → 0.4 linearly over the
# whole run, frequency term β 0.5, eps 1e-12.
IMP = {"p0": 2.0, "final_p": 0.4, "start_frac": 0.0, "end_frac": 1.0, "beta": 0.5,
       "eps": 1e-12}
# Coefficients, per case: distinct, so a term wired to the wrong coefficient
# shows. CONVENTION: not the VPD values. The float32 rounding of Δ = W − V·U
# (~1e-7 absolute, whatever Δ is) enters the factor gradients multiplied by
# ~coeff_faith/10, so a float32 program can match a float64 reference at the
# tolerance only where coeff_faith·1e-8 <= 1e-6·(largest factor gradient): at
# 1e3 only if the faithfulness gradient dominates (factors ~0.1 from faithful:
# it is ~100× the other terms', which still count at ~1e-3 of their size); at
# the VPD 1e7 never. So the lh case uses 1e3 and the hard case 1, where the
# reconstruction terms' gradients on V and U are as large as the faithfulness one.
COEFFS = {
    "lh_clip": {"imp": 0.02, "subset": 0.8, "ppgd": 0.5, "faith": 1e3},
    "hard_noclip": {"imp": 0.05, "subset": 0.6, "ppgd": 0.7, "faith": 1.0},
    "tf_seq": {"imp": 0.02, "subset": 0.8, "ppgd": 0.5, "faith": 1e3},
}
# Main optimiser: AdamW betas (0.9, 0.999), eps 1e-8, wd 0 (M§5.2); lr by the
# schedule of M§5.1: cosine from LR0 to 0.1·LR0, no warmup (the VPD shape; a larger
# lr than 5e-5 so the update itself is visible at the tolerance).
LR_SCHED = (0.05, 0.0, 0.1, "cosine")          # start, warmup_pct, final_frac, fn
ADAMW = (0.9, 0.999, 1e-8)
# Persistent-source Adam (M§4.7): β1 0.5, β2 0.99, eps 1e-8; lr constant after a
# linear warm-up from 0 (VPD: 2.5 % of the run; here 50 % of 20 steps, so that the
# case at step 7 is inside the warm-up and its lr is nontrivial).
SRC_SCHED = (0.1, 0.5, 1.0, "constant")
SRC_ADAM = (0.5, 0.99, 1e-8)
FN_CODE = {"constant": 0, "linear": 1, "cosine": 2}

# Cases: name, sigmoid_type, step, clip mode, CI function. The clip threshold is
# set from the case's own component-gradient norm: CLIP_FRAC of it (clips) or
# CLIP_FRAC·8 (doesn't). The first two cases run on models/default.onnx with the
# global shared MLP; "tf_seq" (otherwise like lh_clip) runs the same target on
# sequences, SEQ_MODEL = x [B_SEQ, T_SEQ, 5] (the same B = B_SEQ·T_SEQ rows, so
# every per-position input is shared with the other cases), with the global
# shared transformer, so that its RoPE and attention mixing act (T > 1).
CASES = [
    ("lh_clip", "leaky_hard", 7, "clip", "mlp"),
    ("hard_noclip", "hard", 1, "noclip", "mlp"),
    ("tf_seq", "leaky_hard", 7, "clip", "transformer"),
]
MLP_CASES = [c for c in CASES if c[4] == "mlp"]

# global_shared_transformer (M§2.3) of the tf_seq case: small, with a rope_base
# small enough that both frequency pairs of a head turn by a visible angle over
# T_SEQ positions (d_head 4: θ_{t,i} = t·4^(−i/2) = t, t/2).
T_SEQ = 3
B_SEQ = B // T_SEQ
SEQ_MODEL = gc.os.path.join(gc.ROOT, "tests", "data", "vpd_golden_seq.onnx")
TF = {"d_model": 8, "n_blocks": 2, "n_heads": 2, "mlp": [12], "rope_base": 4.0, "max_len": 16}
# CONVENTION: the RMS norms' ε is torch's default for the float32 the reference
# trains in, torch.finfo(float32).eps, in the float64 run too (pdc: FLT_EPSILON)
RMS_EPS = float(np.finfo(np.float32).eps)
TF_SEED0 = 1000  # the transformer weights' seeds are searched from here
CLIP_FRAC = 0.5


# ---- schedules (M§5.1, M§4.3) -------------------------------------------------------

def schedule(cfg, step, total):
    """get_scheduled_value: w = int(total·warmup_pct); step < w → start·step/w;
    D = total − w; D ≤ 1 → start; prog = (step − w)/(D − 1); constant / linear /
    cosine to final_frac·start."""
    start, warmup_pct, final, fn = cfg
    w = int(total * warmup_pct)
    if step < w:
        return start * step / w
    D = total - w
    if D <= 1 or fn == "constant":
        return start
    prog = (step - w) / (D - 1)
    if fn == "linear":
        return start * (final + (1 - final) * (1 - prog))
    return start * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * prog)))


def anneal_p(frac):
    p0, fp, s, e = IMP["p0"], IMP["final_p"], IMP["start_frac"], IMP["end_frac"]
    if fp is None or s >= 1.0 or frac < s:
        return p0
    if frac >= e:
        return fp
    return p0 + (fp - p0) * (frac - s) / (e - s)


def case_scalars(step):
    """The values the runtime feeds at training step `step` (0-based): lr and p
    of the schedules at fraction step/STEPS; the AdamW bias corrections at the
    1-based optimizer step t = step + 1 (torch form: 1 − β1^t and √(1 − β2^t));
    the source lr; the source Adam's at t = step·(N_WARM+1) + j + 1 for ascent j
    = 0..N_WARM (M§4.7: a global counter, +1 per ascent, N_WARM+1 ascents per step)."""
    t = step + 1
    sc = {"lr": schedule(LR_SCHED, step, STEPS), "p": anneal_p(step / STEPS),
          "bias_correction1": 1 - ADAMW[0] ** t, "bias_correction2": math.sqrt(1 - ADAMW[1] ** t),
          "src_lr": schedule(SRC_SCHED, step, STEPS)}
    for j in range(N_WARM + 1):
        ts = step * (N_WARM + 1) + j + 1
        sfx = f".{j}" if j else ""
        sc["src_bias_correction1" + sfx] = 1 - SRC_ADAM[0] ** ts
        sc["src_bias_correction2" + sfx] = math.sqrt(1 - SRC_ADAM[1] ** ts)
    return sc


# ---- model pieces ----------------------------------------------------------------

def tf_shapes():
    """the transformer's parameters as pdc names and lays them out (y = x·W + b,
    W [d_in, d_out]; attention q/k/v/o [D, D] without bias; MLP layers mlp.0..)"""
    D, ctot = TF["d_model"], C * len(SITES)
    sh = {"proj_in.W": (sum(D_IN.values()), D), "proj_in.b": (D,)}
    for k in range(TF["n_blocks"]):
        for w in "qkvo":
            sh[f"block{k}.attn.{w}"] = (D, D)
        dims = [D] + TF["mlp"] + [D]
        for j in range(len(dims) - 1):
            sh[f"block{k}.mlp.{j}.W"] = (dims[j], dims[j + 1])
            sh[f"block{k}.mlp.{j}.b"] = (dims[j + 1],)
    sh["proj_out.W"] = (D, ctot)
    sh["proj_out.b"] = (ctot,)
    return {"ci.transformer." + k: v for k, v in sh.items()}


def param_names(case=None):
    """the trainable states of a case: the factor pair and its CI function's"""
    if case is not None and case[4] == "transformer":
        return ["W.V", "W.U"] + list(tf_shapes())
    return ["W.V", "W.U", "ci.global.W0", "ci.global.b0", "ci.global.W1", "ci.global.b1"]


COMPONENT_PARAMS = ["W.V", "W.U"]


def global_ci(P, site_in):
    """global_shared_mlp (M§2.3): the raw clean site inputs concatenated in
    alphabetical site order ("W" < "W@1"), Linear → exact GELU → Linear to Σ C,
    split back per site. CONVENTION (pdc's names/layout): W0 [Σd_in, H], b0 [H],
    W1 [H, ΣC], b1 [ΣC], y = x·W + b."""
    order = sorted(SITES)
    a = torch.cat([site_in[s] for s in order], dim=-1)
    hid = torch.nn.functional.gelu(a @ P["ci.global.W0"] + P["ci.global.b0"])
    z = hid @ P["ci.global.W1"] + P["ci.global.b1"]
    return dict(zip(order, torch.split(z, [C] * len(order), dim=-1)))


def rms_norm(v):
    """weightless RMS norm over the last axis (M§2.3): v / √(mean(v²) + ε)"""
    return v / torch.sqrt((v * v).mean(-1, keepdim=True) + RMS_EPS)


def rope(q):
    """split-half RoPE on q [B, T, H, d_h] (M§2.3): θ_{t,i} = t·base^(−2i/d_h),
    i < d_h/2; [x1, x2] → [x1 cos θ − x2 sin θ, x1 sin θ + x2 cos θ]"""
    T, dh = q.shape[1], q.shape[3]
    i = torch.arange(dh // 2, dtype=torch.float64)
    th = torch.arange(T, dtype=torch.float64)[:, None] * TF["rope_base"] ** (-2 * i / dh)
    cos, sin = th.cos().to(q.dtype)[:, None, :], th.sin().to(q.dtype)[:, None, :]  # [T, 1, dh/2]
    x1, x2 = q[..., :dh // 2], q[..., dh // 2:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def global_ci_tf(P, site_in):
    """global_shared_transformer (M§2.3) on the B rows seen as [B_SEQ, T_SEQ]:
    per-site weightless RMS norm, concatenation in sorted site order, proj_in;
    n_blocks pre-norm blocks x += Attn(rms(x)), x += MLP(rms(x)) with
    bidirectional multi-head attention (RoPE on q and k, scale 1/√d_h, no
    biases) and a GELU MLP with biases; proj_out; split per site."""
    pre = "ci.transformer."
    D, nh = TF["d_model"], TF["n_heads"]
    dh = D // nh
    order = sorted(SITES)
    a = torch.cat([rms_norm(site_in[s]) for s in order], dim=-1)
    x = (a @ P[pre + "proj_in.W"] + P[pre + "proj_in.b"]).reshape(B_SEQ, T_SEQ, D)
    for k in range(TF["n_blocks"]):
        blk = f"{pre}block{k}."
        h = rms_norm(x)
        q, kk, v = (h @ P[blk + f"attn.{w}"] for w in "qkv")
        q, kk, v = (t_.reshape(B_SEQ, T_SEQ, nh, dh) for t_ in (q, kk, v))
        q, kk = rope(q), rope(kk)
        s = torch.einsum("bthd,bshd->bhts", q, kk) / math.sqrt(dh)
        o = torch.einsum("bhts,bshd->bthd", torch.softmax(s, dim=-1), v)
        x = x + o.reshape(B_SEQ, T_SEQ, D) @ P[blk + "attn.o"]
        h = rms_norm(x)
        for j in range(len(TF["mlp"])):
            h = torch.nn.functional.gelu(h @ P[blk + f"mlp.{j}.W"] + P[blk + f"mlp.{j}.b"])
        j = len(TF["mlp"])
        x = x + h @ P[blk + f"mlp.{j}.W"] + P[blk + f"mlp.{j}.b"]
    z = (x @ P[pre + "proj_out.W"] + P[pre + "proj_out.b"]).reshape(B, C * len(order))
    return dict(zip(order, torch.split(z, [C] * len(order), dim=-1)))


def adam_ascent(s, g, m, v, lr, t):
    """M§4.7 AdamPGDOptimizer: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
    s ← clamp(s + lr·m̂/(√v̂ + eps), 0, 1), m̂ = m/(1−β1^t), v̂ = v/(1−β2^t).
    Returns (s', m', v', the pre-clamp value)."""
    b1, b2, eps = SRC_ADAM
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    mh = m / (1 - b1 ** t)
    vh = v / (1 - b2 ** t)
    pre = s + lr * mh / (vh.sqrt() + eps)
    return pre.clamp(0.0, 1.0), m, v, pre


# ---- one VPD step ----------------------------------------------------------------

def vpd_step(inp, case, dtype, clip):
    """Everything one training step produces, for one case, in `dtype`.
    Returns (dict of numpy float64 arrays named as in the golden file without
    the case prefix, diagnostics)."""
    name, sigmoid_type, step, _, ci_kind = case
    cf = COEFFS[name]
    pnames = param_names(case)
    sc = {k: float(np.float32(v)) for k, v in case_scalars(step).items()}  # as fed (float32)
    t, P = gc.step_tensors(inp, dtype, pnames)
    x, Wt, b = t["x"], t["target/W"], t["target/b"]
    diag = {"relu_in": [], "pre_clamp": []}

    # clean target forward; its site inputs feed the CI function (M§2.1, M§4.7)
    h_clean, pre_t = gc.target_forward(x, Wt, b)
    y_t = torch.relu(pre_t)
    diag["relu_in"].append(pre_t)
    facs = site_factors(P, Wt)
    z = (global_ci_tf if ci_kind == "transformer" else global_ci)(P, {"W": x, "W@1": h_clean})
    g_lo, g_up = {}, {}
    for s in SITES:
        g_lo[s], g_up[s] = squash(z[s], sigmoid_type)
        g_lo[s].retain_grad()
    diag["z"] = z
    diag["g_lo"] = g_lo

    def model(masks, route=None, facs=facs):
        """the target forward with every site replaced by its masked form; with
        `route`, a position whose bit is 0 runs the plain target weight on the
        site's current (possibly perturbed) input instead (M§1.2, M§3.2)."""
        a = x
        yW = masked_site(a, facs["W"], *masks["W"])
        if route is not None:
            yW = torch.where(route["W"] > 0, yW, a @ Wt)
        y1 = masked_site(yW, facs["W@1"], *masks["W@1"])
        if route is not None:
            y1 = torch.where(route["W@1"] > 0, y1, yW @ Wt.T)
        pre = y1 + b
        diag["relu_in"].append(pre)
        return torch.relu(pre)

    taps = {}
    # M§4.3 with the frequency term and the annealed p of this step
    terms = {"ImportanceMinimalityLoss": gc.importance_minimality(g_up, sc["p"], IMP["beta"],
                                                                  IMP["eps"])}

    # M§4.4 StochasticReconSubsetLoss, UniformKSubset routing, S = 1, Δ on:
    # m = g + (1−g)·r, δ ~ U(0,1) per position (M§3.1, M§1.3), g not detached.
    # CONVENTION: draw order = pdc's input order (the m-draw then the δ-draw of
    # each site, sites in order); the routing bits are one [B,1] 0/1 array per
    # site ("route.0.<site index>"), drawn here by the uniform-k rule.
    sub_masks = {}
    for i, s in enumerate(SITES):
        r, dl = t[f"draw.{2 * i}"], t[f"draw.{2 * i + 1}"]
        sub_masks[s] = (g_lo[s] + (1 - g_lo[s]) * r, dl)
    route = {s: t[f"route.0.{i}"] for i, s in enumerate(SITES)}
    terms["StochasticReconSubsetLoss"] = mse(model(sub_masks, route), y_t)

    # M§4.7 persistent PGD, per_batch_per_position sources [B, C+1] per site.
    def adv_masks(g, src):
        # M§3.4: m = g + (1−g)·s[.., :C], δ = s[.., C]
        return {s: (g[s] + (1 - g[s]) * src[s][:, :C], src[s][:, C:]) for s in SITES}

    src = {s: t[f"state/ppgd.{s}.source"].clone() for s in SITES}
    sm = {s: t[f"state/ppgd.{s}.m"].clone() for s in SITES}
    sv = {s: t[f"state/ppgd.{s}.v"].clone() for s in SITES}
    t0 = step * (N_WARM + 1)
    g_const = {s: g_lo[s].detach() for s in SITES}
    facs_const = {s: tuple(f.detach() for f in facs[s]) for s in SITES}
    for j in range(N_WARM):
        # warmup ascent j on this batch: components and CI constants, gradient
        # w.r.t. the sources only, all-layers routing (M§3.2, M§4.7)
        leaf = {s: src[s].clone().requires_grad_(True) for s in SITES}
        L = mse(model(adv_masks(g_const, leaf), facs=facs_const), y_t)
        gs = torch.autograd.grad(L, [leaf[s] for s in SITES])
        taps[f"ppgd.loss.{j}"] = L.detach()
        for s, g in zip(SITES, gs):
            taps[f"ppgd.grad.{j}.{s}"] = g
            src[s], sm[s], sv[s], pre = adam_ascent(src[s], g, sm[s], sv[s], sc["src_lr"],
                                                    t0 + j + 1)
            diag["pre_clamp"].append(pre)
    # L_ppgd on the post-warmup sources: live graph to V, U and the CI function;
    # the sources are constants of the main optimisation (a detached leaf here, so
    # that ∂L_ppgd/∂s can be read off the same graph)
    leaf = {s: src[s].detach().clone().requires_grad_(True) for s in SITES}
    L_ppgd = mse(model(adv_masks(g_lo, leaf)), y_t)
    terms["PersistentPGDReconLoss"] = L_ppgd

    # M§4.2 faithfulness; the tied Δ counts twice, as in spd_golden.py
    terms["FaithfulnessLoss"] = gc.faithfulness(facs)

    # M§4.9 total, in config order
    total = (cf["imp"] * terms["ImportanceMinimalityLoss"]
             + cf["subset"] * terms["StochasticReconSubsetLoss"]
             + cf["ppgd"] * terms["PersistentPGDReconLoss"]
             + cf["faith"] * terms["FaithfulnessLoss"])
    # grad_s = ∂L_ppgd/∂s on the same graph, pre-update components (M§4.7)
    gs_final = torch.autograd.grad(L_ppgd, [leaf[s] for s in SITES], retain_graph=True)
    total.backward()
    grads = {k: P[k].grad.detach().clone() for k in pnames}

    out = {f"metric/loss/{k}": v.detach() for k, v in terms.items()}
    out["metric/loss/total"] = total.detach()
    l0 = gc.ci_l0(g_lo, ALIVE, dtype)
    for s in SITES:
        out[f"metric/l0/{s}"] = l0[s]
    for k in pnames:
        out[f"grad/{k}"] = grads[k]

    # M§5.2: global-norm clip of the component gradients only (torch's own
    # clip_grad_norm_: scale min(1, clip/(‖g‖ + 1e-6))), then AdamW with torch's own
    # optimizer on every parameter, its moments preloaded from the state at
    # optimizer step `step` (it counts to step + 1)
    norm = torch.nn.utils.clip_grad_norm_([P[k] for k in COMPONENT_PARAMS], clip)
    out["metric/grad_norm/components"] = norm.detach()
    opt = torch.optim.AdamW([P[k] for k in pnames], lr=sc["lr"], betas=ADAMW[:2],
                            eps=ADAMW[2], weight_decay=0.0)
    for k in pnames:
        opt.state[P[k]] = {"step": torch.tensor(float(step)),
                           "exp_avg": t[f"state/adam.m.{k}"].clone(),
                           "exp_avg_sq": t[f"state/adam.v.{k}"].clone()}
    opt.step()
    gc.adamw_next(opt, P, pnames, out)

    # the final ascent (index N_WARM) with ∂L_ppgd/∂s from the same backward
    for s, g in zip(SITES, gs_final):
        taps[f"ppgd.grad.{N_WARM}.{s}"] = g
        src[s], sm[s], sv[s], pre = adam_ascent(src[s], g, sm[s], sv[s], sc["src_lr"],
                                                t0 + N_WARM + 1)
        diag["pre_clamp"].append(pre)
        out[f"next/ppgd.{s}.source"] = src[s]
        out[f"next/ppgd.{s}.m"] = sm[s]
        out[f"next/ppgd.{s}.v"] = sv[s]
    for k, v in taps.items():
        out[f"tap/{k}"] = v
    diag["grads"] = grads
    diag["norm"] = float(norm)
    res = {k: v.detach().numpy().astype(np.float64) for k, v in out.items()}
    return res, diag


# ---- fixed inputs -------------------------------------------------------------------

def route_bits(rng):
    """UniformKSubset (M§3.2) per position: k ~ U{1..M}, a random order of the M
    sites, the first k routed: ranks = argsort(argsort(u)), route = ranks < k."""
    M = len(SITES)
    k = rng.integers(1, M + 1, size=B)
    ranks = np.argsort(np.argsort(rng.uniform(0, 1, (B, M)), axis=1), axis=1)
    return (ranks < k[:, None]).astype(np.float64)  # [B, M]


def make_inputs(seed, W, b):
    """Everything the program is fed, from one seeded numpy RNG, rounded to
    float32 (what pdc sees); the moments are unit-scale here (scaled later)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (B, 5)) * (rng.uniform(0, 1, (B, 5)) < 0.6)
    # factors ~0.05 per entry away from an exact factorisation V·U = W (as
    # after a faithfulness warmup): V = W·U⁺ + Z·(I − U·U⁺) gives V·U = W for any Z
    U = rng.normal(0, 1 / math.sqrt(C), (C, 2))
    Up = np.linalg.pinv(U)
    V = W @ Up + rng.normal(0, 1 / math.sqrt(5), (5, C)) @ (np.eye(C) - U @ Up)
    V += rng.normal(0, 0.05, V.shape)
    U += rng.normal(0, 0.05, U.shape)
    inp = {"x": f32(x), "target/W": f32(W), "target/b": f32(b), "state/W.V": f32(V),
           "state/W.U": f32(U)}
    din = sum(D_IN.values())
    inp["state/ci.global.W0"] = f32(rng.normal(0, 2.0 / math.sqrt(din), (din, H)))
    inp["state/ci.global.b0"] = f32(rng.normal(0, 0.5, (H,)))
    inp["state/ci.global.W1"] = f32(rng.normal(0, 1.0, (H, C * len(SITES))))
    inp["state/ci.global.b1"] = f32(rng.uniform(-0.6, 1.3, (C * len(SITES),)))
    for s in SITES:
        src = rng.uniform(0, 1, (B, C + 1))
        u = rng.uniform(0, 1, src.shape)
        src[u < 0.08] = 0.0  # sources already at the bounds, as clamped ascents leave them
        src[u > 0.92] = 1.0
        inp[f"state/ppgd.{s}.source"] = f32(src)
        inp[f"unit/ppgd.{s}.m"] = rng.normal(0, 1, src.shape)
        inp[f"unit/ppgd.{s}.v"] = rng.uniform(0.5, 2.0, src.shape)
    for k in param_names():
        shape = inp["state/" + k].shape
        inp[f"unit/adam.m.{k}"] = rng.normal(0, 1, shape)
        inp[f"unit/adam.v.{k}"] = rng.uniform(0.5, 2.0, shape)
    for i in range(len(SITES)):  # the subset loss's draws, pdc's order
        inp[f"draw.{2 * i}"] = f32(rng.uniform(0, 1, (B, C)))
        inp[f"draw.{2 * i + 1}"] = f32(rng.uniform(0, 1, (B, 1)))
    rb = route_bits(rng)
    for i in range(len(SITES)):
        inp[f"route.0.{i}"] = f32(rb[:, i:i + 1])
    set_moments(inp, {k: 0.01 for k in param_names()}, {s: 0.01 for s in SITES})
    return inp


def set_moments(inp, gscale, sscale):
    """Moments consistent with a gradient history of the given rms scale: m ~
    N(0, (scale/2)²), v = (1 − β2^t0)·scale²·U(0.5, 2) so that v̂ ≈ scale², t0 the
    optimizer steps before the lh case's step (7 main, 21 source ascents)."""
    step = CASES[0][2]
    for k, sgm in gscale.items():
        inp[f"state/adam.m.{k}"] = f32(0.5 * sgm * inp[f"unit/adam.m.{k}"])
        inp[f"state/adam.v.{k}"] = f32((1 - ADAMW[1] ** step) * sgm ** 2 * inp[f"unit/adam.v.{k}"])
    ts = step * (N_WARM + 1)
    for s, sgm in sscale.items():
        inp[f"state/ppgd.{s}.m"] = f32(0.5 * sgm * inp[f"unit/ppgd.{s}.m"])
        inp[f"state/ppgd.{s}.v"] = f32((1 - SRC_ADAM[1] ** ts) * sgm ** 2 * inp[f"unit/ppgd.{s}.v"])


def rms(a):
    a = np.asarray(a, np.float64)
    return float(np.sqrt((a ** 2).mean()))


def fit_moments(inp):
    """rescale the moments to the gradients this batch produces (lh case)"""
    res, _ = vpd_step(inp, CASES[0], torch.float64, 1e9)
    gscale = {k: max(rms(res[f"grad/{k}"]), 1e-4) for k in param_names()}
    sscale = {s: max(rms(np.concatenate([res[f"tap/ppgd.grad.{j}.{s}"]
                                         for j in range(N_WARM + 1)])), 1e-4) for s in SITES}
    set_moments(inp, gscale, sscale)


def usable(diag, case, sign_check):
    """Reject inputs that would make the test weak or fragile: every squashing
    region populated; no CI pre-activation, ReLU input or pre-clamp source value
    near a kink (float32 could take the other branch); for leaky_hard, the sign
    exception exercised both ways; some source ascents actually clamped."""
    z, regions = gc.squash_regions(diag["z"])
    if min(regions) < 4:
        return False, f"a squashing region nearly empty {regions}"
    zm = float(min(z.abs().min(), (z - 1).abs().min()))
    pre = torch.cat([p.detach().reshape(-1) for p in diag["relu_in"]])
    pc = torch.cat([p.detach().reshape(-1) for p in diag["pre_clamp"]])
    cm = float(min(pc.abs().min(), (pc - 1).abs().min()))
    if zm < 5e-3 or float(pre.abs().min()) < 1e-3 or cm < 1e-4:
        return False, "a value near a kink"
    clamped = int(((pc < 0) | (pc > 1)).sum())
    if clamped < 3:
        return False, "too few clamped source updates"
    if sign_check and not gc.sign_exception_both_ways(diag["g_lo"], z):
        return False, "sign exception not exercised both ways"
    return True, (f"z regions {regions}, kink margins: z {zm:.3g}, relu "
                  f"{float(pre.abs().min()):.3g}, clamp {cm:.3g}; {clamped} clamped source updates")


def routes_ok(inp):
    rb = np.concatenate([inp[f"route.0.{i}"] for i in range(len(SITES))], axis=1)
    pats = {tuple(r) for r in rb.astype(int)}
    return (rb.sum(1) >= 1).all() and len(pats) == 3  # W only, W@1 only, both


def clip_for(case, inp):
    """the case's clip threshold: CLIP_FRAC of its own component-gradient norm
    (clips) or 8× that (no clipping), rounded to 2 significant digits"""
    res, _ = vpd_step(inp, case, torch.float64, 1e9)
    norm = float(res["metric/grad_norm/components"])
    c = CLIP_FRAC * norm * (1 if case[3] == "clip" else 8)
    return float(f"{c:.2g}"), norm


def pick_seed(W, b):
    """The first seed whose inputs exercise every branch robustly in both cases
    (see usable). Deterministic: same file every run."""
    rejected = {}
    for seed in range(2000):
        inp = make_inputs(seed, W, b)
        why = "routing patterns incomplete"
        ok = routes_ok(inp)
        if ok:
            ok = np.abs(inp["state/W.V"]).max() <= 1.5
            why = "V badly conditioned"
        if ok:
            fit_moments(inp)
            notes = []
            for case in MLP_CASES:
                _, diag = vpd_step(inp, case, torch.float64, 1e9)
                ok, why = usable(diag, case, case[1] == "leaky_hard")
                if not ok:
                    break
                notes.append(f"{case[0]}: {why}")
            if ok:
                print(f"seeds below {seed} rejected, by reason: {rejected}")
                return seed, inp, "; ".join(notes)
        gc.tally(rejected, why)
    sys.exit("vpd_golden: no usable seed")


def tol_used(got, want):
    """the largest share of the C test's tolerance that `got` uses"""
    used = 0.0
    for k, w in want.items():
        lim = gc.RTOL * np.abs(w) + gc.ATOL_REL * np.abs(w).max()
        err = np.abs(got[k] - w)
        used = max(used, float((err / np.maximum(lim, 1e-300)).max()))
    return used


def add_tf_inputs(inp):
    """The transformer case's own inputs, added to the shared ones (which stay
    as pick_seed chose them, so the MLP cases do not change): the transformer's
    weights (random, biases nonzero) and AdamW moments fitted to its gradients,
    from the first seed >= TF_SEED0 whose weights pass `usable` for the case.
    Returns a note on the choice."""
    case = CASES[-1]
    rejected = {}
    for seed in range(TF_SEED0, TF_SEED0 + 2000):
        rng = np.random.default_rng(seed)
        new = {}
        for k, sh in tf_shapes().items():
            if k.endswith("proj_out.b"):
                v = rng.uniform(-0.6, 1.3, sh)
            elif len(sh) == 1:
                v = rng.normal(0, 0.3, sh)
            elif k.endswith("proj_out.W"):
                v = rng.normal(0, 1.0 / math.sqrt(sh[0]), sh)
            elif ".attn." in k and k[-1] in "qk":  # sharp enough to make attention uneven
                v = rng.normal(0, 1.0 / math.sqrt(sh[0]), sh)
            else:
                v = rng.normal(0, 1.0 / math.sqrt(sh[0]), sh)
            new["state/" + k] = f32(v)
            new[f"unit/adam.m.{k}"] = rng.normal(0, 1, sh)
            new[f"unit/adam.v.{k}"] = rng.uniform(0.5, 2.0, sh)
        set_moments(new, {k: 0.01 for k in tf_shapes()}, {})  # placeholders until fitted
        trial = dict(inp, **new)
        res, diag = vpd_step(trial, case, torch.float64, 1e9)
        ok, why = usable(diag, case, True)
        if ok:
            set_moments(trial, {k: max(rms(res[f"grad/{k}"]), 1e-4) for k in tf_shapes()}, {})
            # the attention's q/k gradients are small differences (softmax): some
            # weights leave them below what float32 resolves at the C tolerance
            clip, _ = clip_for(case, trial)
            used = tol_used(vpd_step(trial, case, torch.float32, clip)[0],
                            vpd_step(trial, case, torch.float64, clip)[0])
            ok = used <= 0.5  # a margin: pdc's float32 rounds differently from torch's
            why = f"{why}; float32 torch uses {used:.2f} of the tolerance" if ok else \
                "float32 torch uses over half the tolerance"
        if ok:
            inp.update({k: trial[k] for k in new if k.startswith("state/")})
            print(f"transformer seeds below {seed} rejected, by reason: {rejected}")
            return f"transformer seed {seed}: {why}"
        gc.tally(rejected, why)
    sys.exit("vpd_golden: no usable transformer seed")


def write_seq_model(path):
    """SEQ_MODEL: models/default.onnx with x and y [batch, T_SEQ, 5]; its MatMuls
    and Add broadcast over the extra axis, so the target is the same per row"""
    m = gc.onnx.load(gc.MODEL)
    for vi in list(m.graph.input) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        last = dims[-1].dim_value
        del dims[1:]
        dims.add().dim_value = T_SEQ
        dims.add().dim_value = last
    m.doc_string = "vpd_golden.py: models/default.onnx on sequences [batch, %d, 5]" % T_SEQ
    gc.onnx.checker.check_model(m)
    with open(path, "wb") as f:
        f.write(m.SerializeToString(deterministic=True))


def case_config(case, clip):
    """the case's configuration, read by the C test to build its program
    (field order: the CF_* enum of tests/test_vpd_golden.c)"""
    name, sig, step, _, ci_kind = case
    cf = COEFFS[name]
    tf = ci_kind == "transformer"
    return np.array([
        1.0 if sig == "hard" else 0.0, step, STEPS, clip,
        cf["imp"], IMP["p0"], IMP["final_p"], IMP["start_frac"], IMP["end_frac"],
        IMP["beta"], IMP["eps"],
        cf["subset"],
        cf["ppgd"], N_WARM, SRC_SCHED[0], SRC_SCHED[1], SRC_SCHED[2],
        FN_CODE[SRC_SCHED[3]], SRC_ADAM[0], SRC_ADAM[1], SRC_ADAM[2],
        cf["faith"],
        LR_SCHED[0], LR_SCHED[1], LR_SCHED[2], FN_CODE[LR_SCHED[3]],
        C, H, ALIVE, B,
        1.0 if tf else 0.0, T_SEQ if tf else 1, TF["d_model"] if tf else 0,
        TF["n_blocks"] if tf else 0, TF["n_heads"] if tf else 0, TF["mlp"][0] if tf else 0,
        TF["rope_base"] if tf else 0, TF["max_len"] if tf else 0], np.float64)


def main():
    out, seed, inp = gc.begin("vpd_golden", __doc__, pick_seed)
    print(add_tf_inputs(inp))
    write_seq_model(SEQ_MODEL)
    tensors = {k: v for k, v in inp.items() if not k.startswith("unit/")}
    meta = gc.base_meta("vpd_golden", seed)
    meta.update({"cases": ",".join(c[0] for c in CASES), "coeffs": json.dumps(COEFFS),
                 "transformer": json.dumps(TF), "seq_model": "tests/data/vpd_golden_seq.onnx"})
    for case in CASES:
        name, sig, step, mode, ci_kind = case
        clip, norm = clip_for(case, inp)
        ref, _ = vpd_step(inp, case, torch.float64, clip)
        f32_run, _ = vpd_step(inp, case, torch.float32, clip)
        worst, ok = gc.compare(f32_run, ref)
        print(f"{name}: step {step}, component grad norm {norm:.4g}, clip {clip:g} "
              f"({'clips' if clip < norm else 'no clipping'}); torch float32 vs float64 max rel "
              f"err {worst:.3g} ({'passes' if ok else 'FAILS'} the C criterion)")
        if not ok:
            sys.exit("vpd_golden: float32 torch misses the C test's tolerance; the tolerance "
                     "would be unfair to pdc")
        gc.store_case(tensors, name, ref)
        for k, v in case_scalars(step).items():
            tensors[f"{name}/scalar/{k}"] = np.array([v], np.float64)
        tensors[f"{name}/config"] = case_config(case, clip)
        meta[f"case.{name}"] = json.dumps({"sigmoid_type": sig, "ci_fn": ci_kind,
                                           "step": step, "steps": STEPS,
                                           "clip": clip, "grad_norm": norm,
                                           "f32_max_rel": worst})
    gc.finish(out, tensors, meta)


if __name__ == "__main__":
    main()
