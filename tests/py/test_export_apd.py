"""test_export_apd.py — `pdc export DIR` and `pdc run DIR` on an APD decomposition
(method apd: per site V [d_in, C·m], U [C·m, d_out], component c owning columns
c·m .. c·m+m−1, no CI function), checked in onnxruntime on the tied TMS 5-2 toy
decomposed here in a few APD steps:

  factorised  masks = 1 reproduces the source (the Δ = W − V·U path is always on);
              masks are inputs "mask.<site>" [rows, C] per component; onnx.checker
  masked      random masks [rows, C] match `pdc run DIR --masks`
  bake        --bake with all masks 1 reproduces the source
  ablation    --ablate SITE:c (factorised and baked) match pdc's ablated forward
              and, independently, the source with W' = W − V[:, cols_c]·U[cols_c, :]
  refused     --form ci and --edit: non-zero exit naming the option, nothing written

Max relative errors (max |a − b| / max |b|) are printed per check.

Run by CTest as: .venv/bin/python tests/py/test_export_apd.py --pdc PATH
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Results, TempDir, np, parse_args, run_pdc  # noqa: E402

common.need_onnx()
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from test_apd_cli import CONFIG  # noqa: E402
from test_decompose_cli import read_safetensors  # noqa: E402
from test_export_decomp import pdc_masked  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SRC = os.path.join(ROOT, "models", "tms-5-2.onnx")
TOL = 1e-5
C, M = 5, 3  # test_apd_cli's CONFIG: C components of m columns


def rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(b).max(), 1e-30))


def maxrel(got, want):
    return max(rel(got[k], want[k]) for k in want)


def export(args, d, out, *extra):
    return run_pdc(args.pdc, ["export", d, "-o", out] + list(extra))


def checked(res, what, out):
    try:
        onnx.checker.check_model(onnx.load(out), full_check=True)
        res.ok(f"{what}: onnx.checker (full)")
    except Exception as e:  # noqa: BLE001
        res.fail(f"{what}: onnx.checker (full)", str(e)[:400])


def err_check(res, name, e, tol=TOL):
    res.check(name, e <= tol, f"max rel err {e:.3g}", f"max rel err {e:.3g}")


def main():
    args = parse_args(__doc__)
    res = Results(args.only)
    with TempDir(keep=args.keep) as tmp:
        cfg, d = os.path.join(tmp, "cfg.yaml"), os.path.join(tmp, "apd")
        open(cfg, "w").write(CONFIG.replace("steps: 60", "steps: 30").replace(
            'module_pattern: "W"', 'module_pattern: "linear1"'))
        p = run_pdc(args.pdc, [SRC, "-o", d, "--config", cfg])
        if not res.check("apd decomposition made", p.returncode == 0, p.stderr[-400:]):
            return res.finish()
        sites = [s["name"] for s in json.load(open(os.path.join(d, "decomposition.json")))["sites"]]
        x = np.random.RandomState(0).rand(7, 5).astype(np.float32)
        feeds = {"x": x}
        want = common.ort_run(SRC, feeds)

        # factorised, masks = 1
        out = os.path.join(tmp, "f.onnx")
        p = export(args, d, out)
        if res.check("export factorised", p.returncode == 0, p.stderr[-400:]):
            checked(res, "factorised", out)
            m = onnx.load(out)
            inits = {i.name: list(i.dims) for i in m.graph.initializer}
            res.check("mask inputs per component [.., C]",
                      [i.name for i in m.graph.input] == ["x"] + ["mask." + n for n in sites]
                      and all(inits.get("mask." + n, [None])[-1] == C for n in sites),
                      f"{[i.name for i in m.graph.input]} {inits}")
            err_check(res, "factorised: masks = 1 reproduces the source",
                      maxrel(common.ort_run(out, feeds), want))
            r = np.random.RandomState(3)
            masks = {"mask." + n: r.rand(7, C).astype(np.float32) for n in sites}
            got = common.ort_run(out, {**feeds, **masks})
            mine = pdc_masked(args, tmp, d, {"x": x}, masks, "rm")
            err_check(res, "random masks [rows, C] match pdc run DIR --masks", maxrel(got, mine))
            res.check("the masks change the output", maxrel(mine, want) > 1e-3,
                      f"only {maxrel(mine, want):.3g}")
            res.check("pdc run DIR: no ci.* outputs", not any(k.startswith("ci.") for k in mine),
                      str(list(mine)))
            ones = pdc_masked(args, tmp, d, {"x": x}, None, "ones")
            err_check(res, "pdc run DIR with masks 1 reproduces the source", maxrel(ones, want))

        # bake, masks = 1
        out = os.path.join(tmp, "b.onnx")
        p = export(args, d, out, "--bake")
        if res.check("export --bake", p.returncode == 0, p.stderr[-400:]):
            checked(res, "bake", out)
            err_check(res, "--bake with masks 1 reproduces the source",
                      maxrel(common.ort_run(out, feeds), want))

        # ablation of component c at both (tied) sites
        t = read_safetensors(os.path.join(d, "components.safetensors"))
        V, U = t[sites[0] + ".V"].astype(np.float64), t[sites[0] + ".U"].astype(np.float64)
        c = int(np.argmax([np.abs(V[:, k * M:k * M + M] @ U[k * M:k * M + M, :]).sum()
                           for k in range(C)]))  # the largest component: its ablation shows
        cols = list(range(c * M, c * M + M))
        src = onnx.load(SRC)
        for i in src.graph.initializer:
            if i.name == "linear1":
                W = numpy_helper.to_array(i).astype(np.float64)
                i.CopyFrom(numpy_helper.from_array(
                    (W - V[:, cols] @ U[cols, :]).astype(np.float32), "linear1"))
        ref_path = os.path.join(tmp, "numpy_ablated.onnx")
        onnx.save(src, ref_path)
        ref = common.ort_run(ref_path, feeds)
        mvec = np.ones(C, np.float32)
        mvec[c] = 0
        mine = pdc_masked(args, tmp, d, {"x": x}, {n: mvec for n in sites}, "abl")
        err_check(res, "pdc's ablated forward matches numpy W' = W − V[:, cols]·U[cols, :]",
                  maxrel(mine, ref))
        res.check("the ablation changes the output", maxrel(mine, want) > 1e-3,
                  f"only {maxrel(mine, want):.3g}")
        abl = sum((["--ablate", f"{n}:{c}"] for n in sites), [])
        for form, extra in (("factorised", []), ("baked", ["--bake"])):
            out = os.path.join(tmp, f"abl_{form}.onnx")
            p = export(args, d, out, *(abl + extra))
            if not res.check(f"export --ablate ({form})", p.returncode == 0, p.stderr[-400:]):
                continue
            checked(res, f"ablation ({form})", out)
            got = common.ort_run(out, feeds)
            err_check(res, f"ablation ({form}) matches pdc's ablated forward", maxrel(got, mine))
            err_check(res, f"ablation ({form}) matches numpy W'", maxrel(got, ref))
        keep = os.path.join(tmp, "keep.onnx")
        p = export(args, d, keep, "--keep", f"{sites[0]}:0,4")
        mk = np.zeros(C, np.float32)
        mk[[0, 4]] = 1
        if res.check("export --keep", p.returncode == 0, p.stderr[-400:]):
            err_check(res, "--keep matches pdc's masked forward",
                      maxrel(common.ort_run(keep, feeds),
                             pdc_masked(args, tmp, d, {"x": x}, {sites[0]: mk}, "keep")))

        # refusals
        for what, extra, words in (
                ("--form ci", ["--form", "ci"], ["--form ci", "APD"]),
                ("--edit", ["--edit", f"{sites[0]}:0", "--write-vector",
                            os.path.join(tmp, "w.npy")], ["--edit", "APD"]),
                ("component out of range", ["--ablate", f"{sites[0]}:{C}"],
                 ["out of range", f"C = {C}"])):
            np.save(os.path.join(tmp, "w.npy"), np.ones(2, np.float32))
            out = os.path.join(tmp, "err.onnx")
            p = export(args, d, out, *extra)
            res.check(f"refused: {what}", p.returncode not in (0, None)
                      and all(w in p.stderr for w in words) and not os.path.exists(out),
                      f"rc {p.returncode}: {p.stderr[-300:]}", p.stderr.strip()[:140])
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
