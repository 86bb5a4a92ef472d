"""test_external.py — models whose weights live in external data files.

  (a) an MLP saved with onnx.save_model(..., save_as_external_data=True,
      location="w.bin") — and once more with one file per tensor — runs in pdc
      from a different working directory and matches onnxruntime;
  (b) the >2 GiB check: a Gather table of just over 2 GiB stored as external
      data in a SPARSE file (truncate to size, a few nonzero rows written at
      known offsets, including rows at and past the 2 GiB mark). `pdc inspect`
      and `pdc run` must gather the right rows with a peak RSS well under
      1 GiB, which they can only do by mapping the weights rather than reading
      (or copying) them. Skipped (exit 77) where the file system cannot make a
      sparse file.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import np  # noqa: E402

common.need_onnx()
import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

F32 = TensorProto.FLOAT
I64 = TensorProto.INT64

# (b) geometry: 256 float32 per row = 1 KiB rows; 2^21 rows is exactly 2 GiB,
# so rows 2^21 and up start at file offsets that do not fit in 31 bits.
ROW = 256
TWO_GIB_ROWS = 1 << 21
N_ROWS = TWO_GIB_ROWS + 64
NONZERO_ROWS = [0, 12345, TWO_GIB_ROWS - 1, TWO_GIB_ROWS, N_ROWS - 1]
GATHER = [N_ROWS - 1, 0, 7, TWO_GIB_ROWS, 12345, TWO_GIB_ROWS - 1, 1000000, TWO_GIB_ROWS]
RSS_LIMIT_KIB = 1 << 20  # 1 GiB


def row_values(r):
    """Distinct, exactly representable values for nonzero row r."""
    return (np.float32(r % 997 + 1) + np.arange(ROW, dtype=np.float32) / np.float32(256))


# ---- (a) ordinary external data ----------------------------------------------

def build_mlp(rng):
    d_in, hid, d_out = 32, 64, 16
    n = helper.make_node
    inits = [common.init("fc1.weight", (rng.standard_normal((d_in, hid)) * d_in ** -0.5)
                         .astype(np.float32)),
             common.init("fc1.bias", (rng.standard_normal(hid) * 0.1).astype(np.float32)),
             common.init("fc2.weight", (rng.standard_normal((hid, d_out)) * hid ** -0.5)
                         .astype(np.float32)),
             common.init("fc2.bias", (rng.standard_normal(d_out) * 0.1).astype(np.float32))]
    nodes = [n("MatMul", ["x", "fc1.weight"], ["h0"], name="fc1/MatMul"),
             n("Add", ["h0", "fc1.bias"], ["h1"], name="fc1/Add"),
             n("Relu", ["h1"], ["h2"], name="relu"),
             n("MatMul", ["h2", "fc2.weight"], ["h3"], name="fc2/MatMul"),
             n("Add", ["h3", "fc2.bias"], ["y"], name="fc2/Add")]
    g = helper.make_graph(nodes, "mlp_ext",
                          [helper.make_tensor_value_info("x", F32, ["batch", d_in])],
                          [helper.make_tensor_value_info("y", F32, ["batch", d_out])], inits)
    return common.make_model(g, opset=17), {"x": rng.standard_normal((5, d_in)).astype(np.float32)}


def test_external_weights(res, args, tmp):
    for variant, one_file in (("one_file", True), ("per_tensor", False)):
        case = f"external/{variant}"
        if not res.wanted(case):
            continue
        rng = np.random.default_rng(99)
        model, feeds = build_mlp(rng)
        folder = os.path.join(tmp, variant)
        os.makedirs(folder)
        path = os.path.join(folder, "mlp_ext.onnx")
        kw = {"location": "w.bin"} if one_file else {}
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=one_file,
                        size_threshold=0, **kw)
        # make sure the weights really went out of the protobuf
        m = onnx.load_model(path, load_external_data=False)
        ext = [t.name for t in m.graph.initializer if t.data_location == TensorProto.EXTERNAL]
        if len(ext) != len(m.graph.initializer):
            res.fail(case, f"test setup: only {ext} are external")
            continue
        want = common.ort_run(path, feeds)
        # run from another folder: external paths are relative to the model
        elsewhere = os.path.join(tmp, "elsewhere")
        os.makedirs(elsewhere, exist_ok=True)
        got, p = common.pdc_run(args.pdc, path, feeds, folder, cwd=elsewhere)
        if got is None:
            res.fail(case, "pdc run failed: " + common.describe_failure(p))
            continue
        common.check_outputs(res, case, got, want)


# ---- (b) > 2 GiB sparse table ------------------------------------------------

def make_sparse_table(path):
    """Create the sparse table file; returns False if it is not actually sparse."""
    size = N_ROWS * ROW * 4
    with open(path, "wb") as f:
        f.truncate(size)
        for r in NONZERO_ROWS:
            f.seek(r * ROW * 4)
            f.write(row_values(r).tobytes())
    st = os.stat(path)
    if st.st_size != size:
        return False
    # allocated bytes: a sparse file holds little more than the rows we wrote
    return st.st_blocks * 512 < 64 * 1024 * 1024


def build_big_model(folder):
    t = TensorProto()
    t.name = "embed.table"
    t.data_type = F32
    t.dims.extend([N_ROWS, ROW])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "table.bin"), ("offset", "0"), ("length", str(N_ROWS * ROW * 4))):
        e = t.external_data.add()
        e.key, e.value = k, v
    nodes = [helper.make_node("Gather", ["embed.table", "ids"], ["rows"], name="embed/Gather",
                              axis=0)]
    g = helper.make_graph(nodes, "big_gather",
                          [helper.make_tensor_value_info("ids", I64, ["n"])],
                          [helper.make_tensor_value_info("rows", F32, ["n", ROW])], [t])
    ops = [helper.make_opsetid("", 17)]
    m = helper.make_model(g, opset_imports=ops, producer_name="pdc-tests")
    m.ir_version = helper.find_min_ir_version_for(ops)
    path = os.path.join(folder, "big_gather.onnx")
    onnx.save_model(m, path)
    # by path, so the checker resolves table.bin next to the model (it checks
    # that the file exists, it does not read the 2 GiB)
    onnx.checker.check_model(path)
    return path


def run_measured(argv, folder, timeout=common.TIMEOUT_S):
    """Run argv; returns (returncode, stdout, stderr, peak RSS KiB, seconds).
    os.wait4 gives this one child's rusage (RUSAGE_CHILDREN would be the max
    over every child this script has waited for). Linux carries the high-water
    mark across exec, so the figure includes this Python process's RSS at
    fork time (~60-100 MiB with numpy and onnx loaded): an upper bound, which
    is the safe direction for a "stays below" check."""
    out_p, err_p = os.path.join(folder, "stdout.txt"), os.path.join(folder, "stderr.txt")
    t0 = time.monotonic()
    with open(out_p, "wb") as fo, open(err_p, "wb") as fe:
        proc = subprocess.Popen(argv, stdout=fo, stderr=fe)
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    with open(out_p, errors="replace") as f:
        so = f.read()
    with open(err_p, errors="replace") as f:
        se = f.read()
    return proc.returncode, so, se, ru.ru_maxrss, time.monotonic() - t0


def test_big_sparse(res, args, tmp):
    """Returns False if skipped (no sparse files here)."""
    folder = os.path.join(tmp, "big")
    os.makedirs(folder)
    table = os.path.join(folder, "table.bin")
    if not make_sparse_table(table):
        os.unlink(table)
        print(f"skip: {tmp} cannot hold a sparse file (set TMPDIR to a file system that can)")
        return False
    model = build_big_model(folder)

    rc, so, se, rss, secs = run_measured([args.pdc, "inspect", model], folder)
    res.check("big/inspect", rc == 0 and rss < RSS_LIMIT_KIB,
              f"exit {rc}, peak RSS {rss / 1024:.0f} MiB; stderr: {se.strip()[-500:]}",
              f"peak RSS {rss / 1024:.1f} MiB, {secs:.2f}s")

    ids = np.array(GATHER, dtype=np.int64)
    ids_path = os.path.join(folder, "ids.npy")
    np.save(ids_path, ids)
    out = os.path.join(folder, "out.npz")
    rc, so, se, rss, secs = run_measured(
        [args.pdc, "run", model, "--input", f"ids={ids_path}", "-o", out], folder)
    if rc != 0 or not os.path.exists(out):
        res.fail("big/run", f"exit {rc}; stderr: {se.strip()[-600:]}")
        return True
    want = np.zeros((len(GATHER), ROW), np.float32)
    for i, r in enumerate(GATHER):
        if r in NONZERO_ROWS:
            want[i] = row_values(r)
    with np.load(out) as z:
        got = z["rows"] if "rows" in z.files else None
    if got is None:
        res.fail("big/values", "output 'rows' missing from the npz")
    else:
        # a gather copies bits: the values must be exact
        ok = got.shape == want.shape and got.dtype == want.dtype and np.array_equal(got, want)
        bad_rows = ([GATHER[i] for i in range(len(GATHER)) if not np.array_equal(got[i], want[i])]
                    if got.shape == want.shape else "shape " + str(got.shape))
        res.check("big/values", ok, f"wrong rows: {bad_rows}",
                  f"{len(GATHER)} rows incl. offsets >= 2 GiB exact")
    res.check("big/peak_rss", rss < RSS_LIMIT_KIB,
              f"peak RSS {rss / 1024:.0f} MiB for a {N_ROWS * ROW * 4 / 2**30:.2f} GiB table "
              f"(limit {RSS_LIMIT_KIB // 1024} MiB): weights were read, not mapped",
              f"peak RSS {rss / 1024:.1f} MiB for a {N_ROWS * ROW * 4 / 2**30:.2f} GiB table, "
              f"{secs:.2f}s")
    return True


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    res = common.Results(args.only)
    with common.TempDir(args.keep) as tmp:
        test_external_weights(res, args, tmp)
        ran = True
        if res.wanted("big/"):
            ran = test_big_sparse(res, args, tmp)
    if not ran and res.failed == 0:
        print(f"{res.passed} passed, {res.failed} failed")
        sys.exit(common.SKIP)
    res.finish()


if __name__ == "__main__":
    main()
