"""golden_common.py — shared by spd_golden.py and vpd_golden.py, the two
generators of golden training steps (tests/test_spd_golden.c,
tests/test_vpd_golden.c, which share tests/golden_step.h the same way).

What is here is what both references implement identically: the venv they run
in, the target model, the squashing functions, the masked site, the losses
both methods have, the AdamW bookkeeping, the seed checks, the C tests'
tolerance rule and the safetensors file itself. Each generator keeps what is
its method's own (the CI function, the losses only it has, the inputs it feeds).

Importing this module first re-runs the importing script inside
tests/gen/.venv-torch, creating it when missing (torch, numpy and onnx from
PyPI), and only then imports torch: so each generator stays runnable as
`python3 tests/gen/<name>.py` with the system python.

The spec is /work/shared/METHOD.md (cited as "M§x"); "CONVENTION" marks what
a reference had to decide.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(HERE, ".venv-torch")
VENV_PY = os.path.join(VENV, "bin", "python")


def ensure_venv():
    """Re-exec the running script inside tests/gen/.venv-torch, creating it when missing."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(VENV_PY):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    probe = subprocess.run([VENV_PY, "-c", "import torch, numpy, onnx"], capture_output=True)
    if probe.returncode != 0:
        subprocess.check_call([VENV_PY, "-m", "pip", "install", "--quiet", "torch", "numpy",
                               "onnx"])
    script = os.path.abspath(sys.modules["__main__"].__file__)
    os.execv(VENV_PY, [VENV_PY, script] + sys.argv[1:])


ensure_venv()

import argparse  # noqa: E402
import json  # noqa: E402
import struct  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from onnx import numpy_helper  # noqa: E402

# ---- what both generators share ---------------------------------------------------

MODEL = os.path.join(ROOT, "models", "default.onnx")
B = 6            # batch (positions; the toy has no sequence axis): GOLDEN_BATCH of golden_step.h
SITES = ["W", "W@1"]  # pdc's site names: the direct use and the tied second use

# The C tests' comparison: |got - want| <= RTOL*|want| + ATOL_REL*max|want of that tensor|.
# The absolute floor is relative to the tensor's own scale (float32 rounding of a
# sum of terms of that scale); each generator's float32 torch run must pass it too.
RTOL = 1e-5
ATOL_REL = 1e-6


def f32(a):
    """rounded to float32: what pdc is fed"""
    return np.asarray(a, np.float32)


# ---- the target model ----------------------------------------------------------

def load_target(who):
    """W [5,2] and b [5] of models/default.onnx, checking its structure is the
    one the references re-implement: y = Relu((x·W)·Wᵀ + b), Wᵀ via Transpose."""
    m = onnx.load(MODEL)
    ops = [(n.op_type, list(n.input)) for n in m.graph.node]
    want = [("MatMul", ["x", "W"]), ("Transpose", ["W"]), ("MatMul", ["h", "W_T"]),
            ("Add", ["hWt", "b"]), ("Relu", ["pre"])]
    if ops != want:
        sys.exit(f"{who}: {MODEL} is not the model this reference implements: {ops}")
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return init["W"].astype(np.float64), init["b"].astype(np.float64)


def target_forward(x, Wt, b):
    """the clean target forward: (h = x·W, the ReLU's input). Its site inputs
    feed the CI functions (M§2.1, M§4.7); for "W@1" that is the CLEAN h, not a
    masked one. CONVENTION (M§4.1): the recon target is the target model's own
    output Relu(pre), a constant."""
    h_clean = x @ Wt
    return h_clean, h_clean @ Wt.T + b


# ---- squashing functions (M§2.4): tests/gen/leaky_hard.py ---------------------------

from leaky_hard import ALPHA, LowerLeakyHard, UpperLeakyHard, squash  # noqa: E402,F401


def step_tensors(inp, dtype, names):
    """the fixed inputs as `dtype` tensors, and the parameters `names` as fresh
    leaves (their gradients are the step's)"""
    t = {k: torch.tensor(v, dtype=dtype) for k, v in inp.items()}
    P = {k: t["state/" + k].clone().requires_grad_(True) for k in names}
    return t, P


def site_factors(P, Wt):
    """Per site: (V, U, Δ) as that use reads them.
    CONVENTION (tied weights, M§1.6): one factor pair V [5,C], U [C,2] for the
    initializer W in the first use's right-multiply layout (W ≈ V·U, M§1.1).
    The second use computes h·Wᵀ, so it reads V' = Uᵀ [2,C], U' = Vᵀ [C,5] and
    Δ' = Δᵀ; its gradients add into the one pair (autograd does this). Δ is
    recomputed from the current factors (M§1.2)."""
    V, U = P["W.V"], P["W.U"]
    delta = Wt - V @ U
    return {"W": (V, U, delta), "W@1": (U.T, V.T, delta.T)}


