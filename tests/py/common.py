"""common.py — shared helpers for the Python oracle tests (tests/py/test_*.py).

Each test script is run by CTest as
    .venv/bin/python tests/py/test_X.py --pdc PATH_TO_pdc
and exits 0 (all passed), 1 (something failed) or 77 (skipped), printing a final
line "N passed, M failed". onnxruntime is the oracle: a model is built with
onnx.helper, run in onnxruntime and in `pdc run`, and every output compared.

Not a test itself (no test_ prefix), so the CMake glob does not pick it up.
"""
import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

SKIP = 77

# Default comparison tolerance. rtol is the contract; atol only absorbs values
# that are (nearly) zero, where a relative error is meaningless.
RTOL = 1e-5
ATOL = 1e-6

# A model run should take well under a second; the limit only turns a hang
# into a failure instead of stalling the whole CTest run.
TIMEOUT_S = 300

try:
    import numpy as np
except ImportError:  # pragma: no cover - exercised only on broken venvs
    print("skip: numpy is not installed in this python (run scripts/deps.sh --test)")
    sys.exit(SKIP)


def need_onnx():
    """Import onnx + onnxruntime or skip the whole script (exit 77)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        print(f"skip: {e} (run scripts/deps.sh --test)")
        sys.exit(SKIP)


def parse_args(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--pdc", required=True, help="path to the pdc binary")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder for debugging")
    ap.add_argument("-k", dest="only", default=None, help="run only cases whose name contains this")
    args = ap.parse_args()
    if not (os.path.isfile(args.pdc) and os.access(args.pdc, os.X_OK)):
        print(f"error: --pdc {args.pdc} is not an executable file")
        sys.exit(1)
    args.pdc = os.path.abspath(args.pdc)
    return args


class Results:
    """Counts checks and prints the summary line CTest logs show."""

    def __init__(self, only=None):
        self.passed = 0
        self.failed = 0
        self.only = only

    def wanted(self, name):
        return self.only is None or self.only in name

    def ok(self, name, detail=""):
        self.passed += 1
        print(f"PASS {name}{': ' + detail if detail else ''}")

    def fail(self, name, detail):
        self.failed += 1
        print(f"FAIL {name}: {detail}")

    def check(self, name, cond, detail_fail, detail_ok=""):
        if cond:
            self.ok(name, detail_ok)
        else:
            self.fail(name, detail_fail)
        return cond

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        sys.stdout.flush()
        sys.exit(1 if self.failed else 0)


class TempDir:
    """A scratch folder removed on exit unless --keep was given."""

    def __init__(self, keep=False, prefix="pdc_py_"):
        self.path = tempfile.mkdtemp(prefix=prefix)
        self.keep = keep

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        if self.keep:
            print(f"(kept {self.path})")
        else:
            shutil.rmtree(self.path, ignore_errors=True)


# ---- building models -----------------------------------------------------------

def make_model(graph, opset=17):
    """A ModelProto importing the default domain at `opset`, with the lowest IR
    version that allows it (what an exporter targeting that opset would write),
    checked by onnx.checker so a test never blames pdc for a broken model."""
    import onnx
    from onnx import helper

    ops = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=ops, producer_name="pdc-tests")
    model.ir_version = helper.find_min_ir_version_for(ops)
    onnx.checker.check_model(model, full_check=True)
    return model


def init(name, arr):
    """An initializer from a numpy array (raw_data, as exporters write it)."""
    from onnx import numpy_helper

    return numpy_helper.from_array(np.ascontiguousarray(arr), name)


def const_node(name, arr):
    """A Constant node producing `name` (how exporters embed small shape constants)."""
    from onnx import helper, numpy_helper

    return helper.make_node("Constant", [], [name], name=f"const_{name}",
                            value=numpy_helper.from_array(np.asarray(arr), name + "_value"))


# ---- running ----------------------------------------------------------------------

def ort_run(model_path, feeds):
    """Run in onnxruntime on the CPU, with graph optimisations off so the oracle
    is the plain per-op semantics (fusions may reassociate arithmetic)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, feeds)
    return dict(zip(names, outs))


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


def write_inputs(feeds, folder):
    """Save each feed as an .npy; returns the --input arguments for pdc run."""
    args = []
    for i, (name, arr) in enumerate(feeds.items()):
        f = os.path.join(folder, f"in{i}_{_safe(name)}.npy")
        np.save(f, arr)
        args += ["--input", f"{name}={f}"]
    return args


