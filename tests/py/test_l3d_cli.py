"""test_l3d_cli.py — L3D from the outside, in a few seconds: `pdc toy l3d-tms` (few
steps), `pdc MODEL -o DIR --method l3d --config …` (few steps), the DIR's files and
factor shapes, `pdc eval DIR` and `--impact` (impact.npy [batch, n_subnetworks]),
`pdc intervene DIR --subnet k --delta 0.5 --data x.npy -o y.npz` against onnxruntime
on the model whose tensors are moved in numpy to W + δ·v_k, v_k rebuilt from the
stored Tucker factors (METHOD §8.3, §8.9), bad l3d keys/values refused with an
error naming the key, a non-zero exit and no DIR left behind (also an l3d block under
another method, an lr_schedule function, and batch × subnetworks past the top-k cap);
a DIR whose factors were given other dims of the same size refused by eval and
intervene naming the item; CP factors with bias_rank 2 intervened on against
v_k = Σ_r F0[k,r]⊗F1[k,r] (a bias: Σ_r F0[k,r]); and a small Conv model
(kernels of 4 modes, METHOD §8.3's Tucker form) run, evaluated and intervened on the same
way.

Run by CTest as: .venv/bin/python tests/py/test_l3d_cli.py --pdc PATH
"""
import json
import os

from common import Results, TempDir, malformed_dir, need_onnx, np, parse_args, run_pdc
from test_decompose_cli import read_safetensors

NV, BATCH = 5, 32
CONFIG = """\
method: l3d
seed: 3
steps: 40
batch_size: %d
lr: 0.01
log_freq: 10
checkpoint_every: 0
data:
  source: "toy:p=0.05,nz=1"
l3d:
  n_subnetworks: %d
  rank: 1
  bias_rank: 1
  top_k: 0.1
  steps_per_epoch: 8
  warm_start_epochs: 0
  lr_decay: 0.8
  lr_decay_epochs: 2
%s""" % (BATCH, NV, "%s")


def write_cfg(tmp, name, extra=""):
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        f.write(CONFIG % extra)
    return path


def subnet(t, name, k):
    """v_k of one tensor from its V_out Tucker pieces: the core and one factor per mode."""
    v = t[f"l3d.{name}.out.core"][k]
    m = 0
    while f"l3d.{name}.out.f{m}" in t:  # contract the leading rank index, size to the end
        v = np.tensordot(v, t[f"l3d.{name}.out.f{m}"][k], axes=([0], [0]))
        m += 1
    return v


def check_toy(args, res, tmp):
    model = os.path.join(tmp, "tms.onnx")
    p = run_pdc(args.pdc, ["toy", "l3d-tms", "-o", model, "--steps", "300"])
    res.check("toy l3d-tms exits 0", p.returncode == 0 and os.path.isfile(model), p.stderr)
    return model


def check_run(args, res, tmp, model):
    out = os.path.join(tmp, "dir")
    p = run_pdc(args.pdc, [model, "-o", out, "--method", "l3d", "--config",
                           write_cfg(tmp, "ok"), "--steps", "24"])
    if not res.check("l3d run exits 0", p.returncode == 0, p.stderr):
        return None, None
    files = sorted(os.listdir(out))
    for f in ("decomposition.json", "components.safetensors", "metrics.jsonl", "config.yaml"):
        res.check(f"writes {f}", f in files, f"files: {files}")
    dj = json.load(open(os.path.join(out, "decomposition.json")))
    res.check("json: method l3d", dj["method"] == "l3d", dj["method"])
    cfg = dj["config"].get("l3d", {})
    res.check("json: resolved l3d keys (defaults filled in)",
              cfg.get("n_subnetworks") == NV and cfg.get("divergence") == "code"
              and cfg.get("factors") == "tucker" and cfg.get("lr_decay_epochs") == 2, str(cfg))
    t = read_safetensors(os.path.join(out, "components.safetensors"))
    want = {"l3d.W_in.out.f0": (NV, 1, 5), "l3d.W_in.out.f1": (NV, 1, 2),
            "l3d.W_out.in.f0": (NV, 1, 2), "l3d.W_out.in.f1": (NV, 1, 5),
            "l3d.W_in.out.core": (NV, 1, 1), "l3d.b.out.f0": (NV, 1, 5),
            "l3d.b.in.core": (NV, 1)}
    bad = {k: (t[k].shape if k in t else None) for k, s in want.items()
           if k not in t or t[k].shape != s}
    res.check("factor names and shapes", not bad, f"{bad}; have {sorted(t)}")
    # the code's normalisation drives Σ_j ‖v_kj‖_F towards 1 (METHOD §8.5); after few
    # steps it is only on its way there, but every subnetwork must be finite and nonzero
    s = [sum(np.linalg.norm(subnet(t, n, k)) for n in ("W_in", "W_out", "b")) for k in range(NV)]
    res.check("subnetwork norms finite, positive", all(np.isfinite(s)) and min(s) > 0, str(s))
    return out, t


