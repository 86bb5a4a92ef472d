"""test_export_decomp.py — `pdc export DIR`: decompositions written back as ONNX,
checked in onnxruntime, on five targets decomposed here in a few steps: the
TMS 5-2 toy (one weight used twice, the second time through a Transpose), the
residual MLP toy (two sites on a residual stream), the tiny LM (`pdc toy tiny-lm`,
symbolic batch and sequence; SPD with a shared-MLP CI, and VPD with the global CI
transformer for the ci form), a
small CNN built here (two Conv sites and a Gemm site, per-component MLP CI), an
embedding model built here (a Gather site and a W·x site) and a model whose Split
feeds a site through its second output.

  factorised  masks = 1 reproduces the source model (onnxruntime vs onnxruntime);
              inputs/outputs/opset unchanged, masks are initializer-backed inputs;
              onnx.checker (full) passes
  masked      given masks match `pdc run DIR --masks` (pdc's own masked forward)
  bake        --bake with all masks 1 reproduces the source with its structure
              (same ops, same initializer shapes)
  ablation    --ablate/--keep (factorised and baked) match pdc's ablated forward
  ci          the CI outputs match `pdc run DIR`'s CI values (and for TMS the CI
              pdc eval writes for its one-hot probe); --threshold gives the forward
              under the rounded masks; on TMS also the vector_mlp, shared_mlp and
              global_shared_mlp and global_shared_transformer CI functions
  roundtrip   `pdc run` of an exported model gives onnxruntime's outputs
  edit        --edit/--write-vector/--scale writes W − v_c u_cᵀ + v_c (α w/‖w‖)ᵀ
  external    --external-threshold writes external data that onnxruntime reads
  errors      unknown site, component out of range, bad .npy, missing DIR file,
              `pdc run DIR --input NAME=..` with an unknown NAME, an L3D DIR:
              non-zero exit, the message names it, nothing written

Max relative errors (max |a − b| / max |b|) are printed per check.

Run by CTest as: .venv/bin/python tests/py/test_export_decomp.py --pdc PATH
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Results, TempDir, np, parse_args, run_pdc  # noqa: E402

common.need_onnx()
import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TOL = 1e-5

TMS_CFG = """\
seed: 3
steps: 20
batch_size: 64
lr_schedule: {start_val: 1.0e-3, fn_type: cosine, warmup_pct: 0.0, final_val_frac: 0.0}
ci_fn_type: "mlp"
ci_fn_hidden_dims: [8]
sigmoid_type: "leaky_hard"
loss_metric_configs:
  - {classname: "ImportanceMinimalityLoss", coeff: 3e-3, pnorm: 1.0}
  - {classname: "StochasticReconLoss", coeff: 1.0}
faithfulness_warmup_steps: 5
task_config: {feature_probability: 0.05, data_generation_type: "at_least_zero_active"}
"""

CNN_CFG = """\
seed: 1
steps: 6
batch_size: 4
lr_schedule: {start_val: 1.0e-3, fn_type: constant, warmup_pct: 0.0, final_val_frac: 1.0}
ci_fn_type: "mlp"
ci_fn_hidden_dims: [4]
sigmoid_type: "leaky_hard"
module_info:
  - {module_pattern: "conv*", C: 6}
  - {module_pattern: "fc", C: 5}
loss_metric_configs:
  - {classname: "ImportanceMinimalityLoss", coeff: 1e-3, pnorm: 1.0}
  - {classname: "StochasticReconLoss", coeff: 1.0}
faithfulness_warmup_steps: 2
"""


def rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(b).max(), 1e-30))


def ort_all(path, feeds):
    return common.ort_run(path, feeds)


def pdc_masked(args, tmp, d, feeds, masks=None, tag="m"):
    """`pdc run DIR --input .. [--masks ..]`: the decomposition's own forward"""
    (name, arr), = feeds.items()
    xin = os.path.join(tmp, f"{tag}_x.npy")
    np.save(xin, arr)
    out = os.path.join(tmp, f"{tag}_out.npz")
    argv = ["run", d, "--input", f"{name}={xin}", "-o", out]
    if masks is not None:
        mp = os.path.join(tmp, f"{tag}_masks.npz")
        np.savez(mp, **masks)
        argv += ["--masks", mp]
    p = run_pdc(args.pdc, argv)
    if p.returncode != 0:
        raise RuntimeError("pdc run DIR failed: " + p.stderr[-400:])
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def export(args, d, out, *extra):
    return run_pdc(args.pdc, ["export", d, "-o", out] + list(extra))


