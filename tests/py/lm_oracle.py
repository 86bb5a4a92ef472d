"""lm_oracle.py — checks of `pdc eval`'s language-model table (tools/pdc_eval_lm.c)
shared by tests/py/test_tiny_lm.py (a few steps, every build) and
tests/e2e/test_tiny_lm.py (a real run, slow). onnxruntime is the oracle: it runs the
target, the target with every decomposed W replaced by V·U (the unmasked row: masks 1,
no Δ) and with W = 0 (the zero row) on the held-out windows pdc eval reads.

Not a test itself (no test_ prefix), so the CMake glob does not pick it up.
"""
import json
import math
import os
import struct

import common
from common import np

SEQ = 64
HOLDOUT = 0.05          # runtime/data.h's default, what the decomposition records
EVAL_STEP = 0x7FFFFFFF  # tools/pdc_eval.c: the step the evaluation batches start at
MAX_BATCHES = 256       # tools/pdc_eval_lm.c
ROWS = ["target", "unmasked", "stochastic", "stochastic_no_delta", "rounded_0", "rounded_0.1",
        "rounded_0.5", "ci", "zero"]


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name != "__metadata__":
            a, b = info["data_offsets"]
            out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], np.float32).reshape(info["shape"])
    return out


def eval_windows(tokens, batch, seq=SEQ):
    """the held-out windows pdc eval reads, batch by batch (runtime/data.c: DS_EVAL
    batch k covers windows k·B … k·B+B−1 mod their count; pdc eval runs batches at
    steps EVAL_STEP + j, j < max(1, nwin // B))"""
    n = tokens.size
    ntrain = n - math.floor(HOLDOUT * n)
    nwin = (n - ntrain) // seq
    nb = min(max(1, nwin // batch), MAX_BATCHES)
    idx = [((EVAL_STEP + j) * batch + b) % nwin for j in range(nb) for b in range(batch)]
    x = np.stack([tokens[ntrain + k * seq: ntrain + (k + 1) * seq] for k in idx]).astype(np.int64)
    return x, nb


def with_weights(model_path, new, out_path):
    import onnx
    from onnx import numpy_helper

    m = onnx.load(model_path)
    for init in m.graph.initializer:
        if init.name in new:
            init.CopyFrom(numpy_helper.from_array(new[init.name].astype(np.float32), init.name))
    onnx.save(m, out_path)
    return out_path


def logsoftmax(z):
    z = z.astype(np.float64)
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def ce(lp, x):
    return float(-np.mean(np.take_along_axis(lp[:, :-1], x[:, 1:, None], -1)))


def kl(lp_t, lp):
    return float(np.mean(np.sum(np.exp(lp_t) * (lp_t - lp), -1)))


def check_table(res, stdout, lm):
    res.check("table printed", "language model, held-out tokens" in stdout and
              "unrecovered" in stdout and "CI as masks" in stdout, stdout[-1500:])
    rows = lm.get("masks", {})
    missing = [r for r in ROWS if r not in rows or
               any(k not in rows[r] for k in ("kl", "ce", "ce_difference", "ce_unrecovered"))]
    res.check("eval.json lm: every mask kind with kl, ce, ce_difference, ce_unrecovered",
              not missing, f"missing {missing}: {json.dumps(lm)[:800]}")
    return not missing


def check_consistency(res, rows):
    t, z = rows["target"]["ce"], rows["zero"]["ce"]
    res.check("target: kl 0, ce_difference 0, ce_unrecovered 0",
              rows["target"]["kl"] == 0 and rows["target"]["ce_difference"] == 0 and
              rows["target"]["ce_unrecovered"] == 0, str(rows["target"]))
    res.check("zero: ce_unrecovered 1", abs(rows["zero"]["ce_unrecovered"] - 1) < 1e-12,
              str(rows["zero"]))
    bad = [r for r in ROWS if abs(rows[r]["ce_difference"] - (rows[r]["ce"] - t)) > 1e-9 or
           abs(rows[r]["ce_unrecovered"] - (rows[r]["ce"] - t) / (z - t)) > 1e-9]
    res.check("every row: ce_difference and ce_unrecovered from the CEs", not bad, str(bad))


def check_oracle(res, model, out, tokens, rows, batch, seq=SEQ):
    x, nb = eval_windows(tokens, batch, seq)
    lp_t = logsoftmax(common.ort_run(model, {"tokens": x})["logits"])
    ce_t = ce(lp_t, x)
    res.check("CE_target = onnxruntime's on the held-out windows",
              abs(rows["target"]["ce"] - ce_t) < 1e-3,
              f"pdc {rows['target']['ce']:.6f}, ort {ce_t:.6f}", f"{ce_t:.5f} over {nb} batches")
    dj = json.load(open(os.path.join(out, "decomposition.json")))
    comp = read_safetensors(os.path.join(out, "components.safetensors"))
    vu = {s["initializer"]: comp[s["name"] + ".V"] @ comp[s["name"] + ".U"] for s in dj["sites"]}
    zero = {k: np.zeros_like(v) for k, v in vu.items()}
    for name, new, tol in (("unmasked", vu, 2e-4), ("zero", zero, 2e-3)):
        path = with_weights(model, new, os.path.join(out, f"oracle_{name}.onnx"))
        lp = logsoftmax(common.ort_run(path, {"tokens": x})["logits"])
        k, c = kl(lp_t, lp), ce(lp, x)
        got = rows[name]
        res.check(f"{name}: KL and CE = onnxruntime's with W := {'V·U' if name != 'zero' else '0'}",
                  abs(got["kl"] - k) <= tol + 1e-3 * k and abs(got["ce"] - c) <= 1e-3 + 1e-3 * c,
                  f"pdc kl {got['kl']:.6g} ce {got['ce']:.6f}; ort kl {k:.6g} ce {c:.6f}",
                  f"kl {k:.6g}, ce {c:.5f}")