def check_eval(args, res, out):
    p = run_pdc(args.pdc, ["eval", out, "--impact"])
    if not res.check("eval --impact exits 0", p.returncode == 0, p.stderr):
        return
    res.check("eval names the loss definitions and the paper's numbers",
              "sum_i |G_i - G^_i|^2 / sum_i |G_i|^2" in p.stdout and "paper" in p.stdout,
              p.stdout)
    m = json.load(open(os.path.join(out, "eval.json")))["metrics"]
    res.check("eval.json: recon metrics in [0, 2]",
              0 <= m["l3d/recon_sq"] <= 2 and 0 <= m["l3d/recon_rel"] <= 2, str(m))
    I = np.load(os.path.join(out, "impact.npy"))
    res.check("impact.npy [batch, n_subnetworks], finite, >= 0",
              I.shape == (BATCH, NV) and np.isfinite(I).all() and (I >= 0).all(),
              f"{I.shape} min {I.min() if I.size else None}")


def ort_run(model_bytes, x):
    import onnxruntime as ort
    s = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def intervene_vs_ort(args, res, tmp, model, out, k, delta, seed, vec, prefix, label):
    """`pdc intervene --subnet k --delta δ` on 16 sparse inputs against onnxruntime on the
    model with every initializer W moved to W + δ·vec(name, k); returns the inputs'
    path, x and onnxruntime's moved output, or None when pdc failed"""
    import onnx
    from onnx import numpy_helper
    rng = np.random.default_rng(seed)
    x = (rng.random((16, 5)) * (rng.random((16, 5)) < 0.3)).astype(np.float32)
    xp, yp = os.path.join(tmp, f"x{seed}.npy"), os.path.join(tmp, f"y{seed}.npz")
    np.save(xp, x)
    p = run_pdc(args.pdc, ["intervene", out, "--subnet", str(k), "--delta", str(delta),
                           "--data", xp, "-o", yp])
    if not res.check(f"{prefix}intervene exits 0", p.returncode == 0, p.stderr):
        return None
    m = onnx.load(model)
    for init in m.graph.initializer:
        w = numpy_helper.to_array(init)
        init.CopyFrom(numpy_helper.from_array(
            (w + delta * vec(init.name, k).reshape(w.shape)).astype(np.float32), init.name))
    y, want = list(np.load(yp).values())[0], ort_run(m.SerializeToString(), x)
    res.check(label, np.allclose(y, want, rtol=1e-4, atol=1e-5),
              f"max |diff| {np.abs(y - want).max()}")
    return xp, x, want


def check_intervene(args, res, tmp, model, out, t):
    import onnx
    got = intervene_vs_ort(args, res, tmp, model, out, 2, 0.5, 7,  # v_k from the stored factors
                           lambda name, k: subnet(t, name, k), "",
                           "intervene = onnxruntime on W + δ·v_k")
    if got is None:
        return
    xp, x, want = got
    base = ort_run(onnx.load(model).SerializeToString(), x)
    res.check("intervention moves the output", np.abs(want - base).max() > 1e-4,
              f"max |Δy| {np.abs(want - base).max()}")
    p = run_pdc(args.pdc, ["intervene", out, "--subnet", str(NV), "--delta", "1", "--data", xp])
    res.check("intervene: subnet out of range refused", p.returncode not in (0, None)
              and "--subnet" in p.stderr, p.stderr)