# ---- fixtures ---------------------------------------------------------------------

def tms_fixture(args, tmp):
    cfg = os.path.join(tmp, "tms.yaml")
    open(cfg, "w").write(TMS_CFG)
    src = os.path.join(ROOT, "models", "tms-5-2.onnx")
    d = os.path.join(tmp, "tms")
    p = run_pdc(args.pdc, [src, "-o", d, "--config", cfg])
    x = np.random.RandomState(0).rand(7, 5).astype(np.float32)
    return p, src, d, {"x": x}


def resid_fixture(args, tmp):
    """the residual MLP toy: two sites on a residual stream (the embedding is not one)"""
    src = os.path.join(tmp, "resid.onnx")
    p = run_pdc(args.pdc, ["toy", "resid-mlp-1", "-o", src, "--steps", "20"])
    if p.returncode != 0:
        return p, src, None, {}
    cfg = os.path.join(tmp, "resid.yaml")
    open(cfg, "w").write(TMS_CFG.replace("seed: 3", "seed: 4") +
                         "module_info:\n  - {module_pattern: \"layers.*.mlp_*\", C: 12}\n")
    d = os.path.join(tmp, "resid")
    p = run_pdc(args.pdc, [src, "-o", d, "--config", cfg])
    x = (np.random.RandomState(1).rand(6, 100) * (np.random.RandomState(2).rand(6, 100) < 0.05))
    return p, src, d, {"x": x.astype(np.float32)}


def lm_fixture(args, tmp, config="tiny-lm.yaml", tag="lm"):
    """the tiny LM; decomposed with configs/tiny-lm.yaml (SPD, shared-MLP CI) or, as
    "lm_vpd", configs/tiny-lm-vpd.yaml (VPD, the global CI transformer), shrunk to a
    few steps; the feeds' 9 positions differ from the 16 it was decomposed on"""
    text = os.path.join(tmp, "text")
    src, tok = os.path.join(tmp, "lm.onnx"), os.path.join(tmp, "tok.bin")
    if not os.path.exists(src):
        os.makedirs(text)
        open(os.path.join(text, "a.txt"), "wb").write(open(os.path.join(ROOT, "README.md"), "rb").read())
        p = run_pdc(args.pdc, ["toy", "tiny-lm", "-o", src, "--steps", "3", "--seq", "16",
                               "--text", text, "--tokens-out", tok])
        if p.returncode != 0:
            return p, src, None, None
    cfg_text = open(os.path.join(ROOT, "configs", config)).read()
    cfg = os.path.join(tmp, tag + ".yaml")
    lines = []
    for ln in cfg_text.splitlines():
        for key, val in (("steps:", "steps: 4"), ("batch_size:", "batch_size: 2"),
                         ("faithfulness_warmup_steps:", "faithfulness_warmup_steps: 2")):
            if ln.startswith(key):
                ln = val
        lines.append(ln)
    open(cfg, "w").write("\n".join(lines) + "\n")
    d = os.path.join(tmp, tag)
    p = run_pdc(args.pdc, [src, "-o", d, "--config", cfg, "--data", tok, "--seq", "16"])
    t = np.random.RandomState(1).randint(0, 256, (3, 9)).astype(np.int64)
    return p, src, d, {"tokens": t}


def lm_vpd_fixture(args, tmp):
    return lm_fixture(args, tmp, "tiny-lm-vpd.yaml", "lm_vpd")