def masked_site(a, fac, m, delta_mask):
    """y = ((a·V) ⊙ m)·U + δ ⊙ (a·Δ) (M§1.2); the bias b is the target's Add,
    outside the decomposed MatMul, so it is never masked (M§1.4)."""
    V, U, D = fac
    return ((a @ V) * m) @ U + delta_mask * (a @ D)


def mse(y, t):
    """M§4.1: Σ (pred − target)² / numel — mean over batch and features."""
    return ((y - t) ** 2).sum() / y.numel()


# ---- losses and metrics both methods have ------------------------------------------

def importance_minimality(g_up, p, beta, eps):
    """M§4.3 on g_upper: Σ_sites Σ_c [M + β·M·log2(1+S)], S = Σ_n (g_up + eps)^p,
    M = S / N. world_size = 1. CONVENTION: N = the B positions of the batch,
    zero rows included."""
    imp = 0
    for s in SITES:
        S = ((g_up[s] + eps) ** p).sum(0)
        M = S / g_up[s].shape[0]
        imp = imp + (M + beta * M * torch.log2(1 + S)).sum()
    return imp


def faithfulness(facs):
    """M§4.2: Σ over decomposed modules of ‖Δ‖² / Σ numel. CONVENTION (as spd:
    weight_deltas has one entry per module, and a tied weight is two modules):
    the tied Δ counts twice, over 2·10 entries."""
    sq = sum((facs[s][2] ** 2).sum() for s in SITES)
    return sq / sum(facs[s][2].numel() for s in SITES)


def ci_l0(g_lo, tau, dtype):
    """M§7.2 CI-L0 per site: mean over positions of Σ_c 1[g_lo > τ] (pdc logs
    it as a metric of the step)"""
    return {s: (g_lo[s] > tau).to(dtype).sum(1).mean().detach() for s in SITES}


def adamw_next(opt, P, names, out):
    """after torch's own AdamW step (M§5.2): the `next` of every parameter and
    of both moments (pdc names them adam.m.<p>, adam.v.<p>)"""
    for k in names:
        st = opt.state[P[k]]
        out[f"next/{k}"] = P[k].detach().clone()
        out[f"next/adam.m.{k}"] = st["exp_avg"].detach().clone()
        out[f"next/adam.v.{k}"] = st["exp_avg_sq"].detach().clone()


# ---- checks of a candidate seed and of the float32 run -----------------------------

def squash_regions(z):
    """every site's CI pre-activations flattened, and how many fall in each
    squashing region z <= 0, (0, 1], > 1 (a test needs all three populated)"""
    zc = torch.cat([z[s].detach().reshape(-1) for s in SITES])
    return zc, [int((zc <= 0).sum()), int(((zc > 0) & (zc <= 1)).sum()), int((zc > 1).sum())]


def sign_exception_both_ways(g_lo, z):
    """whether the leaky-hard sign exception fires both ways: at least two dead
    (z <= 0) entries with a negative upstream gradient and two with a positive"""
    up = torch.cat([g_lo[s].grad.reshape(-1) for s in SITES])
    dead = z <= 0
    return int((up[dead] < 0).sum()) >= 2 and int((up[dead] > 0).sum()) >= 2


def tally(rejected, why):
    """count a rejected seed by its reason, the reason without its details"""
    reason = why.split(" [")[0].split(" (")[0].split(" in ")[0]
    rejected[reason] = rejected.get(reason, 0) + 1


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


# ---- the golden file ---------------------------------------------------------------

def begin(name, doc, pick_seed):
    """parse --out (default tests/data/<name>.safetensors), make torch
    deterministic (the file must be byte-identical on a rerun), load the target
    and pick the seed; returns (out path, seed, inputs)"""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", f"{name}.safetensors"))
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    W, b = load_target(name)
    seed, inp, why = pick_seed(W, b)
    print(f"seed {seed}: {why}")
    return args.out, seed, inp


def base_meta(name, seed):
    """the metadata every golden file starts with"""
    return {"generator": f"tests/gen/{name}.py", "torch": torch.__version__,
            "numpy": np.__version__, "seed": str(seed), "rtol": str(RTOL),
            "atol_rel": str(ATOL_REL)}


def store_case(tensors, name, ref):
    """a case's float64 reference values, stored as float32 under "<case>/" """
    for k, v in ref.items():
        tensors[f"{name}/{k}"] = np.asarray(v, np.float32)


def write_safetensors(path, tensors, meta):
    """safetensors without the safetensors package: little-endian data, the
    header JSON compact and in insertion order (so a rerun is byte-identical)"""
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


def finish(path, tensors, meta):
    """the C tests' tolerance last ("check/config"), then the file"""
    tensors["check/config"] = np.array([RTOL, ATOL_REL], np.float64)
    write_safetensors(path, tensors, meta)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(tensors)} tensors), "
          f"torch {torch.__version__}")