def check_bad_configs(args, res, tmp, model):
    cases = [("unknown key", "  colour: blue\n", "l3d.colour"),
             ("bad choice", "  divergence: huber\n", "divergence"),
             ("out of range", "  top_k: 1.5\n", "top_k"),
             ("bad type", "  rank: two\n", "rank")]
    for i, (name, extra, key) in enumerate(cases):
        out = os.path.join(tmp, f"bad{i}")
        p = run_pdc(args.pdc, [model, "-o", out, "--config", write_cfg(tmp, f"bad{i}", extra)])
        res.check(f"bad config ({name}) refused naming '{key}'",
                  p.returncode not in (0, None) and key in p.stderr, p.stderr)
        res.check(f"bad config ({name}) leaves no DIR", not os.path.exists(out),
                  f"{out} exists")


def check_refused(args, res, tmp, model):
    """config choices refused before any training, each naming what to change"""
    base = CONFIG % ""
    cases = [("l3d block under method spd", base.replace("method: l3d", "method: spd"),
              ["l3d", "'spd'"]),
             ("lr_schedule function for l3d", base + "lr_schedule:\n  fn_type: cosine\n",
              ["lr_schedule", "lr_decay"]),
             ("batch x subnetworks past the top-k cap",
              base.replace("batch_size: %d" % BATCH, "batch_size: 2048"),
              ["batch_size", "n_subnetworks"])]
    for i, (name, text, keys) in enumerate(cases):
        cfg, out = os.path.join(tmp, f"refused{i}.yaml"), os.path.join(tmp, f"refused{i}")
        with open(cfg, "w") as f:
            f.write(text)
        p = run_pdc(args.pdc, [model, "-o", out, "--config", cfg])
        res.check(f"refused: {name}, naming {keys}", p.returncode == 1
                  and all(k in p.stderr for k in keys), p.stderr)
        res.check(f"refused: {name}: no DIR left", not os.path.exists(out), f"{out} exists")


def check_malformed(args, res, tmp, out):
    """factor items declared with other dims of the same byte count: refused, not read"""
    xp = os.path.join(tmp, "x.npy")
    cases = [("l3d.W_in.out.f1", [1, NV, 2]),     # n_v and R swapped: rows past the item
             ("l3d.W_out.out.f0", [NV, 2, 1]),    # rank 2 against the config's 1
             ("l3d.W_in.out.core", [1, NV, 1])]
    for i, (item, shape) in enumerate(cases):
        bad = os.path.join(tmp, f"malformed{i}")
        malformed_dir(out, bad, item, shape)
        for cmd in (["intervene", bad, "--subnet", str(NV - 1), "--delta", "1", "--data", xp],
                    ["eval", bad]):
            p = run_pdc(args.pdc, cmd)
            res.check(f"{cmd[0]}: {item} as {shape} refused naming it and the DIR",
                      p.returncode == 1 and item in p.stderr and bad in p.stderr, p.stderr)


def check_cp_bias(args, res, tmp, model):
    """factors: cp with rank 2 and bias_rank 2: the training program's fixed core is the
    superdiagonal of ones, so v_k = Σ_r F0[k,r]⊗F1[k,r] and, for a bias, Σ_r F0[k,r]
    (every rank term, not only r = 0)"""
    cfg, out = write_cfg(tmp, "cp", "  factors: cp\n"), os.path.join(tmp, "cpdir")
    with open(cfg) as f:
        text = f.read().replace("  rank: 1\n  bias_rank: 1\n", "  rank: 2\n  bias_rank: 2\n")
    with open(cfg, "w") as f:
        f.write(text)
    p = run_pdc(args.pdc, [model, "-o", out, "--config", cfg, "--steps", "24"])
    if not res.check("cp: l3d run exits 0", p.returncode == 0, p.stderr):
        return
    t = read_safetensors(os.path.join(out, "components.safetensors"))
    res.check("cp: no stored core, bias factor [n, 2, 5]", "l3d.b.out.core" not in t
              and t["l3d.b.out.f0"].shape == (NV, 2, 5), str(sorted(t)))
    f0 = t["l3d.b.out.f0"]
    res.check("cp: the bias's second rank term is not zero",
              np.abs(f0[:, 1]).max() > 1e-3, str(f0[:, 1]))

    def v(name, k):
        if f"l3d.{name}.out.f1" in t:
            return np.einsum("ri,rj->ij", t[f"l3d.{name}.out.f0"][k], t[f"l3d.{name}.out.f1"][k])
        return t[f"l3d.{name}.out.f0"][k].sum(0)

    intervene_vs_ort(args, res, tmp, model, out, 1, 0.5, 3, v, "cp: ",
                     "cp, bias_rank 2: intervene = onnxruntime on W + δ·Σ_r (rank terms)")