def cnn_model(path):
    """x [batch, 2, 6, 6] → Conv 3×3 pad 1 (+bias) → Relu → Conv 3×3 stride 2 →
    Flatten → Gemm(transB) → y [batch, 3]"""
    r = np.random.RandomState(5)
    inits = [common.init("conv1", (r.randn(4, 2, 3, 3) * 0.4).astype(np.float32)),
             common.init("conv1_b", (r.randn(4) * 0.1).astype(np.float32)),
             common.init("conv2", (r.randn(3, 4, 3, 3) * 0.3).astype(np.float32)),
             common.init("fc", (r.randn(3, 12) * 0.3).astype(np.float32)),
             common.init("fc_b", (r.randn(3) * 0.1).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "conv1", "conv1_b"], ["c1"], name="conv_a",
                              pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
             helper.make_node("Conv", ["r1", "conv2"], ["c2"], name="conv_b", strides=[2, 2]),
             helper.make_node("Flatten", ["c2"], ["f"], name="flatten", axis=1),
             helper.make_node("Gemm", ["f", "fc", "fc_b"], ["y"], name="head", transB=1,
                              alpha=0.5)]
    g = helper.make_graph(nodes, "cnn",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
                          inits)
    onnx.save(common.make_model(g, opset=13), path)


def cnn_fixture(args, tmp):
    src = os.path.join(tmp, "cnn.onnx")
    cnn_model(src)
    r = np.random.RandomState(2)
    data = os.path.join(tmp, "cnn_data.npy")
    np.save(data, r.rand(32, 2, 6, 6).astype(np.float32))
    cfg = os.path.join(tmp, "cnn.yaml")
    open(cfg, "w").write(CNN_CFG)
    d = os.path.join(tmp, "cnn")
    p = run_pdc(args.pdc, [src, "-o", d, "--config", cfg, "--data", data])
    return p, src, d, {"x": r.rand(3, 2, 6, 6).astype(np.float32)}


SPLIT_CFG = CNN_CFG.replace("""  - {module_pattern: "conv*", C: 6}
  - {module_pattern: "fc", C: 5}""", """  - {module_pattern: "W1", C: 5}
  - {module_pattern: "W2", C: 4}""")


def split_fixture(args, tmp):
    """x [batch, 4] → MatMul(W1) → Split into [4, 4] → the second half → Relu → MatMul(W2),
    the first half → MatMul(V) (no site), y = sum: site W2's input leaves the Split through
    its second output, so the ci form must copy the Split into the clean forward"""
    r = np.random.RandomState(7)
    inits = [common.init("W1", (r.randn(4, 8) * 0.5).astype(np.float32)),
             common.init("W2", (r.randn(4, 3) * 0.5).astype(np.float32)),
             common.init("V", (r.randn(4, 3) * 0.5).astype(np.float32)),
             common.init("halves", np.array([4, 4], np.int64))]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h"], name="in"),
             helper.make_node("Split", ["h", "halves"], ["a", "b"], name="split", axis=1),
             helper.make_node("Relu", ["b"], ["rb"], name="relu"),
             helper.make_node("MatMul", ["rb", "W2"], ["y2"], name="out"),
             helper.make_node("MatMul", ["a", "V"], ["y1"], name="side"),
             helper.make_node("Add", ["y1", "y2"], ["y"], name="sum")]
    g = helper.make_graph(nodes, "split",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
                          inits)
    src = os.path.join(tmp, "split.onnx")
    onnx.save(common.make_model(g, opset=17), src)
    data = os.path.join(tmp, "split_data.npy")
    np.save(data, r.rand(32, 4).astype(np.float32))
    cfg = os.path.join(tmp, "split.yaml")
    open(cfg, "w").write(SPLIT_CFG)
    d = os.path.join(tmp, "split")
    p = run_pdc(args.pdc, [src, "-o", d, "--config", cfg, "--data", data])
    return p, src, d, {"x": r.rand(5, 4).astype(np.float32)}


