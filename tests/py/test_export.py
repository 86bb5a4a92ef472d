"""test_export.py — models written by pdc (`pdc convert IN -o OUT`, an import and
re-export through pdc's IR) must pass onnx.checker.check_model(full_check=True)
and give, in onnxruntime, exactly the outputs of the source model.

  conformance  backend test models (Gemm, Conv, Softmax, LogSoftmax, Reduce*,
               LayerNormalization; opsets 11-17) with their test_data_set_0
  default      models/default.onnx (symbolic batch, a tied weight) with
               models/default_input.npy
  old11        onnx.helper model at opset 11 (Squeeze/Unsqueeze/Split/Reduce*
               axes as attributes, a MatMul weight, symbolic batch): written
               back at 11 (attribute forms restored) and at 13 (input forms)
  old9         opset 9: Slice, Clip and Pad attribute forms
  untyped      outputs declared without a type (legal for onnxruntime, not for
               the checker): pdc convert infers them, so the written model checks
  external     the old11 model with --external-threshold 16: weights in
               OUT.onnx.data at 4096-aligned offsets
  softmax@11   Softmax-13 (default axis) written at opset 11: axis made explicit
  downgrade    a run-time axes input cannot be written at opset 11: clear error,
               no file left
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import np  # noqa: E402

common.need_onnx()
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

NODE_DATA = "/usr/share/libonnx-testdata/data/node"
CONFORMANCE = [
    "test_gemm_all_attributes",
    "test_gemm_default_vector_bias",
    "test_conv_with_strides_padding",
    "test_softmax_axis_1",
    "test_softmax_default_axis",
    "test_logsoftmax_axis_1",
    "test_reduce_mean_keepdims_random",
    "test_reduce_sum_keepdims_random",
    "test_reduce_max_do_not_keepdims_random",
    "test_reduce_log_sum_exp_keepdims_random",
    "test_layer_normalization_4d_axis1",
]

F32 = TensorProto.FLOAT


def conformance_feeds(case_dir, model):
    feeds = {}
    names = [i.name for i in model.graph.input
             if i.name not in {t.name for t in model.graph.initializer}]
    for k, name in enumerate(names):
        t = onnx.load_tensor(os.path.join(case_dir, "test_data_set_0", f"input_{k}.pb"))
        feeds[name] = numpy_helper.to_array(t)
    return feeds


def build_old11(rng):
    n = helper.make_node
    w = rng.standard_normal((4, 5)).astype(np.float32)
    nodes = [
        n("Squeeze", ["x"], ["sq"], name="sq", axes=[1]),
        n("ReduceSum", ["sq"], ["rs"], name="rs", axes=[2], keepdims=0),
        n("ReduceMean", ["sq"], ["rm"], name="rm", axes=[1], keepdims=1),
        n("Split", ["sq"], ["sp1", "sp2"], name="split", axis=2, split=[1, 3]),
        n("Unsqueeze", ["rs"], ["un"], name="un", axes=[0]),
        n("MatMul", ["sq", "W"], ["mm"], name="mm"),
    ]
    g = helper.make_graph(
        nodes, "old11",
        [helper.make_tensor_value_info("x", F32, ["batch", 1, 3, 4])],
        [helper.make_tensor_value_info("un", F32, [1, "batch", 3]),
         helper.make_tensor_value_info("rm", F32, ["batch", 1, 4]),
         helper.make_tensor_value_info("sp1", F32, ["batch", 3, 1]),
         helper.make_tensor_value_info("sp2", F32, ["batch", 3, 3]),
         helper.make_tensor_value_info("mm", F32, ["batch", 3, 5])],
        [common.init("W", w)])
    model = common.make_model(g, opset=11)
    feeds = {"x": rng.standard_normal((2, 1, 3, 4)).astype(np.float32)}
    return model, feeds


def build_old9(rng):
    n = helper.make_node
    nodes = [
        n("Slice", ["x"], ["sl"], name="slice", starts=[0, 1], ends=[2, 5], axes=[0, 1]),
        n("Clip", ["sl"], ["cl"], name="clip", min=-0.5, max=0.75),
        n("Pad", ["cl"], ["pd"], name="pad", pads=[0, 1, 1, 0], value=2.5, mode="constant"),
    ]
    g = helper.make_graph(
        nodes, "old9",
        [helper.make_tensor_value_info("x", F32, [3, 6])],
        [helper.make_tensor_value_info("pd", F32, [3, 5])])
    model = common.make_model(g, opset=9)
    feeds = {"x": rng.standard_normal((3, 6)).astype(np.float32)}
    return model, feeds


def build_untyped(rng):
    """Outputs with no type at all, or an element type but no shape."""
    n = helper.make_node
    bare = onnx.ValueInfoProto()
    bare.name = "y"
    g = helper.make_graph(
        [n("Relu", ["x"], ["r"], name="relu"),
         n("ReduceSum", ["r"], ["y"], name="rs", axes=[1], keepdims=0),
         n("Neg", ["r"], ["z"], name="neg")],
        "untyped",
        [helper.make_tensor_value_info("x", F32, ["N", 3])],
        [bare, helper.make_tensor_value_info("z", F32, None)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)],
                              producer_name="pdc-tests")
    model.ir_version = 6
    feeds = {"x": rng.standard_normal((2, 3)).astype(np.float32)}
    return model, feeds


def same_outputs(res, case, got, want):
    """onnxruntime on the same ops: outputs must be identical, not just close."""
    if sorted(got) != sorted(want):
        return res.fail(case, f"output names {sorted(got)}, want {sorted(want)}")
    for name, w in want.items():
        g = got[name]
        ok = g.dtype == w.dtype and g.shape == w.shape and np.array_equal(g, w, equal_nan=True)
        if not ok:
            _, _, _, msg = common.compare(g, w, rtol=0, atol=0)
            return res.fail(case, f"output '{name}': {msg}")
    return res.ok(case, f"{len(want)} output(s) identical")


def convert(res, args, case, src, dst, extra=()):
    p = common.run_pdc(args.pdc, ["convert", src, "-o", dst] + list(extra))
    if p.returncode != 0:
        res.fail(f"{case}/convert", common.describe_failure(p))
        return False
    return True


def check_model(res, case, path):
    try:
        onnx.checker.check_model(path, full_check=True)
    except Exception as e:  # noqa: BLE001 - report whatever the checker says
        res.fail(f"{case}/checker", str(e).strip().splitlines()[0][:400])
        return False
    res.ok(f"{case}/checker")
    return True


def round_trip(res, args, case, src, dst, feeds, extra=()):
    """convert, check, run both in onnxruntime; returns the written model or None."""
    if not convert(res, args, case, src, dst, extra) or not check_model(res, case, dst):
        return None
    try:
        want = common.ort_run(src, feeds)
        got = common.ort_run(dst, feeds)
    except Exception as e:  # noqa: BLE001
        res.fail(f"{case}/onnxruntime", str(e).strip()[:400])
        return None
    same_outputs(res, f"{case}/outputs", got, want)
    return onnx.load(dst, load_external_data=False)


def attrs_of(model, node_name):
    for nd in model.graph.node:
        if nd.name == node_name:
            return {a.name: helper.get_attribute_value(a) for a in nd.attribute}, list(nd.input)
    return None, None


def check_forms(res, case, model, want):
    """want: node name -> (attribute that must be there or None, number of inputs)."""
    for node_name, (attr, n_in) in want.items():
        a, ins = attrs_of(model, node_name)
        if a is None:
            res.fail(f"{case}/{node_name}", "node missing from the written model")
        elif (attr is not None and attr not in a) or len(ins) != n_in:
            res.fail(f"{case}/{node_name}", f"attributes {sorted(a)}, inputs {ins}")
        else:
            res.ok(f"{case}/{node_name}", f"attributes {sorted(a)}, {n_in} input(s)")


def run_conformance(res, args, tmp):
    for name in CONFORMANCE:
        if not res.wanted(name):
            continue
        case_dir = os.path.join(NODE_DATA, name)
        src = os.path.join(case_dir, "model.onnx")
        if not os.path.exists(src):
            print(f"skip {name}: {src} not installed")
            continue
        feeds = conformance_feeds(case_dir, onnx.load(src))
        round_trip(res, args, name, src, os.path.join(tmp, name + ".onnx"), feeds)


def run_default(res, args, tmp):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models")
    src, npy = os.path.join(root, "default.onnx"), os.path.join(root, "default_input.npy")
    if not res.wanted("default") or not (os.path.exists(src) and os.path.exists(npy)):
        return
    name = onnx.load(src).graph.input[0].name
    m = round_trip(res, args, "default", src, os.path.join(tmp, "default.onnx"),
                   {name: np.load(npy)})
    if m is not None:
        dims = [d.dim_param or d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
        res.check("default/output-dims", dims[0] == "batch", f"output dims {dims}")


def run_old11(res, args, tmp, rng):
    model, feeds = build_old11(rng)
    src = os.path.join(tmp, "old11_src.onnx")
    onnx.save(model, src)
    if res.wanted("old11"):
        m = round_trip(res, args, "old11@11", src, os.path.join(tmp, "old11.onnx"), feeds)
        if m is not None:
            check_forms(res, "old11@11", m, {"sq": ("axes", 1), "rs": ("axes", 1),
                                              "rm": ("axes", 1), "split": ("split", 1),
                                              "un": ("axes", 1)})
            dims = [d.dim_param for d in m.graph.input[0].type.tensor_type.shape.dim]
            res.check("old11@11/dim_param", dims[0] == "batch", f"input dims {dims}")
        m = round_trip(res, args, "old11@13", src, os.path.join(tmp, "old11_13.onnx"), feeds,
                       ["--opset", "13"])
        if m is not None:
            check_forms(res, "old11@13", m, {"sq": (None, 2), "rs": (None, 2), "rm": ("axes", 1),
                                              "split": (None, 2), "un": (None, 2)})
    if res.wanted("external"):
        run_external(res, args, tmp, src, feeds)


def run_external(res, args, tmp, src, feeds):
    sub = os.path.join(tmp, "ext")
    os.makedirs(sub, exist_ok=True)
    dst = os.path.join(sub, "model.onnx")
    m = round_trip(res, args, "external", src, dst, feeds, ["--external-threshold", "16"])
    if m is None:
        return
    ext = [t for t in m.graph.initializer
           if t.data_location == TensorProto.EXTERNAL]
    info = [{e.key: e.value for e in t.external_data} for t in ext]
    ok = (len(ext) >= 1 and all(i.get("location") == "model.onnx.data" for i in info)
          and all(int(i.get("offset", "0")) % 4096 == 0 for i in info))
    res.check("external/layout", ok, f"external tensors {info}", f"{len(ext)} external tensor(s)")
    left = sorted(os.listdir(sub))
    res.check("external/files", left == ["model.onnx", "model.onnx.data"], f"folder holds {left}")


def run_old9(res, args, tmp, rng):
    if not res.wanted("old9"):
        return
    model, feeds = build_old9(rng)
    src = os.path.join(tmp, "old9_src.onnx")
    onnx.save(model, src)
    m = round_trip(res, args, "old9@9", src, os.path.join(tmp, "old9.onnx"), feeds)
    if m is not None:
        check_forms(res, "old9@9", m, {"slice": ("starts", 1), "clip": ("min", 1),
                                       "pad": ("pads", 1)})


def run_untyped(res, args, tmp, rng):
    if not res.wanted("untyped"):
        return
    model, feeds = build_untyped(rng)
    src = os.path.join(tmp, "untyped_src.onnx")
    onnx.save(model, src)
    m = round_trip(res, args, "untyped", src, os.path.join(tmp, "untyped.onnx"), feeds)
    if m is not None:
        ranks = [len(o.type.tensor_type.shape.dim) for o in m.graph.output]
        res.check("untyped/ranks", ranks == [1, 2], f"output ranks {ranks}")


def run_softmax_down(res, args, tmp):
    name = "test_softmax_default_axis"
    case_dir = os.path.join(NODE_DATA, name)
    src = os.path.join(case_dir, "model.onnx")
    if not res.wanted("softmax@11") or not os.path.exists(src):
        return
    feeds = conformance_feeds(case_dir, onnx.load(src))
    m = round_trip(res, args, "softmax@11", src, os.path.join(tmp, "softmax11.onnx"), feeds,
                   ["--opset", "11"])
    if m is not None:
        a, _ = attrs_of(m, m.graph.node[0].name)
        rank = len(next(iter(feeds.values())).shape)
        res.check("softmax@11/axis", a == {"axis": rank - 1}, f"attributes {a}")


def run_downgrade(res, args, tmp):
    if not res.wanted("downgrade"):
        return
    src = os.path.join(NODE_DATA, "test_reduce_sum_keepdims_random", "model.onnx")
    if not os.path.exists(src):
        print("skip downgrade: conformance data not installed")
        return
    sub = os.path.join(tmp, "down")
    os.makedirs(sub, exist_ok=True)
    p = common.run_pdc(args.pdc, ["convert", src, "-o", os.path.join(sub, "m.onnx"),
                                  "--opset", "11"])
    ok = p.returncode == 1 and "run time" in p.stderr and "ReduceSum" in p.stderr
    res.check("downgrade/error", ok, common.describe_failure(p), p.stderr.strip()[:200])
    res.check("downgrade/no-file", os.listdir(sub) == [], f"folder holds {os.listdir(sub)}")


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    res = common.Results(args.only)
    rng = np.random.default_rng(7)
    with common.TempDir(args.keep) as tmp:
        run_conformance(res, args, tmp)
        run_default(res, args, tmp)
        run_old11(res, args, tmp, rng)
        run_old9(res, args, tmp, rng)
        run_untyped(res, args, tmp, rng)
        run_softmax_down(res, args, tmp)
        run_downgrade(res, args, tmp)
    res.finish()


if __name__ == "__main__":
    main()