def conv_model(path):
    """x [N, 2, 5, 5] -> Conv(K1 [3, 2, 3, 3], b1, pad 1, stride 2) -> Relu -> Conv(K2 [2, 3, 2, 2], b2)"""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.5).astype(np.float32), n)
             for n, s in (("K1", (3, 2, 3, 3)), ("b1", (3,)), ("K2", (2, 3, 2, 2)), ("b2", (2,)))]
    nodes = [helper.make_node("Conv", ["x", "K1", "b1"], ["h0"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["h0"], ["h"]),
             helper.make_node("Conv", ["h", "K2", "b2"], ["y"])]
    g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 5, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 2, 2])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def check_conv(args, res, tmp):
    import onnx
    from onnx import numpy_helper
    model, out = os.path.join(tmp, "conv.onnx"), os.path.join(tmp, "convdir")
    conv_model(model)
    rng = np.random.default_rng(9)
    data = os.path.join(tmp, "xc.npy")
    np.save(data, rng.standard_normal((256, 2, 5, 5)).astype(np.float32))
    cfg = write_cfg(tmp, "conv")
    with open(cfg) as f:
        text = f.read().replace("  rank: 1\n", "  rank: 2\n")  # kernels of rank 2 per mode
    with open(cfg, "w") as f:
        f.write(text)
    p = run_pdc(args.pdc, [model, "-o", out, "--config", cfg, "--steps", "16", "--data", data])
    if not res.check("conv: l3d run exits 0", p.returncode == 0, p.stderr):
        return
    t = read_safetensors(os.path.join(out, "components.safetensors"))
    res.check("conv: a kernel has a core [n, R, R, R, R] and 4 factors",
              t["l3d.K1.out.core"].shape == (NV, 2, 2, 2, 2)
              and t["l3d.K1.out.f3"].shape == (NV, 2, 3) and "l3d.K1.out.f4" not in t,
              str({k: v.shape for k, v in t.items() if k.startswith("l3d.K1.out")}))
    p = run_pdc(args.pdc, ["eval", out, "--data", data])
    res.check("conv: eval exits 0", p.returncode == 0, p.stderr)
    x = rng.standard_normal((8, 2, 5, 5)).astype(np.float32)
    xp, yp = os.path.join(tmp, "xc8.npy"), os.path.join(tmp, "yc.npz")
    np.save(xp, x)
    p = run_pdc(args.pdc, ["intervene", out, "--subnet", "1", "--delta", "0.5", "--data", xp, "-o", yp])
    if not res.check("conv: intervene exits 0", p.returncode == 0, p.stderr):
        return
    m = onnx.load(model)
    for init in m.graph.initializer:
        w = numpy_helper.to_array(init)
        init.CopyFrom(numpy_helper.from_array((w + 0.5 * subnet(t, init.name, 1)).astype(np.float32),
                                              init.name))
    y, want = list(np.load(yp).values())[0], ort_run(m.SerializeToString(), x)
    res.check("conv: intervene = onnxruntime on W + δ·v_k", np.allclose(y, want, rtol=1e-4, atol=1e-5),
              f"max |diff| {np.abs(y - want).max()}")


def main():
    args = parse_args(__doc__)
    need_onnx()
    res = Results(args.only)
    with TempDir(args.keep, "pdc_l3d_") as tmp:
        model = check_toy(args, res, tmp)
        out, t = check_run(args, res, tmp, model)
        if out:
            check_eval(args, res, out)
            check_intervene(args, res, tmp, model, out, t)
            check_malformed(args, res, tmp, out)
        check_bad_configs(args, res, tmp, model)
        check_refused(args, res, tmp, model)
        check_cp_bias(args, res, tmp, model)
        check_conv(args, res, tmp)
    res.finish()


if __name__ == "__main__":
    main()