EMB_CFG = """\
seed: 2
steps: 6
batch_size: 4
lr_schedule: {start_val: 1.0e-3, fn_type: constant, warmup_pct: 0.0, final_val_frac: 1.0}
ci_fn_type: "mlp"
ci_fn_hidden_dims: [4]
sigmoid_type: "leaky_hard"
module_info:
  - {module_pattern: "E", C: 4}
  - {module_pattern: "W", C: 5}
  - {module_pattern: "L", C: 5}
loss_metric_configs:
  - {classname: "ImportanceMinimalityLoss", coeff: 1e-3, pnorm: 1.0}
  - {classname: "StochasticReconLoss", coeff: 1.0}
faithfulness_warmup_steps: 2
"""


def emb_fixture(args, tmp):
    """tokens [batch, seq] → Gather(E) → MatMul(·, W) → Tanh → Transpose → MatMul(L, ·):
    an embedding site and a W·x site, both dims symbolic"""
    r = np.random.RandomState(6)
    inits = [common.init("E", r.randn(16, 8).astype(np.float32)),
             common.init("W", (r.randn(8, 8) * 0.4).astype(np.float32)),
             common.init("L", (r.randn(6, 8) * 0.4).astype(np.float32))]
    nodes = [helper.make_node("Gather", ["E", "tokens"], ["e"], name="embed"),
             helper.make_node("MatMul", ["e", "W"], ["h"], name="mix"),
             helper.make_node("Tanh", ["h"], ["a"], name="act"),
             helper.make_node("Transpose", ["a"], ["at"], name="tr", perm=[0, 2, 1]),
             helper.make_node("MatMul", ["L", "at"], ["y"], name="left")]
    g = helper.make_graph(nodes, "emb",
                          [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "seq"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 6, "seq"])],
                          inits)
    src = os.path.join(tmp, "emb.onnx")
    onnx.save(common.make_model(g, opset=17), src)
    tok = os.path.join(tmp, "emb.bin")
    r.randint(0, 16, 400).astype("<u2").tofile(tok)
    cfg = os.path.join(tmp, "emb.yaml")
    open(cfg, "w").write(EMB_CFG)
    d = os.path.join(tmp, "emb")
    p = run_pdc(args.pdc, [src, "-o", d, "--config", cfg, "--data", tok, "--seq", "5"])
    return p, src, d, {"tokens": r.randint(0, 16, (3, 7)).astype(np.int64)}


TF_CFG = ("simple_transformer_ci_cfg: {d_model: 8, n_blocks: 2, mlp_hidden_dim: [8], "
          "attn_config: {n_heads: 2, max_len: 16, rope_base: 10000.0}}")


def check_ci_kinds(args, res, tmp, feeds):
    """the other CI functions on TMS: vector_mlp, shared_mlp, global_shared_mlp and
    global_shared_transformer (rows: a sequence of length 1)"""
    src = os.path.join(ROOT, "models", "tms-5-2.onnx")
    for kind in ("vector_mlp", "shared_mlp", "global_shared_mlp", "global_shared_transformer"):
        cfg = os.path.join(tmp, kind + ".yaml")
        text = TMS_CFG.replace('"mlp"', f'"{kind}"').replace("steps: 20", "steps: 4")
        if kind == "global_shared_transformer":
            text = text.replace("ci_fn_hidden_dims: [8]", TF_CFG)
        open(cfg, "w").write(text)
        d = os.path.join(tmp, "tms_" + kind)
        p = run_pdc(args.pdc, [src, "-o", d, "--config", cfg])
        out = os.path.join(tmp, kind + ".onnx")
        p = p if p.returncode else export(args, d, out, "--form", "ci")
        if not res.check(f"tms {kind}: decompose and export --form ci", p.returncode == 0,
                         p.stderr[-300:]):
            continue
        got = ort_all(out, feeds)
        mine = pdc_masked(args, tmp, d, feeds, tag=kind)
        cis = [k for k in mine if k.startswith("ci.")]
        masked = pdc_masked(args, tmp, d, feeds, {k[3:]: mine[k] for k in cis}, tag=kind + "m")
        e = max([rel(got[k], mine[k]) for k in cis] + [rel(got["y"], masked["y"])])
        res.check(f"tms {kind}: CI outputs and the CI-masked output match pdc's", e <= TOL,
                  f"max rel err {e:.3g}", f"max rel err {e:.3g}")


