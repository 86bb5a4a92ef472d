"""test_models.py — whole models built with onnx.helper, run in onnxruntime (the
oracle) and in `pdc run`, every output compared at rtol 1e-5 (atol 1e-6 for
values near zero).

  mlp          3-layer MLP, biases, ReLU and GELU, symbolic "batch"
  transformer  2 pre-norm blocks: LayerNorm, q/k/v/o MatMuls, heads via a
               Shape->Gather->Unsqueeze->Concat->Reshape chain, RoPE from
               Slice/Concat/Neg/Mul with cos/sin tables sliced to seq, causal
               mask (Trilu in block 0, a constant table + Where in block 1),
               Softmax, Gelu MLP, residuals; symbolic "batch" and "seq"
  cnn          Conv (pads, strides, groups, dilation) + BatchNormalization +
               Relu + MaxPool + AveragePool + GlobalAveragePool + Flatten + Gemm
  gemm         Gemm with transA, transB, alpha, beta and broadcast C
  einsum_tied  Einsum "bij,jk->bik" and the same weight again through Transpose

Each model is run at more than one binding of its symbolic dims where it has
them, so a shape computed once and cached would show up.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import np  # noqa: E402

common.need_onnx()
from onnx import TensorProto, helper  # noqa: E402

F32 = TensorProto.FLOAT
I64 = TensorProto.INT64


def rnd(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def i64(*v):
    return np.array(v, dtype=np.int64)


# ---- (a) MLP ---------------------------------------------------------------

def build_mlp(rng):
    d_in, h1, h2, d_out = 16, 32, 24, 8
    inits = [
        common.init("fc1.weight", rnd(rng, d_in, h1, scale=d_in ** -0.5)),
        common.init("fc1.bias", rnd(rng, h1, scale=0.1)),
        common.init("fc2.weight", rnd(rng, h1, h2, scale=h1 ** -0.5)),
        common.init("fc2.bias", rnd(rng, h2, scale=0.1)),
        common.init("fc3.weight", rnd(rng, h2, d_out, scale=h2 ** -0.5)),
        common.init("fc3.bias", rnd(rng, d_out, scale=0.1)),
    ]
    n = helper.make_node
    nodes = [
        n("MatMul", ["x", "fc1.weight"], ["mm1"], name="fc1/MatMul"),
        n("Add", ["mm1", "fc1.bias"], ["a1"], name="fc1/Add"),
        n("Relu", ["a1"], ["r1"], name="relu1"),
        n("MatMul", ["r1", "fc2.weight"], ["mm2"], name="fc2/MatMul"),
        n("Add", ["mm2", "fc2.bias"], ["a2"], name="fc2/Add"),
        n("Gelu", ["a2"], ["g2"], name="gelu2"),  # exact (erf) form
        n("MatMul", ["g2", "fc3.weight"], ["mm3"], name="fc3/MatMul"),
        n("Add", ["mm3", "fc3.bias"], ["logits"], name="fc3/Add"),
    ]
    g = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", F32, ["batch", d_in])],
        [helper.make_tensor_value_info("logits", F32, ["batch", d_out])],
        inits)
    model = common.make_model(g, opset=20)  # Gelu is opset 20
    feeds = [{"x": rnd(rng, b, d_in)} for b in (4, 1, 13)]
    return model, feeds


# ---- (b) transformer -------------------------------------------------------

D, H, DH, MAXSEQ, FF = 16, 2, 8, 8, 32


class GraphBuilder:
    """Collects nodes/initializers with unique names, exporter style."""

    def __init__(self):
        self.nodes, self.inits, self.k = [], [], 0

    def name(self, stem):
        self.k += 1
        return f"{stem}_{self.k}"

    def op(self, op_type, inputs, stem=None, n_out=1, **attrs):
        stem = stem or op_type.lower()
        nm = self.name(stem)
        outs = [f"{nm}_out{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=nm, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, arr, stem="c"):
        nm = self.name(stem)
        self.nodes.append(common.const_node(nm, arr))
        return nm

    def weight(self, name, arr):
        self.inits.append(common.init(name, arr))
        return name


def rope_tables():
    """cos/sin [MAXSEQ, DH] for rotate-half RoPE (theta = 10000)."""
    inv = 1.0 / (10000.0 ** (np.arange(0, DH, 2, dtype=np.float64) / DH))
    ang = np.outer(np.arange(MAXSEQ, dtype=np.float64), inv)
    ang = np.concatenate([ang, ang], axis=1)
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def build_transformer(rng):
    b = GraphBuilder()
    cos_t = b.weight("rope.cos", rope_tables()[0])
    sin_t = b.weight("rope.sin", rope_tables()[1])
    # the constant causal-mask table block 1 slices to [seq, seq]
    mask_t = b.weight("causal_mask", np.tril(np.ones((MAXSEQ, MAXSEQ), dtype=bool)))

    # exporter-style shape chain: batch and seq as 1-element int64 tensors
    shp = b.op("Shape", ["x"], "shape")
    bsz = b.op("Unsqueeze", [b.op("Gather", [shp, b.const(np.int64(0), "idx0")], axis=0),
                             b.const(i64(0), "ax0")])
    seq = b.op("Unsqueeze", [b.op("Gather", [shp, b.const(np.int64(1), "idx1")], axis=0),
                             b.const(i64(0), "ax0")])
    heads_shape = b.op("Concat", [bsz, seq, b.const(i64(H)), b.const(i64(DH))], axis=0)
    merge_shape = b.op("Concat", [bsz, seq, b.const(i64(D))], axis=0)
    zero = b.const(i64(0), "zero")
    half = b.const(i64(DH // 2), "half")
    full = b.const(i64(DH), "full")
    ax_last = b.const(i64(3), "ax3")
    ax0 = b.const(i64(0), "ax0")
    ax01 = b.const(i64(0, 1), "ax01")
    cos_s = b.op("Slice", [cos_t, zero, seq, ax0], "cos_slice")  # [seq, DH]
    sin_s = b.op("Slice", [sin_t, zero, seq, ax0], "sin_slice")
    scale = b.const(np.float32(1.0 / np.sqrt(DH)), "scale")
    neg_big = b.const(np.float32(-1e9), "neg_big")

    def layer_norm(x, pfx):
        w = b.weight(f"{pfx}.weight", (1 + rnd(rng, D, scale=0.1)))
        bias = b.weight(f"{pfx}.bias", rnd(rng, D, scale=0.1))
        return b.op("LayerNormalization", [x, w, bias], f"{pfx}/ln", axis=-1, epsilon=1e-5)

    def linear(x, pfx, din, dout, bias=True):
        w = b.weight(f"{pfx}.weight", rnd(rng, din, dout, scale=din ** -0.5))
        y = b.op("MatMul", [x, w], f"{pfx}/MatMul")
        if bias:
            y = b.op("Add", [y, b.weight(f"{pfx}.bias", rnd(rng, dout, scale=0.05))], f"{pfx}/Add")
        return y

    def to_heads(t, pfx):  # [b,s,D] -> [b,H,s,DH]
        r = b.op("Reshape", [t, heads_shape], f"{pfx}/Reshape")
        return b.op("Transpose", [r], f"{pfx}/Transpose", perm=[0, 2, 1, 3])

    def rope(t, pfx):  # rotate-half: t*cos + concat(-t2, t1)*sin
        t1 = b.op("Slice", [t, zero, half, ax_last], f"{pfx}/Slice_lo")
        t2 = b.op("Slice", [t, half, full, ax_last], f"{pfx}/Slice_hi")
        rot = b.op("Concat", [b.op("Neg", [t2], f"{pfx}/Neg"), t1], f"{pfx}/Concat", axis=-1)
        return b.op("Add", [b.op("Mul", [t, cos_s], f"{pfx}/Mul_cos"),
                            b.op("Mul", [rot, sin_s], f"{pfx}/Mul_sin")], f"{pfx}/Add")

    x = "x"
    probs_out = None
    for layer in range(2):
        p = f"layers.{layer}"
        h = layer_norm(x, f"{p}.ln1")
        q = rope(to_heads(linear(h, f"{p}.attn.q", D, D), f"{p}.q"), f"{p}.q_rope")
        k = rope(to_heads(linear(h, f"{p}.attn.k", D, D), f"{p}.k"), f"{p}.k_rope")
        v = to_heads(linear(h, f"{p}.attn.v", D, D), f"{p}.v")
        kt = b.op("Transpose", [k], f"{p}/k_T", perm=[0, 1, 3, 2])
        scores = b.op("Mul", [b.op("MatMul", [q, kt], f"{p}/qk"), scale], f"{p}/scale")
        if layer == 0:
            # ones [seq, seq] -> lower triangle -> "is masked" where it is 0
            ones = b.op("ConstantOfShape", [b.op("Concat", [seq, seq], f"{p}/mask_shape", axis=0)],
                        f"{p}/ones", value=helper.make_tensor("one", F32, [1], [1.0]))
            tri = b.op("Trilu", [ones], f"{p}/tril", upper=0)
            masked = b.op("Equal", [tri, b.const(np.float32(0), "fzero")], f"{p}/is_masked")
            scores = b.op("Where", [masked, neg_big, scores], f"{p}/mask")
        else:
            keep = b.op("Slice", [mask_t, b.const(i64(0, 0), "zz"), b.op("Concat", [seq, seq],
                        f"{p}/mask_end", axis=0), ax01], f"{p}/mask_slice")
            scores = b.op("Where", [keep, scores, neg_big], f"{p}/mask")
        probs = b.op("Softmax", [scores], f"{p}/softmax", axis=-1)
        if layer == 0:
            probs_out = probs
        ctx = b.op("MatMul", [probs, v], f"{p}/ctx")
        ctx = b.op("Transpose", [ctx], f"{p}/ctx_T", perm=[0, 2, 1, 3])
        if layer == 0:
            ctx = b.op("Reshape", [ctx, merge_shape], f"{p}/merge")
        else:  # the other common exporter form: keep dims 0,1 and infer the last
            ctx = b.op("Reshape", [ctx, b.const(i64(0, 0, -1), "keep2")], f"{p}/merge")
        x = b.op("Add", [x, linear(ctx, f"{p}.attn.o", D, D, bias=False)], f"{p}/resid1")
        h = layer_norm(x, f"{p}.ln2")
        m = b.op("Gelu", [linear(h, f"{p}.mlp.fc1", D, FF)], f"{p}/gelu")
        x = b.op("Add", [x, linear(m, f"{p}.mlp.fc2", FF, D)], f"{p}/resid2")
    y = layer_norm(x, "ln_f")
    b.nodes.append(helper.make_node("Identity", [y], ["hidden"], name="out_hidden"))
    b.nodes.append(helper.make_node("Identity", [probs_out], ["attn_probs0"], name="out_probs"))
    g = helper.make_graph(
        b.nodes, "transformer",
        [helper.make_tensor_value_info("x", F32, ["batch", "seq", D])],
        [helper.make_tensor_value_info("hidden", F32, ["batch", "seq", D]),
         helper.make_tensor_value_info("attn_probs0", F32, ["batch", H, "seq", "seq"])],
        b.inits)
    model = common.make_model(g, opset=20)
    feeds = [{"x": rnd(rng, bb, s, D)} for bb, s in ((2, 5), (1, 8), (3, 1))]
    return model, feeds


# ---- (c) CNN ---------------------------------------------------------------

def build_cnn(rng):
    b = GraphBuilder()

    def conv(x, pfx, cin, cout, k, group=1, **attrs):
        w = b.weight(f"{pfx}.weight", rnd(rng, cout, cin // group, k, k,
                                          scale=(cin // group * k * k) ** -0.5))
        bias = b.weight(f"{pfx}.bias", rnd(rng, cout, scale=0.1))
        return b.op("Conv", [x, w, bias], f"{pfx}/Conv", kernel_shape=[k, k], group=group, **attrs)

    def bn(x, pfx, c):
        ws = [b.weight(f"{pfx}.weight", 1 + rnd(rng, c, scale=0.2)),
              b.weight(f"{pfx}.bias", rnd(rng, c, scale=0.2)),
              b.weight(f"{pfx}.running_mean", rnd(rng, c, scale=0.2)),
              b.weight(f"{pfx}.running_var",
                       (0.5 + rng.random(c)).astype(np.float32))]
        return b.op("BatchNormalization", [x] + ws, f"{pfx}/BN", epsilon=1e-5)

    x = conv("img", "conv1", 3, 8, 3, pads=[1, 1, 1, 1])                     # 8x16x16
    x = b.op("Relu", [bn(x, "bn1", 8)], "relu1")
    x = b.op("MaxPool", [x], "pool1", kernel_shape=[2, 2], strides=[2, 2])   # 8x8x8
    x = conv(x, "conv2", 8, 8, 3, group=4, pads=[1, 1, 1, 1])                # grouped 8x8x8
    x = b.op("Relu", [bn(x, "bn2", 8)], "relu2")
    x = conv(x, "conv3", 8, 16, 3, pads=[2, 2, 2, 2], strides=[2, 2],
             dilations=[2, 2])                                               # 16x4x4
    x = b.op("Relu", [x], "relu3")
    x = b.op("AveragePool", [x], "pool2", kernel_shape=[3, 3], strides=[1, 1],
             pads=[1, 1, 1, 1], count_include_pad=0)                         # 16x4x4
    x = b.op("MaxPool", [x], "pool3", kernel_shape=[3, 3], strides=[2, 2],
             pads=[1, 0, 1, 0])                                              # asym pads: 16x2x1
    x = b.op("GlobalAveragePool", [x], "gap")                                # 16x1x1
    x = b.op("Flatten", [x], "flatten", axis=1)                              # 16
    fc_w = b.weight("fc.weight", rnd(rng, 10, 16, scale=0.25))
    fc_b = b.weight("fc.bias", rnd(rng, 10, scale=0.1))
    b.op("Gemm", [x, fc_w, fc_b], "fc", transB=1)
    b.nodes[-1].output[0] = "logits"
    g = helper.make_graph(
        b.nodes, "cnn",
        [helper.make_tensor_value_info("img", F32, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", F32, ["N", 10])],
        b.inits)
    model = common.make_model(g, opset=17)
    feeds = [{"img": rnd(rng, n, 3, 16, 16)} for n in (2, 1)]
    return model, feeds


# ---- (d) Gemm ---------------------------------------------------------------

def build_gemm(rng):
    M, K, N = 4, 6, 5
    n = helper.make_node
    inits = [common.init("B", rnd(rng, N, K)),                 # transB: stored [N, K]
             common.init("C_row", rnd(rng, N)),                # broadcast over rows
             common.init("C_col", rnd(rng, M, 1)),             # broadcast over columns
             common.init("C_scalar", rnd(rng, 1))]
    nodes = [
        n("Gemm", ["At", "B", "C_row"], ["y_row"], name="gemm_row",
          transA=1, transB=1, alpha=0.7, beta=1.3),
        n("Gemm", ["At", "B", "C_col"], ["y_col"], name="gemm_col",
          transA=1, transB=1, alpha=-1.5, beta=0.25),
        n("Gemm", ["At", "B", "C_scalar"], ["y_scalar"], name="gemm_scalar",
          transA=1, transB=1, beta=2.0),
    ]
    g = helper.make_graph(
        nodes, "gemm",
        [helper.make_tensor_value_info("At", F32, [K, M])],    # transA: fed [K, M]
        [helper.make_tensor_value_info(o, F32, [M, N]) for o in ("y_row", "y_col", "y_scalar")],
        inits)
    model = common.make_model(g, opset=17)
    return model, [{"At": rnd(rng, K, M)}]


# ---- (e) Einsum + tied weight -----------------------------------------------

def build_einsum(rng):
    J, Kd = 6, 4
    n = helper.make_node
    nodes = [
        n("Einsum", ["x", "W"], ["proj"], name="einsum_proj", equation="bij,jk->bik"),
        n("Transpose", ["W"], ["W_T"], name="tie_T", perm=[1, 0]),
        n("MatMul", ["proj", "W_T"], ["recon"], name="recon_MatMul"),
    ]
    g = helper.make_graph(
        nodes, "einsum_tied",
        [helper.make_tensor_value_info("x", F32, ["b", 3, J])],
        [helper.make_tensor_value_info("proj", F32, ["b", 3, Kd]),
         helper.make_tensor_value_info("recon", F32, ["b", 3, J])],
        [common.init("W", rnd(rng, J, Kd, scale=0.5))])
    model = common.make_model(g, opset=17)
    return model, [{"x": rnd(rng, bb, 3, J)} for bb in (2, 5)]


MODELS = [
    ("mlp", build_mlp),
    ("transformer", build_transformer),
    ("cnn", build_cnn),
    ("gemm", build_gemm),
    ("einsum_tied", build_einsum),
]


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    import onnx

    res = common.Results(args.only)
    with common.TempDir(args.keep) as tmp:
        for name, build in MODELS:
            if not res.wanted(name):
                continue
            rng = np.random.default_rng(1234)  # fixed seed per model: reproducible alone
            model, feeds_list = build(rng)
            path = os.path.join(tmp, f"{name}.onnx")
            onnx.save_model(model, path)

            # inspect must at least accept the model
            p = common.run_pdc(args.pdc, ["inspect", path])
            res.check(f"{name}/inspect", p.returncode == 0, common.describe_failure(p))

            for fi, feeds in enumerate(feeds_list):
                case = f"{name}[{','.join('x'.join(map(str, a.shape)) for a in feeds.values())}]"
                want = common.ort_run(path, feeds)
                got, p = common.pdc_run(args.pdc, path, feeds, tmp)
                if got is None:
                    res.fail(case, "pdc run failed: " + common.describe_failure(p))
                    continue
                worst_abs = worst_rel = 0.0
                ok_all = True
                for out_name, w in want.items():
                    if out_name not in got:
                        res.fail(f"{case}/{out_name}", f"missing from pdc output (has {sorted(got)})")
                        ok_all = False
                        continue
                    ok, ma, mr, msg = common.compare(got[out_name], w)
                    worst_abs, worst_rel = max(worst_abs, ma), max(worst_rel, mr)
                    if not ok:
                        res.fail(f"{case}/{out_name}", msg)
                        ok_all = False
                extra = sorted(set(got) - set(want))
                if extra:
                    res.fail(case, f"unexpected outputs {extra}")
                    ok_all = False
                if ok_all:
                    res.ok(case, f"{len(want)} output(s), max abs {worst_abs:.3g}, "
                                 f"max rel {worst_rel:.3g}")
            # the explicit --bind form of the same run must agree too
            if name == "mlp":
                feeds = feeds_list[0]
                want = common.ort_run(path, feeds)
                got, p = common.pdc_run(args.pdc, path, feeds, tmp, bind="batch=4")
                if got is None:
                    res.fail("mlp/--bind", "pdc run failed: " + common.describe_failure(p))
                else:
                    common.check_outputs(res, "mlp/--bind", got, want)
    res.finish()


if __name__ == "__main__":
    main()
