"""test_malformed.py — pdc must refuse broken models cleanly.

Each case writes one bad model (under its own file name) into a temp folder and
runs both `pdc inspect MODEL` and `pdc run MODEL --input x=x.npy -o out.npz`
with a valid input. Every run must:
  - exit non-zero, and not by a signal (no crash, no abort);
  - print to stderr a message starting "pdc:" that names the model file and,
    where there is one, the culprit node/tensor/op;
  - show no sanitizer report ("AddressSanitizer", "runtime error");
  - create no output file (and leave no temp file behind).
The bad models are built so that exactly one thing is wrong with each.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import np  # noqa: E402

common.need_onnx()
import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

F32 = TensorProto.FLOAT
TWO40 = 1 << 40


def base_graph(nodes=None, inits=None, x_dims=(2, 3), name="g", y_dims=None):
    """x[2,3] + W[2,3] -> Relu -> y: the valid model every case perturbs."""
    nodes = nodes if nodes is not None else [
        helper.make_node("Add", ["x", "W"], ["s"], name="add_w"),
        helper.make_node("Relu", ["s"], ["y"], name="relu")]
    if inits is None:
        inits = [common.init("W", np.arange(6, dtype=np.float32).reshape(2, 3))]
    return helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", F32, list(x_dims))],
        [helper.make_tensor_value_info("y", F32, y_dims)],
        inits)


def raw_model(graph, opset=17):
    """A ModelProto without the checker (these models are broken on purpose)."""
    ops = [helper.make_opsetid("", opset)]
    m = helper.make_model(graph, opset_imports=ops, producer_name="pdc-tests")
    m.ir_version = helper.find_min_ir_version_for(ops)
    return m


def ext_init(name, dims, location, offset=None, length=None):
    """A float initializer whose data lives in an external file."""
    t = TensorProto()
    t.name = name
    t.data_type = F32
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    entries = [("location", location)]
    if offset is not None:
        entries.append(("offset", str(offset)))
    if length is not None:
        entries.append(("length", str(length)))
    for k, v in entries:
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def save_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


# Each case: (name, file name, builder(folder) -> path, culprits). The builder
# writes the model (and any side files) and returns the model path. `culprits`
# lists strings stderr must contain besides the file name; a tuple inside means
# "any one of these".

def case_truncated(folder):
    rng = np.random.default_rng(7)
    inits = [common.init("W", rng.standard_normal((2, 3)).astype(np.float32)),
             common.init("big_pad", rng.standard_normal(4096).astype(np.float32))]
    m = raw_model(base_graph(inits=inits))
    data = m.SerializeToString()
    p = os.path.join(folder, "truncated_model.onnx")
    save_bytes(p, data[: len(data) // 2])
    return p


def case_random_bytes(folder):
    p = os.path.join(folder, "random_bytes.onnx")
    save_bytes(p, np.random.default_rng(11).integers(0, 256, 512, dtype=np.uint8).tobytes())
    return p


def case_png(folder):
    p = os.path.join(folder, "picture.onnx")
    png = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02"
           b"\x00\x00\x00\x90\x91h6" + bytes(64))
    save_bytes(p, png)
    return p


def case_empty(folder):
    p = os.path.join(folder, "empty_model.onnx")
    save_bytes(p, b"")
    return p


def case_undefined(folder):
    nodes = [helper.make_node("Add", ["x", "ghost_tensor"], ["s"], name="add_ghost"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]
    p = os.path.join(folder, "undefined_input.onnx")
    onnx.save_model(raw_model(base_graph(nodes=nodes)), p)
    return p


def case_cycle(folder):
    # cycle_a reads t2, which cycle_b computes from t1, which cycle_a computes
    nodes = [helper.make_node("Add", ["x", "t2"], ["t1"], name="cycle_a"),
             helper.make_node("Relu", ["t1"], ["t2"], name="cycle_b"),
             helper.make_node("Identity", ["t2"], ["y"], name="out")]
    p = os.path.join(folder, "cyclic_graph.onnx")
    onnx.save_model(raw_model(base_graph(nodes=nodes, inits=[])), p)
    return p


def case_short_raw(folder):
    t = TensorProto()
    t.name, t.data_type = "short_init", F32
    t.dims.extend([2, 3])
    t.raw_data = np.zeros(2, np.float32).tobytes()  # 8 bytes for a 24-byte tensor
    nodes = [helper.make_node("Add", ["x", "short_init"], ["s"], name="add_w"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]
    p = os.path.join(folder, "short_raw_data.onnx")
    onnx.save_model(raw_model(base_graph(nodes=nodes, inits=[t])), p)
    return p


def case_huge_input(folder):
    nodes = [helper.make_node("Relu", ["huge_x"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info("huge_x", F32, [TWO40, 3])],
                          [helper.make_tensor_value_info("y", F32, None)])
    p = os.path.join(folder, "huge_input_dim.onnx")
    onnx.save_model(raw_model(g), p)
    return p


def case_huge_init(folder):
    t = TensorProto()
    t.name, t.data_type = "huge_init", F32
    t.dims.extend([TWO40])
    t.raw_data = np.zeros(4, np.float32).tobytes()
    nodes = [helper.make_node("Add", ["x", "huge_init"], ["s"], name="add_w"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]
    p = os.path.join(folder, "huge_init_dim.onnx")
    onnx.save_model(raw_model(base_graph(nodes=nodes, inits=[t])), p)
    return p


def _ext_model(folder, sub, fname, tname, location, offset=None, length=None, data_at=None):
    """Model in folder/sub/fname with initializer tname stored at `location`;
    a valid 24-byte data file is written at data_at (so only the path or the
    range is wrong, never the mere absence of the file)."""
    d = os.path.join(folder, sub)
    os.makedirs(d, exist_ok=True)
    if data_at:
        save_bytes(data_at, np.arange(6, dtype=np.float32).tobytes())
    nodes = [helper.make_node("Add", ["x", tname], ["s"], name="add_w"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]
    inits = [ext_init(tname, [2, 3], location, offset, length)]
    p = os.path.join(d, fname)
    onnx.save_model(raw_model(base_graph(nodes=nodes, inits=inits)), p)
    return p


def case_ext_escape(folder):
    return _ext_model(folder, "sub_escape", "escape_ext.onnx", "escape_w", "../x.bin",
                      data_at=os.path.join(folder, "x.bin"))


def case_ext_symlink(folder):
    # a plain name inside the folder that is a symlink to a file outside it
    outside = os.path.join(folder, "outside.bin")
    p = _ext_model(folder, "sub_link", "symlink_ext.onnx", "link_w", "w.bin", data_at=outside)
    os.symlink(outside, os.path.join(folder, "sub_link", "w.bin"))
    return p


def case_ext_absolute(folder):
    target = os.path.join(folder, "abs_target.bin")
    return _ext_model(folder, "sub_abs", "absolute_ext.onnx", "abs_w", target, data_at=target)


def case_ext_past_eof(folder):
    d = os.path.join(folder, "sub_eof")
    return _ext_model(folder, "sub_eof", "past_eof_ext.onnx", "eof_w", "w.bin",
                      offset=64, length=24, data_at=os.path.join(d, "w.bin"))


def case_ext_length_past_eof(folder):
    d = os.path.join(folder, "sub_len")
    return _ext_model(folder, "sub_len", "length_past_eof.onnx", "len_w", "w.bin",
                      offset=16, length=24, data_at=os.path.join(d, "w.bin"))


def case_unsupported_op(folder):
    # Det is a standard ONNX op (opset 11) that pdc does not implement
    nodes = [helper.make_node("MatMul", ["x", "Wt"], ["sq"], name="square"),
             helper.make_node("Det", ["sq"], ["y"], name="determinant")]
    inits = [common.init("Wt", np.ones((3, 2), np.float32))]
    g = base_graph(nodes=nodes, inits=inits, y_dims=[])
    m = raw_model(g)
    onnx.checker.check_model(m)  # valid ONNX: only pdc's op coverage is at fault
    p = os.path.join(folder, "unsupported_op.onnx")
    onnx.save_model(m, p)
    return p


def case_unknown_attr(folder):
    # "transb" is not Gemm's "transB": read as absent it would silently not transpose
    nodes = [helper.make_node("Gemm", ["x", "Wg"], ["y"], name="gemm_typo", transb=1)]
    g = base_graph(nodes=nodes, inits=[common.init("Wg", np.ones((2, 3), np.float32))],
                   y_dims=[2, 2])
    p = os.path.join(folder, "unknown_attr.onnx")
    onnx.save_model(raw_model(g), p)
    return p


def case_attr_wrong_type(folder):
    # Softmax's axis as INTS: read as absent it would normalise over the default axis
    nodes = [helper.make_node("Softmax", ["x"], ["y"], name="softmax_ints", axis=[0])]
    p = os.path.join(folder, "attr_type.onnx")
    onnx.save_model(raw_model(base_graph(nodes=nodes, inits=[])), p)
    return p


def _pb_field(num, wire, payload):
    """one protobuf field: key varint, then a varint or length-delimited payload"""
    def varint(v):
        out = bytearray()
        while True:
            b = v & 0x7F
            v >>= 7
            out.append(b | (0x80 if v else 0))
            if not v:
                return bytes(out)
    key = varint((num << 3) | wire)
    return key + (varint(payload) if wire == 0 else varint(len(payload)) + payload)


def case_deep_nesting(folder):
    # a graph input typed sequence<sequence<...<float>...>> 5000 deep: protobuf-c would
    # recurse once per level and overflow the stack (34 KB of file)
    t = _pb_field(1, 0, 1)  # TypeProto.tensor_type would need more; elem_type-free is fine
    t = _pb_field(1, 2, _pb_field(1, 0, 1))  # TypeProto{tensor_type{elem_type: FLOAT}}
    for _ in range(5000):  # TypeProto{sequence_type(4): Sequence{elem_type(1): t}}
        t = _pb_field(4, 2, _pb_field(1, 2, t))
    vi = _pb_field(1, 2, b"deep_x") + _pb_field(2, 2, t)
    graph = _pb_field(2, 2, b"g") + _pb_field(11, 2, vi) + _pb_field(12, 2, _pb_field(1, 2, b"deep_x"))
    model = _pb_field(1, 0, 8) + _pb_field(8, 2, _pb_field(2, 0, 17)) + _pb_field(7, 2, graph)
    p = os.path.join(folder, "deep_nesting.onnx")
    save_bytes(p, model)
    return p


def case_message_flood(folder):
    # 4 M empty NodeProtos, 2 bytes each: an 8 MB file that protobuf-c would expand to
    # about a GB of message structs before any node-count limit could look at it
    graph = _pb_field(2, 2, b"g") + b"\x0a\x00" * (4 << 20)
    model = _pb_field(1, 0, 8) + _pb_field(8, 2, _pb_field(2, 0, 17)) + _pb_field(7, 2, graph)
    p = os.path.join(folder, "flood.onnx")
    save_bytes(p, model)
    return p


def case_conv_dilation_wrap(folder):
    # dilation 2^62: (k-1)*dilation wraps int64 to a small "valid" extent unless checked
    shape = common.init("shape4", np.array([1, 1, 2, 3], np.int64))
    w = common.init("W_conv", np.ones((1, 1, 5, 5), np.float32))
    nodes = [helper.make_node("Reshape", ["x", "shape4"], ["x4"], name="to4d"),
             helper.make_node("Conv", ["x4", "W_conv"], ["y"], name="conv_dil",
                              dilations=[2 ** 62, 2 ** 62])]
    g = base_graph(nodes=nodes, inits=[shape, w], y_dims=[1, 1, 2, 3])
    p = os.path.join(folder, "conv_dilation.onnx")
    onnx.save_model(raw_model(g), p)
    return p


CASES = [
    ("truncated", case_truncated, []),
    ("random_bytes", case_random_bytes, []),
    ("png_header", case_png, []),
    ("empty_file", case_empty, []),
    ("undefined_tensor", case_undefined, ["ghost_tensor"]),
    ("cycle", case_cycle, [("cycle_a", "cycle_b", "t1", "t2")]),
    ("short_raw_data", case_short_raw, ["short_init"]),
    ("input_dim_2^40", case_huge_input, ["huge_x"]),
    ("initializer_dim_2^40", case_huge_init, ["huge_init"]),
    ("external_escape", case_ext_escape, ["escape_w"]),
    ("external_absolute", case_ext_absolute, ["abs_w"]),
    ("external_symlink_out", case_ext_symlink, ["link_w", "outside the model's folder"]),
    ("external_offset_past_eof", case_ext_past_eof, ["eof_w"]),
    ("external_length_past_eof", case_ext_length_past_eof, ["len_w"]),
    ("unsupported_op", case_unsupported_op, ["Det"]),
    ("unknown_attribute", case_unknown_attr, ["gemm_typo", "transb"]),
    ("attribute_wrong_type", case_attr_wrong_type, ["softmax_ints", "axis", "INTS", "INT"]),
    ("deep_nesting", case_deep_nesting, ["nested"]),
    ("message_flood", case_message_flood, ["flood.onnx", "refused"]),
]

# malformed only in what compiling reveals: `pdc inspect` (import only) may succeed
RUN_ONLY_CASES = [
    ("conv_dilation_wrap", case_conv_dilation_wrap, ["conv_dil", "dilation"]),
]


def check_run(res, label, p, model_path, culprits, out_path, folder_before, folder):
    problems = []
    err = p.stderr or ""
    if p.returncode is None:
        problems.append(err.strip())
    elif p.returncode < 0:
        problems.append(f"killed by signal {-p.returncode}")
    elif p.returncode == 0:
        problems.append("exit status 0")
    if "AddressSanitizer" in err or "runtime error" in err or "LeakSanitizer" in err:
        problems.append("sanitizer report in stderr")
    if not err.startswith("pdc:"):
        problems.append("stderr does not start with 'pdc:'")
    base = os.path.basename(model_path)
    if base not in err:
        problems.append(f"stderr does not name {base}")
    for c in culprits:
        alts = c if isinstance(c, tuple) else (c,)
        if not any(a in err for a in alts):
            problems.append(f"stderr names none of {alts}" if len(alts) > 1
                            else f"stderr does not name {c!r}")
    if out_path and os.path.exists(out_path):
        problems.append(f"output {os.path.basename(out_path)} was created")
    stray = sorted(set(os.listdir(folder)) - folder_before
                   - {os.path.basename(out_path or "")})  # the output itself: reported above
    if stray:
        problems.append(f"left files behind: {stray}")
    first = err.strip().splitlines()[0] if err.strip() else "(no stderr)"
    res.check(label, not problems, "; ".join(problems) + f" | stderr: {err.strip()[:500]!r}",
              first[:200])


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    res = common.Results(args.only)
    with common.TempDir(args.keep) as tmp:
        xin = os.path.join(tmp, "x.npy")
        np.save(xin, np.ones((2, 3), np.float32))
        for name, build, culprits in CASES + RUN_ONLY_CASES:
            if not res.wanted(name):
                continue
            run_only = (name, build, culprits) in RUN_ONLY_CASES
            case_dir = os.path.join(tmp, name.replace("^", ""))
            os.makedirs(case_dir)
            model = build(case_dir)
            run_dir = os.path.dirname(model)
            # inputs: the model's graph input is "x" except in the huge-input
            # case, whose input is "huge_x"; give both a valid [2,3] array
            in_name = "huge_x" if name == "input_dim_2^40" else "x"

            before = set(os.listdir(run_dir))
            if not run_only:
                p = common.run_pdc(args.pdc, ["inspect", model])
                check_run(res, f"{name}/inspect", p, model, culprits, None, before, run_dir)

            out = os.path.join(run_dir, "out.npz")
            before = set(os.listdir(run_dir))
            p = common.run_pdc(args.pdc, ["run", model, "--input", f"{in_name}={xin}", "-o", out])
            check_run(res, f"{name}/run", p, model, culprits, out, before, run_dir)
    res.finish()


if __name__ == "__main__":
    main()