# ---- checks -----------------------------------------------------------------------

def site_list(d):
    return [(s["name"], s["C"]) for s in json.load(open(os.path.join(d, "decomposition.json")))["sites"]]


def mask_shape(feeds, name, C, fx):
    """the site's mask shape [pos.., C]: rows of x (TMS, residual MLP, Split), [batch, seq] (LM),
    [N, H', W'] of the conv outputs (CNN)"""
    x = next(iter(feeds.values()))
    if fx == "emb":
        return x.shape + (C,)
    if fx == "cnn":
        return (x.shape[0], 6, 6, C) if name == "conv1" else (x.shape[0], 2, 2, C) \
            if name == "conv2" else (x.shape[0], C)
    return tuple(x.shape[:-1] if fx in ("tms", "resid", "split") else x.shape) + (C,)


def check_factorised(args, res, tmp, fx, src, d, feeds):
    out = os.path.join(tmp, fx + "_f.onnx")
    p = export(args, d, out)
    if not res.check(f"{fx}: export factorised", p.returncode == 0, p.stderr[-400:]):
        return None
    m, s = onnx.load(out), onnx.load(src)
    try:
        onnx.checker.check_model(m, full_check=True)
        res.ok(f"{fx}: onnx.checker (full)")
    except Exception as e:  # noqa: BLE001
        res.fail(f"{fx}: onnx.checker (full)", str(e)[:400])
    sites = site_list(d)
    inits = {i.name: list(i.dims) for i in m.graph.initializer}
    want_in = [i.name for i in s.graph.input] + ["mask." + n for n, _ in sites]
    res.check(f"{fx}: inputs, outputs, opset kept; masks default to 1",
              [i.name for i in m.graph.input] == want_in
              and [o.name for o in m.graph.output] == [o.name for o in s.graph.output]
              and m.opset_import[0].version == s.opset_import[0].version
              and all(inits.get("mask." + n, [None])[-1] == C for n, C in sites),
              f"{[i.name for i in m.graph.input]} {m.opset_import}")
    want = ort_all(src, feeds)
    got = ort_all(out, feeds)
    e = max(rel(got[k], want[k]) for k in want)
    res.check(f"{fx}: masks = 1 reproduces the source", e <= TOL, f"max rel err {e:.3g}",
              f"max rel err {e:.3g}")
    r = np.random.RandomState(3)
    masks = {"mask." + n: r.rand(*mask_shape(feeds, n, C, fx)).astype(np.float32) for n, C in sites}
    got = ort_all(out, {**feeds, **masks})
    mine = pdc_masked(args, tmp, d, feeds, masks, tag=fx + "_rm")
    e = max(rel(got[k], mine[k]) for k in want)
    res.check(f"{fx}: given masks match pdc's masked forward", e <= TOL, f"max rel err {e:.3g}",
              f"max rel err {e:.3g}")
    e = max(rel(mine[k], want[k]) for k in want)
    res.check(f"{fx}: the masks change the output", e > 1e-3, f"only {e:.3g}")
    rt = common.pdc_run(args.pdc, out, feeds, tmp, out_name=fx + "_rt.npz")[0]
    e = max(rel(rt[k], want[k]) for k in want) if rt else float("inf")
    res.check(f"{fx}: round trip: pdc run of the export", e <= TOL, f"max rel err {e:.3g}",
              f"max rel err {e:.3g}")
    return out


