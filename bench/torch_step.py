#!/usr/bin/env python3
"""torch_step.py — the SPD/VPD training step of pdc written the PyTorch way
(eager mode, autograd, torch.optim.AdamW), for bench/train_step.

It reads the problem from a pdc decomposition folder (DIR/decomposition.json:
the model path, the sites with their ONNX nodes and C, the resolved config), so
the step is the same problem pdc solves: the same ONNX weights (read with
onnx.numpy_helper), the same sites, batch, CI function, squashings and losses.
The target model is run by a small ONNX interpreter (the ops of the toy and
tiny-LM targets); a site's MatMul is replaced by its masked form. What differs
from pdc is only the random numbers (torch's generator, not Philox).

The math is /work/shared/METHOD.md (cited M§x): the masked site M§1.2, CI
functions M§2.2 (mlp) and M§2.3 (global_shared_transformer), squashings M§2.4,
stochastic masks and routing M§3.1–3.2, adversarial masks M§3.4, losses M§4
(importance minimality with p annealing and the frequency term, stochastic
recon all-layers / layerwise / subset, persistent PGD with its warmup ascents,
faithfulness; MSE or KL), AdamW with the component-gradient clip M§5.2.

Usage (re-runs itself in a venv with torch, numpy and onnx; see find_venv):

    python3 bench/torch_step.py --decomp DIR [--data tokens.bin --seq 64]
        [--threads 2] [--seconds 30] [--segments 5] [--json OUT] [--check]

Exit status 3: no torch venv could be found or made (the caller reports the
PyTorch column as skipped).
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SKIP = 3


def venv_candidates():
    """tests/gen/.venv-torch of this checkout and of the main worktree (a git
    worktree shares it by path only), then bench/.venv-torch"""
    c = [os.path.join(ROOT, "tests", "gen", ".venv-torch")]
    try:
        common = subprocess.run(["git", "-C", ROOT, "rev-parse", "--git-common-dir"],
                                capture_output=True, text=True, check=True).stdout.strip()
        main = os.path.dirname(os.path.abspath(os.path.join(ROOT, common)))
        c.append(os.path.join(main, "tests", "gen", ".venv-torch"))
    except (OSError, subprocess.CalledProcessError):
        pass
    c.append(os.path.join(HERE, ".venv-torch"))
    return c


def ensure_venv():
    """Re-exec inside a venv that imports torch, numpy and onnx; create
    bench/.venv-torch with pip when none does. Exit SKIP if that fails."""
    if os.environ.get("PDC_BENCH_IN_VENV") == "1":
        return
    for v in venv_candidates():
        py = os.path.join(v, "bin", "python")
        if os.path.exists(py) and subprocess.run(
                [py, "-c", "import torch, numpy, onnx"], capture_output=True).returncode == 0:
            break
    else:
        v = os.path.join(HERE, ".venv-torch")
        py = os.path.join(v, "bin", "python")
        print(f"torch_step: creating {v} (torch, numpy, onnx from PyPI)", file=sys.stderr)
        try:
            if not os.path.exists(py):
                subprocess.check_call([sys.executable, "-m", "venv", v])
            subprocess.check_call([py, "-m", "pip", "install", "--quiet", "torch", "numpy", "onnx"])
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"torch_step: skipped: no venv with torch ({e})", file=sys.stderr)
            sys.exit(SKIP)
    os.environ["PDC_BENCH_IN_VENV"] = "1"
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


ensure_venv()

import argparse  # noqa: E402
import fnmatch  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from onnx import numpy_helper  # noqa: E402

RMS_EPS = float(np.finfo(np.float32).eps)  # weightless RMS norm ε (M§2.3; pdc: FLT_EPSILON)


# ---- squashing functions (M§2.4): tests/gen/leaky_hard.py, shared with the golden steps

sys.path.insert(0, os.path.join(ROOT, "tests", "gen"))
from leaky_hard import squash  # noqa: E402


# ---- the target model: a small ONNX interpreter -------------------------------------

class Target:
    """The ONNX graph run op by op in torch. `forward(feeds, site)` calls
    site(name, x, W) for every decomposed MatMul (W: the weight as that node
    reads it, transposed for a tied second use) and returns the outputs."""

    def __init__(self, path, sites):
        m = onnx.load(path)
        self.init = {}
        for t in m.graph.initializer:
            a = numpy_helper.to_array(t)
            self.init[t.name] = torch.from_numpy(np.array(a, np.float32 if a.dtype.kind == "f"
                                                          else a.dtype))
        self.nodes = [(n.op_type, list(n.input), list(n.output),
                       {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}, n.name)
                      for n in m.graph.node]
        self.inputs = [i.name for i in m.graph.input if i.name not in self.init]
        self.output = m.graph.output[0].name
        self.in_dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
        self.site_of = {s["node"]: s["name"] for s in sites}

    def forward(self, feeds, site):
        env = dict(self.init)
        env.update(feeds)
        for op, ins, outs, at, name in self.nodes:
            a = [env[i] if i else None for i in ins]
            if op == "MatMul" and name in self.site_of:
                y = site(self.site_of[name], a[0], a[1])
            else:
                y = OPS[op](a, at)
            env[outs[0]] = y
        return env[self.output]


def _reshape(a, at):
    shape = [a[0].shape[i] if s == 0 else int(s) for i, s in enumerate(a[1].tolist())]
    return a[0].reshape(shape)


def _unsqueeze(a, at):
    x = a[0]
    for ax in sorted(int(v) for v in a[1].tolist()):
        x = x.unsqueeze(ax)
    return x


def _cumsum(a, at):
    ax = int(a[1])
    y = torch.cumsum(a[0], ax)
    return y - a[0] if at.get("exclusive", 0) else y


OPS = {
    "MatMul": lambda a, at: torch.matmul(a[0], a[1]),
    "Add": lambda a, at: a[0] + a[1],
    "Mul": lambda a, at: a[0] * a[1],
    "Relu": lambda a, at: torch.relu(a[0]),
    "Transpose": lambda a, at: a[0].permute(*(at.get("perm") or reversed(range(a[0].dim())))),
    "Reshape": _reshape,
    "Unsqueeze": _unsqueeze,
    "CumSum": _cumsum,
    "Gather": lambda a, at: torch.index_select(a[0], at.get("axis", 0), a[1].reshape(-1))
    .reshape(tuple(a[1].shape) + tuple(a[0].shape[1:])),
    "Greater": lambda a, at: a[0] > a[1],
    "Cast": lambda a, at: a[0].to(torch.float32),
    "Softmax": lambda a, at: torch.softmax(a[0], at.get("axis", -1)),
    "Gelu": lambda a, at: F.gelu(a[0], approximate=at.get("approximate", b"none").decode()
                                 if isinstance(at.get("approximate"), bytes) else "none"),
    "LayerNormalization": lambda a, at: F.layer_norm(a[0], a[0].shape[-1:], a[1], a[2],
                                                     at.get("epsilon", 1e-5)),
}


# ---- CI functions (M§2.2, M§2.3) ---------------------------------------------------

def normal(shape, std, gen):
    return (torch.randn(shape, generator=gen) * std).requires_grad_(True)


class MlpCi:
    """ci_fn_type mlp: per component a scalar MLP 1 → hidden → 1 on h_c = x·v_c,
    exact GELU; ParallelLinear init N(0, gain²/fan_in), zero biases"""

    def __init__(self, sites, hidden, gen):
        self.p = {}
        for s in sites:
            dims, C = [1] + hidden + [1], s["C"]
            for j in range(len(dims) - 1):
                gain = 1.0 if j == len(dims) - 2 else math.sqrt(2.0)
                self.p[f"{s['name']}.W{j}"] = normal((C, dims[j], dims[j + 1]),
                                                     gain / math.sqrt(dims[j]), gen)
                self.p[f"{s['name']}.b{j}"] = torch.zeros(C, dims[j + 1], requires_grad=True)
        self.n = len(hidden) + 1

    def __call__(self, acts, facs):
        z = {}
        for s, a in acts.items():
            h = (a @ facs[s][0]).unsqueeze(-1)               # [.., C, 1]
            for j in range(self.n):
                W, b = self.p[f"{s}.W{j}"], self.p[f"{s}.b{j}"]
                h = torch.einsum("...ci,cio->...co", h, W) + b
                if j < self.n - 1:
                    h = F.gelu(h)
            z[s] = h.squeeze(-1)
        return z


def rms_norm(v):
    return v / torch.sqrt((v * v).mean(-1, keepdim=True) + RMS_EPS)


class TransformerCi:
    """global_shared_transformer: per-site weightless RMS norm, concatenation in
    sorted site order, proj_in, pre-norm blocks (bidirectional attention with
    split-half RoPE, GELU MLP), proj_out, split per site"""

    def __init__(self, sites, cfg, gen):
        self.order = sorted(s["name"] for s in sites)
        self.C = {s["name"]: s["C"] for s in sites}
        self.din = {s["name"]: s["shape"][0] for s in sites}
        D, self.nh = cfg["d_model"], cfg["attn_config"]["n_heads"]
        self.D, self.base = D, cfg["attn_config"].get("rope_base", 10000.0)
        self.nb, self.hid = cfg["n_blocks"], list(cfg["mlp_hidden_dim"])
        p = {}

        def lin(nm, i, o, gain, bias=True):
            p[nm + ".W"] = normal((i, o), gain / math.sqrt(i), gen)
            if bias:
                p[nm + ".b"] = torch.zeros(o, requires_grad=True)
        lin("proj_in", sum(self.din.values()), D, math.sqrt(2.0))
        for k in range(self.nb):
            for w in "qkvo":
                p[f"b{k}.{w}"] = ((torch.rand((D, D), generator=gen) * 2 - 1) / math.sqrt(D)) \
                    .requires_grad_(True)
            dims = [D] + self.hid + [D]
            for j in range(len(dims) - 1):
                lin(f"b{k}.mlp{j}", dims[j], dims[j + 1], math.sqrt(2.0))
        lin("proj_out", D, sum(self.C.values()), 1.0)
        self.p = p

    def rope(self, q):
        T, dh = q.shape[-3], q.shape[-1]
        i = torch.arange(dh // 2, dtype=torch.float64)
        th = torch.arange(T, dtype=torch.float64)[:, None] * self.base ** (-2 * i / dh)
        cos, sin = th.cos().float()[:, None, :], th.sin().float()[:, None, :]
        x1, x2 = q[..., :dh // 2], q[..., dh // 2:]
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)

    def __call__(self, acts, facs):
        p, D, nh = self.p, self.D, self.nh
        dh = D // nh
        a = torch.cat([rms_norm(acts[s]) for s in self.order], dim=-1)
        if a.dim() == 2:
            a = a.unsqueeze(1)                      # toys: a length-1 sequence axis
        x = a @ p["proj_in.W"] + p["proj_in.b"]
        Bn, T = x.shape[0], x.shape[1]
        for k in range(self.nb):
            h = rms_norm(x)
            q, kk, v = ((h @ p[f"b{k}.{w}"]).reshape(Bn, T, nh, dh) for w in "qkv")
            q, kk = self.rope(q), self.rope(kk)
            o = F.scaled_dot_product_attention(q.transpose(1, 2), kk.transpose(1, 2),
                                               v.transpose(1, 2))
            x = x + o.transpose(1, 2).reshape(Bn, T, D) @ p[f"b{k}.o"]
            h = rms_norm(x)
            for j in range(len(self.hid)):
                h = F.gelu(h @ p[f"b{k}.mlp{j}.W"] + p[f"b{k}.mlp{j}.b"])
            j = len(self.hid)
            x = x + h @ p[f"b{k}.mlp{j}.W"] + p[f"b{k}.mlp{j}.b"]
        z = x @ p["proj_out.W"] + p["proj_out.b"]
        z = z.reshape(acts[self.order[0]].shape[:-1] + (z.shape[-1],))
        return dict(zip(self.order, torch.split(z, [self.C[s] for s in self.order], dim=-1)))


# ---- schedules (M§5.1, M§4.3) -------------------------------------------------------

def schedule(cfg, step, total):
    start, w = cfg["start_val"], int(total * cfg.get("warmup_pct", 0.0))
    if step < w:
        return start * step / w
    D = total - w
    if D <= 1 or cfg["fn_type"] == "constant":
        return start
    prog = (step - w) / (D - 1)
    final = cfg.get("final_val_frac", 0.0)
    if cfg["fn_type"] == "linear":
        return start * (final + (1 - final) * (1 - prog))
    return start * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * prog)))


def anneal_p(lc, frac):
    p0, fp = lc.get("pnorm", 1.0), lc.get("p_anneal_final_p")
    s, e = lc.get("p_anneal_start_frac", 1.0), lc.get("p_anneal_end_frac", 1.0)
    if fp is None or s >= 1.0 or frac < s:
        return p0
    if frac >= e:
        return fp
    return p0 + (fp - p0) * (frac - s) / (e - s)


# ---- the decomposition and its step -------------------------------------------------

class Step:
    def __init__(self, decomp, data, seq, seed):
        meta = json.load(open(os.path.join(decomp, "decomposition.json")))
        self.cfg = cfg = meta["config"]
        self.sites = meta["sites"]
        self.names = [s["name"] for s in self.sites]
        self.target = Target(meta["model"]["path"], self.sites)
        self.gen = torch.Generator().manual_seed(seed)
        self.B = cfg["batch_size"]
        self.seq = seq
        self.steps_total = cfg["steps"]
        self.kl = cfg["output_loss_type"] == "kl"
        self.delta = cfg.get("use_delta_component", True)
        # one factor pair per initializer (M§1.6: a tied second use reads Uᵀ, Vᵀ, Δᵀ)
        self.P, self.pair = {}, {}
        for s in self.sites:
            if s["tied_to"] is None:
                din, dout = s["shape"]
                self.P[s["name"] + ".V"] = normal((din, s["C"]), 1 / math.sqrt(din), self.gen)
                self.P[s["name"] + ".U"] = normal((s["C"], dout), 1 / math.sqrt(s["C"]), self.gen)
                self.pair[s["name"]] = (s["name"], False)
        for s in self.sites:
            if s["tied_to"] is not None:
                self.pair[s["name"]] = (s["tied_to"], True)
        self.W = {s["name"]: self.target.init[s["initializer"]] for s in self.sites if
                  s["tied_to"] is None}
        if cfg["ci_fn_type"] == "mlp":
            self.ci = MlpCi(self.sites, list(cfg["ci_fn_hidden_dims"]), self.gen)
        elif cfg["ci_fn_type"] == "global_shared_transformer":
            self.ci = TransformerCi(self.sites, cfg["simple_transformer_ci_cfg"], self.gen)
        else:
            sys.exit(f"torch_step: ci_fn_type {cfg['ci_fn_type']} is not implemented here")
        self.comp = list(self.P.values())
        params = self.comp + list(self.ci.p.values())
        self.opt = torch.optim.AdamW(params, lr=cfg["lr_schedule"]["start_val"],
                                     betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        self.losses = cfg["loss_metric_configs"]
        self.ppgd = next((lc for lc in self.losses
                          if lc["classname"] == "PersistentPGDReconLoss"), None)
        self.src = None
        self.step_no = 0
        if data:  # u16 tokens; the training part is all but the holdout tail
            tok = np.fromfile(data, np.uint16)
            n = int(len(tok) * (1 - cfg.get("data", {}).get("holdout", 0.05)))
            self.tokens = torch.from_numpy(tok[:n].astype(np.int64))
        else:
            self.tokens = None
            tc = cfg["task_config"]
            self.p_feat, (self.lo, self.hi) = tc["feature_probability"], tc["value_range"]

    def batch(self):
        if self.tokens is not None:
            st = torch.randint(0, len(self.tokens) - self.seq, (self.B,), generator=self.gen)
            return self.tokens[st[:, None] + torch.arange(self.seq)]
        shape = (self.B, self.target.in_dims[1])
        u = torch.rand(shape, generator=self.gen) * (self.hi - self.lo) + self.lo
        return u * (torch.rand(shape, generator=self.gen) < self.p_feat)

    def factors(self, detach=False):
        """per site (V, U, Δ) as the site's node reads them (M§1.2, M§1.6)"""
        out = {}
        for s in self.names:
            base, tr = self.pair[s]
            V, U = self.P[base + ".V"], self.P[base + ".U"]
            if detach:
                V, U = V.detach(), U.detach()
            D = self.W[base] - V @ U
            out[s] = (U.T, V.T, D.T) if tr else (V, U, D)
        return out

    def model(self, x, facs, masks, route=None):
        """the target with each site in `masks` replaced by its masked form
        (others run the target weight); `route` picks per position (M§3.2)"""
        def site(name, a, W):
            if name not in masks:
                return a @ W
            V, U, D = facs[name]
            m, dm = masks[name]
            y = ((a @ V) * m) @ U
            if dm is not None:
                y = y + dm * (a @ D)
            if route is not None:
                y = torch.where(route[name], y, a @ W)
            return y
        return self.target.forward({self.target.inputs[0]: x}, site)

    def div(self, pred, tgt):
        """M§4.1: MSE over every element, or KL(target ‖ pred) summed over the vocab
        and averaged over positions"""
        if not self.kl:
            return ((pred - tgt) ** 2).mean()
        lp = torch.log_softmax(tgt, -1)
        return (lp.exp() * (lp - torch.log_softmax(pred, -1))).sum(-1).mean()

    def rand(self, shape):
        return torch.rand(shape, generator=self.gen)

    def stoch_masks(self, g, names):
        """M§3.1: m = g + (1−g)·r, δ ~ U(0,1) per position"""
        out = {}
        for s in names:
            dm = self.rand(g[s].shape[:-1] + (1,)) if self.delta else None
            out[s] = (g[s] + (1 - g[s]) * self.rand(g[s].shape), dm)
        return out

    def subset_route(self, pos_shape):
        """M§3.2 UniformKSubset: per position k ~ U{1..M}, a random order, the first k"""
        M = len(self.names)
        k = torch.randint(1, M + 1, pos_shape + (1,), generator=self.gen)
        ranks = torch.argsort(torch.argsort(self.rand(pos_shape + (M,)), -1), -1)
        r = ranks < k
        return {s: r[..., i:i + 1] for i, s in enumerate(self.names)}

    def run(self):
        """one training step; returns the loss terms (floats)"""
        cfg, step = self.cfg, self.step_no
        frac = step / self.steps_total
        x = self.batch()
        acts = {}
        with torch.no_grad():  # clean forward: target output and the site inputs (M§2.1)
            def cache(name, a, W):
                acts[name] = a
                return a @ W
            y_t = self.target.forward({self.target.inputs[0]: x}, cache)
        facs = self.factors()
        z = self.ci(acts, facs)
        g_lo, g_up = {}, {}
        for s in self.names:
            g_lo[s], g_up[s] = squash(z[s], cfg["sigmoid_type"])
        pos_shape = tuple(g_lo[self.names[0]].shape[:-1])
        terms, total = {}, 0.0
        for lc in self.losses:
            kind = lc["classname"]
            if kind == "ImportanceMinimalityLoss":    # M§4.3
                p, beta, eps = anneal_p(lc, frac), lc.get("beta", 0.0), lc.get("eps", 1e-12)
                L = 0
                for s in self.names:
                    S = ((g_up[s] + eps) ** p).reshape(-1, g_up[s].shape[-1]).sum(0)
                    M = S / math.prod(pos_shape)
                    L = L + (M + beta * M * torch.log2(1 + S)).sum()
            elif kind == "StochasticReconLoss":       # M§4.4 all layers
                L = self.div(self.model(x, facs, self.stoch_masks(g_lo, self.names)), y_t)
            elif kind == "StochasticReconLayerwiseLoss":
                L = sum(self.div(self.model(x, facs, self.stoch_masks(g_lo, [s])), y_t)
                        for s in self.names) / len(self.names)
            elif kind == "StochasticReconSubsetLoss":
                L = self.div(self.model(x, facs, self.stoch_masks(g_lo, self.names),
                                        self.subset_route(pos_shape)), y_t)
            elif kind == "PersistentPGDReconLoss":    # M§4.7
                L = self.ppgd_loss(x, y_t, facs, g_lo, lc, pos_shape)
            elif kind == "FaithfulnessLoss":          # M§4.2 (a tied Δ counts twice)
                L = sum((facs[s][2] ** 2).sum() for s in self.names) / \
                    sum(facs[s][2].numel() for s in self.names)
            else:
                sys.exit(f"torch_step: {kind} is not implemented here")
            terms["loss/" + kind] = L
            total = total + lc["coeff"] * L
        terms["loss/total"] = total
        for gr in self.opt.param_groups:
            gr["lr"] = schedule(cfg["lr_schedule"], step, self.steps_total)
        self.opt.zero_grad(set_to_none=True)
        if self.src is not None:
            for s in self.names:
                self.src_leaf[s].grad = None
        total.backward()
        if cfg.get("grad_clip_norm"):                 # M§5.2: the components' global norm
            torch.nn.utils.clip_grad_norm_(self.comp, cfg["grad_clip_norm"])
        self.opt.step()
        if self.ppgd is not None:  # the step's last ascent with ∂L_ppgd/∂s of the same graph
            lr = schedule(self.ppgd["optimizer"]["lr_schedule"], step, self.steps_total)
            self.ascend({s: self.src_leaf[s].grad / self.ppgd["coeff"] for s in self.names}, lr)
        self.step_no += 1
        out = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in terms.items()}
        thr = cfg.get("ci_alive_threshold", 0.0)
        for s in self.names:
            out["l0/" + s] = float((g_lo[s] > thr).float().sum(-1).mean())
        return out

    def ascend(self, grads, lr):
        """M§4.7 Adam ascent on the sources, clamped to [0, 1]"""
        o = self.ppgd["optimizer"]
        b1, b2, eps = o.get("beta1", 0.9), o.get("beta2", 0.999), o.get("eps", 1e-8)
        self.src_t += 1
        with torch.no_grad():
            for s in self.names:
                g = grads[s]
                self.src_m[s].mul_(b1).add_(g, alpha=1 - b1)
                self.src_v[s].mul_(b2).addcmul_(g, g, value=1 - b2)
                mh = self.src_m[s] / (1 - b1 ** self.src_t)
                vh = self.src_v[s] / (1 - b2 ** self.src_t)
                self.src[s].add_(lr * mh / (vh.sqrt() + eps)).clamp_(0.0, 1.0)

    def ppgd_loss(self, x, y_t, facs, g_lo, lc, pos_shape):
        """persistent sources [pos.., C+1] per site (scope per_batch_per_position),
        n_warmup ascents on this batch with components and CI constant, then the
        loss on the live graph (M§4.7); sources a leaf, not trained by AdamW"""
        if lc.get("scope", "per_batch_per_position") != "per_batch_per_position":
            sys.exit("torch_step: only the per_batch_per_position PPGD scope is implemented")
        if self.src is None:
            self.src = {s: self.rand(pos_shape + (g_lo[s].shape[-1] + 1,)) for s in self.names}
            self.src_m = {s: torch.zeros_like(v) for s, v in self.src.items()}
            self.src_v = {s: torch.zeros_like(v) for s, v in self.src.items()}
            self.src_t = 0
        lr = schedule(lc["optimizer"]["lr_schedule"], self.step_no, self.steps_total)

        def adv(g, src):  # M§3.4
            C = {s: g[s].shape[-1] for s in self.names}
            return {s: (g[s] + (1 - g[s]) * src[s][..., :C[s]],
                        src[s][..., C[s]:] if self.delta else None) for s in self.names}
        fc = self.factors(detach=True)
        gc = {s: g.detach() for s, g in g_lo.items()}
        for _ in range(lc.get("n_warmup_steps", 0)):
            leaf = {s: v.clone().requires_grad_(True) for s, v in self.src.items()}
            L = self.div(self.model(x, fc, adv(gc, leaf)), y_t)
            gs = torch.autograd.grad(L, [leaf[s] for s in self.names])
            self.ascend(dict(zip(self.names, gs)), lr)
        self.src_leaf = {s: v.clone().requires_grad_(True) for s, v in self.src.items()}
        return self.div(self.model(x, facs, adv(g_lo, self.src_leaf)), y_t)


