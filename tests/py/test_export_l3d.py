"""test_export_l3d.py — `pdc export DIR -o OUT.onnx --intervene K:D[,K:D..]` on an L3D
decomposition (method l3d: low-rank subnetworks v_k per parameter tensor, no per-site
masks), checked in onnxruntime on a short L3D run of `pdc toy l3d-tms`:

  intervene   --intervene 2:0.5 matches `pdc intervene DIR --subnet 2 --delta 0.5` and
              the source with W + 0.5·v_2 computed in numpy from the stored factors
  two terms   --intervene 1:0.3,3:-0.2 against W + 0.3·v_1 − 0.2·v_3 in numpy
  zero        --intervene 2:0 reproduces the source exactly
  checker     onnx.checker passes; the source's nodes, names and opset are kept
  refused     --form ci, --ablate, --keep, --bake, --edit and no --intervene on an L3D
              folder, --intervene on an APD folder, and `pdc run DIR` of an L3D folder
              (pointing to pdc intervene): non-zero exit naming the option, nothing written

Max relative errors (max |a − b| / max |b|) are printed per check.

Run by CTest as: .venv/bin/python tests/py/test_export_l3d.py --pdc PATH
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Results, TempDir, np, parse_args, run_pdc  # noqa: E402

common.need_onnx()
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from test_apd_cli import CONFIG as APD_CONFIG  # noqa: E402
from test_decompose_cli import read_safetensors  # noqa: E402
from test_l3d_cli import NV, ort_run, subnet, write_cfg  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TOL = 1e-5


def rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(b).max(), 1e-30))


def moved(model, t, terms):
    """the source with every decomposed tensor moved to W + Σ D·v_K in numpy"""
    m = onnx.load(model)
    for init in m.graph.initializer:
        w = numpy_helper.to_array(init).astype(np.float64)
        for k, dl in terms:
            w = w + dl * subnet(t, init.name, k).reshape(w.shape)
        init.CopyFrom(numpy_helper.from_array(w.astype(np.float32), init.name))
    return m.SerializeToString()


def export(args, d, out, *extra):
    return run_pdc(args.pdc, ["export", d, "-o", out] + list(extra))


def main():
    args = parse_args(__doc__)
    res = Results(args.only)
    with TempDir(args.keep, "pdc_export_l3d_") as tmp:
        model = os.path.join(tmp, "tms.onnx")
        p = run_pdc(args.pdc, ["toy", "l3d-tms", "-o", model, "--steps", "300"])
        if not res.check("toy l3d-tms exits 0", p.returncode == 0, p.stderr):
            return res.finish()
        d = os.path.join(tmp, "dir")
        p = run_pdc(args.pdc, [model, "-o", d, "--method", "l3d", "--config",
                               write_cfg(tmp, "ok"), "--steps", "24"])
        if not res.check("l3d run exits 0", p.returncode == 0, p.stderr):
            return res.finish()
        t = read_safetensors(os.path.join(d, "components.safetensors"))
        rng = np.random.default_rng(11)
        x = (rng.random((16, 5)) * (rng.random((16, 5)) < 0.3)).astype(np.float32)
        xp, yp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npz")
        np.save(xp, x)
        src = onnx.load(model)
        base = ort_run(src.SerializeToString(), x)

        # one term: pdc intervene and numpy
        out = os.path.join(tmp, "x.onnx")
        p = export(args, d, out, "--intervene", "2:0.5")
        if res.check("export --intervene 2:0.5 exits 0", p.returncode == 0, p.stderr):
            m = onnx.load(out)
            try:
                onnx.checker.check_model(m, full_check=True)
                ok, why = True, ""
            except Exception as e:  # noqa: BLE001
                ok, why = False, str(e)
            res.check("onnx.checker passes", ok, why)
            res.check("nodes, names and opset kept",
                      [(n.name, n.op_type, list(n.input), list(n.output)) for n in m.graph.node]
                      == [(n.name, n.op_type, list(n.input), list(n.output)) for n in src.graph.node]
                      and [o.version for o in m.opset_import] == [o.version for o in src.opset_import]
                      and sorted(i.name for i in m.graph.initializer)
                      == sorted(i.name for i in src.graph.initializer), "graph changed")
            y = ort_run(m.SerializeToString(), x)
            p = run_pdc(args.pdc, ["intervene", d, "--subnet", "2", "--delta", "0.5",
                                   "--data", xp, "-o", yp])
            if res.check("intervene exits 0", p.returncode == 0, p.stderr):
                yi = list(np.load(yp).values())[0]
                e = rel(y, yi)
                print(f"  2:0.5 vs pdc intervene: max rel {e:.3g}")
                res.check("--intervene 2:0.5 = pdc intervene --subnet 2 --delta 0.5", e <= TOL,
                          f"max rel {e}")
            want = ort_run(moved(model, t, [(2, 0.5)]), x)
            e = rel(y, want)
            print(f"  2:0.5 vs numpy W + 0.5·v_2: max rel {e:.3g}")
            res.check("--intervene 2:0.5 = W + 0.5·v_2 (numpy)", e <= TOL, f"max rel {e}")
            res.check("the intervention moves the output", rel(want, base) > 1e-4,
                      f"{rel(want, base)}")

        # two terms
        out2 = os.path.join(tmp, "x2.onnx")
        p = export(args, d, out2, "--intervene", "1:0.3,3:-0.2")
        if res.check("export --intervene 1:0.3,3:-0.2 exits 0", p.returncode == 0, p.stderr):
            onnx.checker.check_model(onnx.load(out2))
            y = ort_run(onnx.load(out2).SerializeToString(), x)
            want = ort_run(moved(model, t, [(1, 0.3), (3, -0.2)]), x)
            e = rel(y, want)
            print(f"  1:0.3,3:-0.2 vs numpy: max rel {e:.3g}")
            res.check("--intervene 1:0.3,3:-0.2 = W + 0.3·v_1 − 0.2·v_3 (numpy)", e <= TOL,
                      f"max rel {e}")

        # zero delta: the source exactly
        out0 = os.path.join(tmp, "x0.onnx")
        p = export(args, d, out0, "--intervene", "2:0")
        if res.check("export --intervene 2:0 exits 0", p.returncode == 0, p.stderr):
            m0 = onnx.load(out0)
            w0 = {i.name: numpy_helper.to_array(i) for i in m0.graph.initializer}
            ws = {i.name: numpy_helper.to_array(i) for i in src.graph.initializer}
            res.check("--intervene 2:0: the source's weights bit for bit",
                      w0.keys() == ws.keys() and all(np.array_equal(w0[k], ws[k]) for k in ws),
                      "weights differ")
            y = ort_run(m0.SerializeToString(), x)
            res.check("--intervene 2:0 reproduces the source", np.array_equal(y, base),
                      f"max rel {rel(y, base)}")

        # refusals on the L3D folder: named, nothing written
        no = os.path.join(tmp, "no.onnx")
        for extra, name in ((["--form", "ci"], "--form"), (["--ablate", "W_in:0"], "--ablate"),
                            (["--keep", "W_in:0"], "--keep"), (["--bake"], "--bake"),
                            (["--edit", "W_in:0", "--write-vector", xp], "--edit"),
                            (["--form", "ci", "--intervene", "2:0.5"], "--form"),
                            (["--bake", "--intervene", "2:0.5"], "--bake"),
                            ([], "--intervene"), (["--intervene", "2"], "--intervene"),
                            (["--intervene", f"{NV}:1"], "--intervene")):
            p = export(args, d, no, *extra)
            res.check(f"l3d: export {' '.join(extra) or '(no --intervene)'} refused naming "
                      f"{name}, nothing written",
                      p.returncode not in (0, None) and name in p.stderr
                      and "l3d" in p.stderr.lower() + ("l3d" if "--intervene" in extra else "")
                      and not os.path.exists(no), p.stderr)
        p = run_pdc(args.pdc, ["run", d, "--input", f"x={xp}", "-o", yp + ".run.npz"])
        res.check("pdc run DIR (l3d) refused, pointing to pdc intervene",
                  p.returncode not in (0, None) and "pdc intervene" in p.stderr
                  and not os.path.exists(yp + ".run.npz"), p.stderr)

        # --intervene on a non-L3D folder
        a = os.path.join(tmp, "apd")
        cfg = os.path.join(tmp, "apd.yaml")
        open(cfg, "w").write(APD_CONFIG.replace("steps: 60", "steps: 2").replace(
            'module_pattern: "W"', 'module_pattern: "linear1"'))
        p = run_pdc(args.pdc, [os.path.join(ROOT, "models", "tms-5-2.onnx"), "-o", a,
                               "--config", cfg])
        if res.check("apd run exits 0", p.returncode == 0, p.stderr):
            p = export(args, a, no, "--intervene", "0:1")
            res.check("apd: export --intervene refused by name, nothing written",
                      p.returncode not in (0, None) and "--intervene" in p.stderr
                      and "apd" in p.stderr and not os.path.exists(no), p.stderr)
    res.finish()


if __name__ == "__main__":
    main()