def check_bake_ablate(args, res, tmp, fx, src, d, feeds):
    out = os.path.join(tmp, fx + "_b.onnx")
    p = export(args, d, out, "--bake")
    if not res.check(f"{fx}: export --bake", p.returncode == 0, p.stderr[-400:]):
        return
    m, s = onnx.load(out), onnx.load(src)
    shape = lambda mm: sorted((i.name, tuple(i.dims)) for i in mm.graph.initializer)
    res.check(f"{fx}: --bake keeps the structure", [n.op_type for n in m.graph.node] ==
              [n.op_type for n in s.graph.node] and shape(m) == shape(s), "changed")
    want = ort_all(src, feeds)
    got = ort_all(out, feeds)
    e = max(rel(got[k], want[k]) for k in want)
    res.check(f"{fx}: --bake with masks 1 reproduces the source", e <= TOL,
              f"max rel err {e:.3g}", f"max rel err {e:.3g}")
    sites = site_list(d)
    (n0, C0), (n1, C1) = sites[0], sites[-1]
    tied = fx == "tms"  # both TMS sites read one weight: a bake needs one mask for both
    abl = ["--ablate", f"{n0}:0,2"] + (["--ablate", f"{n1}:0,2"] if tied else
                                      ["--keep", f"{n1}:1,3"])
    m0 = np.ones(C0, np.float32)
    m0[[0, 2]] = 0
    m1 = m0.copy() if tied else np.zeros(C1, np.float32)
    if not tied:
        m1[[1, 3]] = 1
    mine = pdc_masked(args, tmp, d, feeds, {n0: m0, n1: m1}, tag=fx + "_abl")
    for form, extra in (("factorised", []), ("baked", ["--bake"])):
        out = os.path.join(tmp, f"{fx}_abl_{form}.onnx")
        p = export(args, d, out, *(abl + extra))
        if not res.check(f"{fx}: export ablation ({form})", p.returncode == 0, p.stderr[-400:]):
            continue
        try:
            onnx.checker.check_model(onnx.load(out), full_check=True)
        except Exception as e:  # noqa: BLE001
            res.fail(f"{fx}: ablation ({form}) passes onnx.checker", str(e)[:400])
        got = ort_all(out, feeds)
        e = max(rel(got[k], mine[k]) for k in want)
        res.check(f"{fx}: ablation ({form}) matches pdc's ablated forward", e <= TOL,
                  f"max rel err {e:.3g}", f"max rel err {e:.3g}")


def check_ci(args, res, tmp, fx, d, feeds):
    out = os.path.join(tmp, fx + "_ci.onnx")
    p = export(args, d, out, "--form", "ci")
    if not res.check(f"{fx}: export --form ci", p.returncode == 0, p.stderr[-400:]):
        return
    try:
        onnx.checker.check_model(onnx.load(out), full_check=True)
        res.ok(f"{fx}: ci form passes onnx.checker")
    except Exception as e:  # noqa: BLE001
        res.fail(f"{fx}: ci form passes onnx.checker", str(e)[:400])
    got = ort_all(out, feeds)
    mine = pdc_masked(args, tmp, d, feeds, tag=fx + "_ci")
    cis = [k for k in mine if k.startswith("ci.")]
    e = max(rel(got[k], mine[k]) if np.abs(mine[k]).max() > 0 else
            float(np.abs(got[k]).max()) for k in cis)
    res.check(f"{fx}: CI outputs match pdc's CI values", len(cis) == len(site_list(d)) and e <= TOL,
              f"{cis} max rel err {e:.3g}", f"{len(cis)} sites, max rel err {e:.3g}")
    masks = {k[3:]: mine[k] for k in cis}  # the CI values as masks
    want = pdc_masked(args, tmp, d, feeds, masks, tag=fx + "_cim")
    outs = [k for k in want if not k.startswith("ci.")]
    e = max(rel(got[k], want[k]) for k in outs)
    res.check(f"{fx}: ci form's output = forward under the CI masks", e <= TOL,
              f"max rel err {e:.3g}", f"max rel err {e:.3g}")
    out = os.path.join(tmp, fx + "_ci_t.onnx")
    p = export(args, d, out, "--form", "ci", "--threshold", "0.1")
    got = ort_all(out, feeds) if p.returncode == 0 else None
    want = pdc_masked(args, tmp, d, feeds, {k: (v > 0.1).astype(np.float32) for k, v in
                                            masks.items()}, tag=fx + "_cit")
    e = max(rel(got[k], want[k]) for k in outs) if got else float("inf")
    res.check(f"{fx}: --threshold 0.1: forward under the rounded masks", e <= TOL,
              f"max rel err {e:.3g} {p.stderr[-300:]}", f"max rel err {e:.3g}")
    rt = common.pdc_run(args.pdc, out, feeds, tmp, out_name=fx + "_cirt.npz")[0]
    e = max(rel(rt[k], got[k]) for k in got) if rt and got else float("inf")
    res.check(f"{fx}: round trip of the ci form", e <= TOL, f"max rel err {e:.3g}",
              f"max rel err {e:.3g}")