def count_flops(step):
    """GEMM FLOPs of one step (2·M·N·K per matmul, forward and backward) as
    torch's FlopCounterMode counts them; elementwise work is not counted"""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        step.run()
    return fc.get_total_flops()


def main():
    ap = argparse.ArgumentParser(description="PyTorch SPD/VPD step (bench/train_step)")
    ap.add_argument("--decomp", required=True, help="a pdc decomposition folder (its config)")
    ap.add_argument("--data", help="u16 token file (language models)")
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=30.0, help="timed seconds, all segments")
    ap.add_argument("--segments", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps-total", type=int, help="the schedules' length (default: the config's)")
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--check", action="store_true", help="print step 0's loss terms and stop")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    step = Step(a.decomp, a.data, a.seq, a.seed)
    if a.steps_total:
        step.steps_total = a.steps_total
    res = {"torch": torch.__version__, "threads": a.threads}
    res["step0"] = step.run()
    if a.check:
        print(json.dumps(res["step0"], indent=1))
        return
    res["gemm_flops_per_step"] = count_flops(step)
    for _ in range(a.warmup):
        step.run()
    t0 = time.perf_counter()
    step.run()
    per = max(1, int(a.seconds / a.segments / max(time.perf_counter() - t0, 1e-6)))
    rates = []
    for _ in range(a.segments):
        t0 = time.perf_counter()
        for _ in range(per):
            step.run()
        rates.append(per / (time.perf_counter() - t0))
    res.update(steps_per_s=statistics.median(rates), segments=rates, steps_per_segment=per,
               maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "step0"}))


if __name__ == "__main__":
    main()
