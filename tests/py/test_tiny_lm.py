"""test_tiny_lm.py — `pdc toy tiny-lm`: the byte-level transformer LM target.

A short training (STEPS steps) on a text folder made here (two files and a
symlink to one of them, which must be read once), then:

  file       the written ONNX passes onnx.checker (full check); input `tokens`
             int64 [batch, seq], output `logits` float [batch, seq, 256], both
             symbolic; the site initializers exist under their names and shapes
  tokens     --tokens-out is the text's bytes as little-endian u16, files in
             name order, the symlinked duplicate skipped
  oracle     `pdc run` against onnxruntime on random token windows at two
             bindings (a full context of 64 and a shorter 17), logits compared
  causal     a prefix's logits do not change when tokens are appended
  held-out   the printed held-out bits/byte equals onnxruntime's cross-entropy
             on the held-out tail (the last 5 % tiled by windows of 64)
  eval       a short SPD run on it (KL output loss, C below the rank; without --seq
             it is refused, asking for it) and `pdc eval`:
             the LM table (KL and next-token CE per mask kind) is consistent, and its
             target, unmasked (W := V·U) and zero rows match onnxruntime on the same
             held-out windows (tests/py/lm_oracle.py; the real run is tests/e2e)
  seed       the same seed writes a byte-identical model
  errors     a missing --text fails with a message naming it and writes nothing

Run by CTest as: .venv/bin/python tests/py/test_tiny_lm.py --pdc PATH
"""
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import np  # noqa: E402

common.need_onnx()
import onnx  # noqa: E402
import lm_oracle  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
STEPS = "30"
CTX = 64
HOLDOUT = 0.05
D, V, DMLP = 64, 256, 256


def make_text(tmp):
    """a folder: a.txt, b.txt and c.txt -> a.txt; the corpus is a + b"""
    folder = os.path.join(tmp, "text")
    os.makedirs(folder)
    a = open(os.path.join(ROOT, "README.md"), "rb").read()
    b = b"".join(open(os.path.join(ROOT, "tests", "py", f), "rb").read()
                 for f in sorted(os.listdir(os.path.join(ROOT, "tests", "py")))
                 if f.endswith(".py"))
    open(os.path.join(folder, "a.txt"), "wb").write(a)
    open(os.path.join(folder, "b.txt"), "wb").write(b)
    os.symlink("a.txt", os.path.join(folder, "c.txt"))
    return folder, a + b


def train(args, tmp, folder, name, seed="7"):
    model = os.path.join(tmp, name + ".onnx")
    tokens = os.path.join(tmp, name + ".bin")
    p = common.run_pdc(args.pdc, ["toy", "tiny-lm", "-o", model, "--steps", STEPS, "--seed", seed,
                                  "--text", folder, "--tokens-out", tokens])
    return model, tokens, p