def check_tms_eval_ci(args, res, tmp, d):
    """pdc eval's one-hot probe (0.75·I) CI against the ci form's outputs"""
    p = run_pdc(args.pdc, ["eval", d])
    probe = os.path.join(d, "probe_ci.npz")
    if not res.check("tms: pdc eval writes its probe CI", p.returncode == 0 and
                     os.path.exists(probe), p.stderr[-300:]):
        return
    got = ort_all(os.path.join(tmp, "tms_ci.onnx"), {"x": 0.75 * np.eye(5, dtype=np.float32)})
    with np.load(probe) as z:
        e = max(rel(got["ci." + k], z[k]) for k in z.files)
    res.check("tms: ci outputs match pdc eval's CI values", e <= TOL, f"max rel err {e:.3g}",
              f"max rel err {e:.3g}")


def check_edit(args, res, tmp, src, d, feeds):
    site, c, alpha = "layers.0.mlp.fc_in", 3, 3.0
    comp = common_safetensors(os.path.join(d, "components.safetensors"))
    V, U = comp[site + ".V"], comp[site + ".U"]
    w = np.random.RandomState(4).randn(U.shape[1]).astype(np.float32)
    wf = os.path.join(tmp, "w.npy")
    np.save(wf, w)
    out = os.path.join(tmp, "lm_edit.onnx")
    p = export(args, d, out, "--edit", f"{site}:{c}", "--write-vector", wf, "--scale", str(alpha))
    if not res.check("lm: export --edit", p.returncode == 0, p.stderr[-400:]):
        return
    W = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(src).graph.initializer}[site]
    got = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(out).graph.initializer}[site]
    want = W - np.outer(V[:, c], U[c]) + np.outer(V[:, c], alpha * w / np.linalg.norm(w))
    e = rel(got, want)
    res.check("lm: --edit writes W − v_c u_cᵀ + v_c (α w/‖w‖)ᵀ", e <= TOL and rel(got, W) > 1e-4,
              f"max rel err {e:.3g}", f"max rel err {e:.3g}")
    ort_all(out, feeds)
    res.ok("lm: the edited model runs in onnxruntime")
    bad = os.path.join(tmp, "w_bad.npy")
    np.save(bad, w[:-1])
    check_error(args, res, "bad .npy shape", d, ["--edit", f"{site}:{c}", "--write-vector", bad],
                [bad, str(U.shape[1])], tmp)


def common_safetensors(path):
    import struct
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name != "__metadata__":
            a, b = info["data_offsets"]
            out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], np.float32).reshape(info["shape"])
    return out


def check_external(args, res, tmp, d, feeds):
    out = os.path.join(tmp, "lm_ext.onnx")
    p = export(args, d, out, "--external-threshold", "4096")
    ok = p.returncode == 0 and os.path.exists(out + ".data")
    if not res.check("lm: external data written", ok, p.stderr[-300:]):
        return
    ref = ort_all(os.path.join(tmp, "lm_f.onnx"), feeds)
    got = ort_all(out, feeds)
    e = max(rel(got[k], ref[k]) for k in ref)
    res.check("lm: onnxruntime reads the external data", e == 0 and
              os.path.getsize(out) < os.path.getsize(out + ".data"), f"max rel err {e:.3g}")