def run_pdc(pdc, argv, timeout=TIMEOUT_S, cwd=None):
    """Run pdc with argv; returns a CompletedProcess (text stdout/stderr).
    A timeout is reported as returncode None with a note in stderr."""
    try:
        return subprocess.run([pdc] + argv, capture_output=True, text=True, errors="replace",
                              timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess([pdc] + argv, None, e.stdout or "",
                                           f"(timed out after {timeout}s)")


def pdc_run(pdc, model_path, feeds, folder, bind=None, out_name="out.npz", cwd=None):
    """`pdc run MODEL --input ... -o OUT.npz`; returns (outputs dict or None, proc)."""
    out = os.path.join(folder, out_name)
    if os.path.exists(out):
        os.unlink(out)
    argv = ["run", model_path] + write_inputs(feeds, folder) + ["-o", out]
    if bind:
        argv += ["--bind", bind]
    p = run_pdc(pdc, argv, cwd=cwd)
    if p.returncode != 0 or not os.path.exists(out):
        return None, p
    with np.load(out) as z:
        outs = {k: z[k] for k in z.files}
    return outs, p


def describe_failure(p):
    """One-line summary of a failed pdc process for the FAIL message."""
    if p.returncode is None:
        return p.stderr.strip()
    if p.returncode < 0:
        return f"killed by signal {-p.returncode}; stderr: {p.stderr.strip()[-600:]}"
    err = p.stderr.strip()
    return f"exit {p.returncode}; stderr: {err[-600:] if err else '(empty)'}"


# ---- comparing -------------------------------------------------------------------

def compare(got, want, rtol=RTOL, atol=ATOL):
    """(ok, max_abs, max_rel, message) for one output. Shapes and dtypes must
    match exactly; values within atol + rtol*|want| elementwise (numpy.isclose),
    NaNs only where the oracle has NaNs."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        return False, float("nan"), float("nan"), f"shape {got.shape}, want {want.shape}"
    if got.dtype != want.dtype:
        return False, float("nan"), float("nan"), f"dtype {got.dtype}, want {want.dtype}"
    if got.size == 0:
        return True, 0.0, 0.0, "empty"
    if want.dtype.kind not in "fc":
        bad = int(np.count_nonzero(got != want))
        return bad == 0, float(bad), 0.0, f"{bad} of {got.size} elements differ"
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    diff = np.abs(g - w)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = diff / np.maximum(np.abs(w), np.finfo(np.float64).tiny)
    finite = np.isfinite(w)
    max_abs = float(np.max(diff[finite])) if finite.any() else 0.0
    max_rel = float(np.max(rel[finite & (np.abs(w) > atol)])) if (finite & (np.abs(w) > atol)).any() else 0.0
    close = np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
    bad = int(np.count_nonzero(~close))
    if bad:
        i = np.unravel_index(int(np.argmax(~close)), close.shape)
        msg = (f"{bad} of {got.size} elements differ (first at {tuple(int(x) for x in i)}: "
               f"got {g[i]:.9g}, want {w[i]:.9g}); max abs {max_abs:.3g}, max rel {max_rel:.3g}")
        return False, max_abs, max_rel, msg
    return True, max_abs, max_rel, f"max abs {max_abs:.3g}, max rel {max_rel:.3g}"


def check_outputs(res, case, got, want, rtol=RTOL, atol=ATOL):
    """Compare every oracle output with pdc's; one PASS/FAIL line per output."""
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    if missing or extra:
        res.fail(case, f"output names differ: missing {missing}, unexpected {extra}")
        return False
    all_ok = True
    for name, w in want.items():
        ok, _, _, msg = compare(got[name], w, rtol, atol)
        res.check(f"{case}/{name}", ok, msg, msg)
        all_ok &= ok
    return all_ok


def malformed_dir(src, dst, item, shape=None):
    """A copy of decomposition folder src at dst whose components.safetensors declares
    `item` with its two dims swapped, or with `shape` when given (of the same element
    count: the byte count still matches, so only a shape check sees it); any eval.json
    is left out."""
    import shutil
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("eval.json"))
    path = os.path.join(dst, "components.safetensors")
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    old = header[item]["shape"]
    if shape is None:
        assert len(old) == 2 and old[0] != old[1], old
        shape = [old[1], old[0]]
    assert int(np.prod(shape)) == int(np.prod(old)) and list(shape) != list(old), (old, shape)
    header[item]["shape"] = list(shape)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + raw[8 + n:])


def check_malformed_eval(pdc, res, tmp, src, item, shape_text):
    """`pdc eval` of a copy of src whose `item` (a tied use's factor: no program state,
    so only eval reads it) has its dims swapped: refused, naming the item, the folder
    and the shape it found, and no eval.json written"""
    bad = os.path.join(tmp, "bad_shape")
    malformed_dir(src, bad, item)
    p = run_pdc(pdc, ["eval", bad])
    res.check(f"eval refuses a malformed {item}, naming it and the DIR",
              p.returncode not in (0, None) and item in p.stderr and bad in p.stderr
              and shape_text in p.stderr, p.stderr)
    res.check("eval of a malformed DIR writes no eval.json",
              not os.path.exists(os.path.join(bad, "eval.json")), "written")