def check_file(res, model):
    m = onnx.load(model)
    try:
        onnx.checker.check_model(m, full_check=True)
        res.ok("onnx.checker (full)")
    except Exception as e:  # noqa: BLE001 - any checker complaint is a failure
        res.fail("onnx.checker (full)", str(e)[:500])
    dims = lambda vi: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
    inp, out = m.graph.input, m.graph.output
    res.check("input tokens int64 [batch, seq]", len(inp) == 1 and inp[0].name == "tokens"
              and inp[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
              and dims(inp[0]) == ["batch", "seq"], str(inp))
    res.check("output logits [batch, seq, 256]", len(out) == 1 and out[0].name == "logits"
              and dims(out[0]) == ["batch", "seq", V], str(out))
    shapes = {i.name: list(i.dims) for i in m.graph.initializer}
    want = {"embed": [V, D], "pos_embed": [CTX, D], "lm_head": [D, V]}
    for l in range(2):
        for k in ("q", "k", "v", "o"):
            want[f"layers.{l}.attn.{k}_proj"] = [D, D]
        want[f"layers.{l}.mlp.fc_in"] = [D, DMLP]
        want[f"layers.{l}.mlp.fc_out"] = [DMLP, D]
    bad = {k: (shapes.get(k), v) for k, v in want.items() if shapes.get(k) != v}
    res.check("initializer names and shapes", not bad, str(bad))
    return m


def check_tokens(res, tokens, text):
    raw = np.fromfile(tokens, dtype="<u2")
    res.check("token file = text bytes as u16 (symlink read once)",
              raw.size == len(text) and np.array_equal(raw, np.frombuffer(text, np.uint8)),
              f"{raw.size} tokens for {len(text)} bytes")
    return raw


def check_oracle(args, res, tmp, model):
    rng = np.random.default_rng(0)
    for b, t in ((3, CTX), (2, 17)):
        x = rng.integers(0, V, size=(b, t), dtype=np.int64)
        want = common.ort_run(model, {"tokens": x})
        got, p = common.pdc_run(args.pdc, model, {"tokens": x}, tmp)
        if got is None:
            res.fail(f"pdc run [{b},{t}]", common.describe_failure(p))
            continue
        common.check_outputs(res, f"pdc vs onnxruntime [{b},{t}]", got, want, rtol=1e-4,
                             atol=1e-4)


def check_causal(res, model):
    """a prefix's logits do not depend on what follows it (the causal mask and the
    positions counted from 0 along seq)"""
    x = np.random.default_rng(1).integers(0, V, size=(2, CTX), dtype=np.int64)
    full = common.ort_run(model, {"tokens": x})["logits"]
    pre = common.ort_run(model, {"tokens": x[:, :17]})["logits"]
    ok, _, _, msg = common.compare(full[:, :17], pre, rtol=1e-4, atol=1e-5)
    res.check("causal: a prefix's logits ignore later tokens", ok, msg, msg)


def check_heldout(res, model, raw, stdout):
    n = raw.size
    ntrain = n - math.floor(HOLDOUT * n)
    nwin = (n - ntrain) // CTX
    x = np.stack([raw[ntrain + k * CTX: ntrain + (k + 1) * CTX] for k in range(nwin)]).astype(np.int64)
    lg = common.ort_run(model, {"tokens": x})["logits"].astype(np.float64)
    lg = lg[:, :-1]
    lse = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
    picked = np.take_along_axis(lg, x[:, 1:, None], -1)[..., 0]
    bits = float(np.mean(lse - picked) / math.log(2))
    m = re.search(r"held-out\s+model ([0-9.]+) bits/byte, unigram ([0-9.]+)", stdout)
    res.check("held-out bits/byte printed", m is not None, stdout)
    if m:
        res.check("held-out bits/byte = onnxruntime's CE on the tail",
                  abs(float(m.group(1)) - bits) < 2e-3, f"printed {m.group(1)}, ort {bits:.4f}",
                  f"{bits:.4f}; unigram {m.group(2)}")


DECOMP_CONFIG = """\
seed: 0
steps: 10
batch_size: 4
lr_schedule: {start_val: 1.0e-3, fn_type: constant, warmup_pct: 0.0, final_val_frac: 1.0}
ci_fn_type: "shared_mlp"
ci_fn_hidden_dims: [16]
sigmoid_type: "leaky_hard"
use_delta_component: true
output_loss_type: "kl"
ci_alive_threshold: 0.0
faithfulness_warmup_steps: 20
faithfulness_warmup_lr: 0.01
faithfulness_warmup_weight_decay: 0.0
module_info:
  - module_pattern: "layers.*.attn.*_proj"
    C: 16
  - module_pattern: "layers.1.mlp.fc_in"
    C: 16
loss_metric_configs:
  - classname: "ImportanceMinimalityLoss"
    coeff: 1.0e-3
    pnorm: 2.0
  - classname: "StochasticReconLoss"
    coeff: 1.0
"""


def check_eval(args, res, tmp, model, tokens, raw):
    cfg = os.path.join(tmp, "decomp.yaml")
    open(cfg, "w").write(DECOMP_CONFIG)
    out = os.path.join(tmp, "decomp")
    p = common.run_pdc(args.pdc, [model, "-o", out, "--config", cfg, "--data", tokens])
    res.check("decompose without --seq: asks for it", p.returncode != 0 and "--seq" in p.stderr
              and not os.path.exists(out), common.describe_failure(p))
    p = common.run_pdc(args.pdc, [model, "-o", out, "--config", cfg, "--data", tokens,
                                  "--seq", str(CTX + 16)])
    res.check("--seq beyond the model's positions: names the table, before writing anything",
              p.returncode != 0 and "pos_embed" in p.stderr and "outside" in p.stderr
              and not os.path.exists(out), common.describe_failure(p))
    p = common.run_pdc(args.pdc, [model, "-o", out, "--config", cfg, "--data", tokens,
                                  "--seq", str(CTX)])
    if not res.check("decompose the LM (KL)", p.returncode == 0, common.describe_failure(p)):
        return
    p = common.run_pdc(args.pdc, ["eval", out])
    if not res.check("pdc eval exits 0", p.returncode == 0, common.describe_failure(p)):
        return
    lm = json.load(open(os.path.join(out, "eval.json"))).get("lm", {})
    if lm_oracle.check_table(res, p.stdout, lm):
        res.check("eval: every held-out batch", lm["held_out_batches"] == lm["held_out_windows"]
                  // 4 and lm["seq"] == CTX, json.dumps(lm)[:300])
        lm_oracle.check_consistency(res, lm["masks"])
        lm_oracle.check_oracle(res, model, out, raw, lm["masks"], 4, CTX)


def main():
    args = common.parse_args(__doc__)
    res = common.Results(args.only)
    with common.TempDir(args.keep, "pdc_lm_") as tmp:
        folder, text = make_text(tmp)
        model, tokens, p = train(args, tmp, folder, "lm")
        if not res.check("pdc toy tiny-lm exits 0", p.returncode == 0, common.describe_failure(p),
                         p.stdout.strip().replace("\n", " | ")):
            res.finish()
        check_file(res, model)
        raw = check_tokens(res, tokens, text)
        check_oracle(args, res, tmp, model)
        check_causal(res, model)
        check_heldout(res, model, raw, p.stdout)
        check_eval(args, res, tmp, model, tokens, raw)
        model2, _, p2 = train(args, tmp, folder, "again")
        res.check("same seed, identical model", p2.returncode == 0 and
                  open(model, "rb").read() == open(model2, "rb").read(), common.describe_failure(p2))
        bad = os.path.join(tmp, "none.onnx")
        p3 = common.run_pdc(args.pdc, ["toy", "tiny-lm", "-o", bad, "--text",
                                       os.path.join(tmp, "missing")])
        res.check("missing --text: clear error, no file", p3.returncode != 0 and "missing" in
                  p3.stderr and not os.path.exists(bad), common.describe_failure(p3))
    res.finish()


if __name__ == "__main__":
    main()