def check_error(args, res, what, d, extra, words, tmp):
    out = os.path.join(tmp, "err.onnx")
    p = export(args, d, out, *extra)
    res.check(f"error: {what}", p.returncode not in (0, None) and all(w in p.stderr for w in words)
              and not os.path.exists(out) and not [f for f in os.listdir(tmp) if "err.onnx" in f],
              f"rc {p.returncode}: {p.stderr[-300:]}", p.stderr.strip()[:120])


def check_errors(args, res, tmp, d):
    check_error(args, res, "unknown site", d, ["--ablate", "nope:1"], ["nope", "linear1"], tmp)
    check_error(args, res, "component out of range", d, ["--keep", "linear1:7"],
                ["linear1", "7", "out of range"], tmp)
    check_error(args, res, "bad form", d, ["--form", "weird"], ["weird"], tmp)
    broken = os.path.join(tmp, "broken")
    os.makedirs(broken)
    for f in ("decomposition.json", "config.yaml"):
        open(os.path.join(broken, f), "w").write(open(os.path.join(d, f)).read())
    check_error(args, res, "missing DIR file", broken, [], ["components.safetensors"], tmp)
    xin, out = os.path.join(tmp, "in_x.npy"), os.path.join(tmp, "in_out.npz")
    np.save(xin, np.zeros((2, 5), np.float32))
    p = run_pdc(args.pdc, ["run", d, "--input", f"nope={xin}", "-o", out])
    res.check("error: pdc run DIR --input with an unknown name",
              p.returncode not in (0, None) and "nope" in p.stderr and "'x'" in p.stderr
              and not os.path.exists(out), f"rc {p.returncode}: {p.stderr[-300:]}")


def check_l3d_refused(args, res, tmp):
    """an L3D DIR (no V/U per site): export and `pdc run DIR` refuse it by name"""
    src, d = os.path.join(tmp, "l3d.onnx"), os.path.join(tmp, "l3d")
    p = run_pdc(args.pdc, ["toy", "l3d-tms", "-o", src, "--steps", "10"])
    if p.returncode == 0:
        p = run_pdc(args.pdc, [src, "-o", d, "--config", os.path.join(ROOT, "configs",
                                                                      "l3d-tms.yaml"),
                               "--steps", "2"])
    if not res.check("l3d: decomposition made", p.returncode == 0, p.stderr[-300:]):
        return
    check_error(args, res, "export of an L3D DIR", d, [], ["L3D decomposition"], tmp)
    xin, out = os.path.join(tmp, "l3d_x.npy"), os.path.join(tmp, "l3d_out.npz")
    np.save(xin, np.zeros((2, 5), np.float32))
    p = run_pdc(args.pdc, ["run", d, "--input", xin, "-o", out])
    res.check("error: pdc run of an L3D DIR", p.returncode not in (0, None)
              and "L3D decomposition" in p.stderr and not os.path.exists(out), p.stderr[-300:])


def main():
    args = parse_args(__doc__)
    res = Results(args.only)
    with TempDir(keep=args.keep) as tmp:
        for fx, make in (("tms", tms_fixture), ("resid", resid_fixture), ("lm", lm_fixture),
                         ("lm_vpd", lm_vpd_fixture), ("cnn", cnn_fixture),
                         ("emb", emb_fixture), ("split", split_fixture)):
            p, src, d, feeds = make(args, tmp)
            if not res.check(f"{fx}: decomposition made", p.returncode == 0 and d, p.stderr[-400:]):
                continue
            if fx == "lm_vpd":  # what differs from "lm" is the CI function
                check_ci(args, res, tmp, fx, d, feeds)
                continue
            check_factorised(args, res, tmp, fx, src, d, feeds)
            check_bake_ablate(args, res, tmp, fx, src, d, feeds)
            check_ci(args, res, tmp, fx, d, feeds)
            if fx == "tms":
                check_tms_eval_ci(args, res, tmp, d)
                check_errors(args, res, tmp, d)
                check_ci_kinds(args, res, tmp, feeds)
            if fx == "lm":
                check_edit(args, res, tmp, src, d, feeds)
                check_external(args, res, tmp, d, feeds)
        check_l3d_refused(args, res, tmp)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
