"""test_apd_cli.py — `pdc MODEL -o DIR --method apd`, `pdc eval DIR` and
`pdc inspect DIR` on an APD decomposition from the outside (a few steps on the
tied TMS 5-2 model): the files and their layout (C components of m columns per
site), the resolved APD keys, --resume ending bit-identical, the APD eval report
(reconstruction under all/top-k/no components, MMCS/ML2R next to the paper's),
the flat lr/lr_schedule/lr_warmup_pct spelling, a malformed factor refused by eval,
and bad configs refused with an error naming the key.

Run by CTest as: .venv/bin/python tests/py/test_apd_cli.py --pdc PATH
"""
import json
import os

from common import Results, TempDir, check_malformed_eval, np, parse_args, run_pdc  # noqa: E402
from test_decompose_cli import MODEL, check_resume, decompose, read_safetensors

CONFIG = """\
method: apd
seed: 4
steps: 60
batch_size: 256
lr_schedule: {start_val: 3.0e-2, fn_type: constant, warmup_pct: 0.05, final_val_frac: 1.0}
C: 5
m: 3
topk: 0.211
batch_topk: true
attribution_type: "gradient"
param_match_coeff: 1.0
topk_recon_coeff: 1.0
schatten_coeff: 0.7
schatten_pnorm: 1.0
act_recon_coeff: null
module_info:
  - module_pattern: "W"
checkpoint_every: 25
log_freq: 10
task_config:
  feature_probability: 0.05
  data_generation_type: "at_least_zero_active"
"""


def check_run(args, res, tmp):
    out, p = decompose(args, res, tmp, "full")
    if not res.check("apd run exits 0", p.returncode == 0, p.stderr):
        return None
    files = sorted(os.listdir(out))
    for f in ("decomposition.json", "components.safetensors", "metrics.jsonl", "config.yaml"):
        res.check(f"writes {f}", f in files, f"files: {files}")
    dj = json.load(open(os.path.join(out, "decomposition.json")))
    res.check("json: method apd", dj["method"] == "apd", dj["method"])
    sites = {s["name"]: s for s in dj["sites"]}
    res.check("json: C·m columns per site", sites["W"]["C"] == 15 and sites["W@1"]["C"] == 15,
              str(sites))
    cfg = dj["config"]
    res.check("json: resolved APD keys",
              cfg["m"] == 3 and cfg["topk"] == 0.211 and cfg["schatten_coeff"] == 0.7
              and cfg["batch_topk"] is True and cfg["module_info"][0]["C"] == 5
              and cfg["loss_metric_configs"] == [] and cfg["faithfulness_warmup_steps"] == 0,
              str(cfg))
    t = read_safetensors(os.path.join(out, "components.safetensors"))
    res.check("components: W.V [5, 15], W.U [15, 2]",
              t["W.V"].shape == (5, 15) and t["W.U"].shape == (15, 2), str(
                  {k: v.shape for k, v in t.items()}))
    res.check("components: the tied use stored transposed",
              np.array_equal(t["W@1.V"], t["W.U"].T) and np.array_equal(t["W@1.U"], t["W.V"].T),
              "W@1 is not W transposed")
    res.check("components: no CI weights", not any(k.startswith("ci.") for k in t), str(list(t)))
    last = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))][-1]
    for k in ("loss/param_match", "loss/topk_recon", "loss/schatten", "loss/total"):
        res.check(f"metrics: has {k}", k in last and np.isfinite(last[k]), str(last))
    return out


def check_eval(args, res, out):
    p = run_pdc(args.pdc, ["eval", out])
    if not res.check("eval exits 0", p.returncode == 0, p.stderr):
        return
    ev = json.load(open(os.path.join(out, "eval.json")))
    m = ev["metrics"]
    res.check("eval.json: method and loss definition",
              ev["method"] == "apd" and "apd:spd/run_spd.py" in ev["loss_definition"], str(ev))
    for k in ("recon/all_components", "recon/topk", "recon/zero", "loss/param_match",
              "loss/schatten"):
        res.check(f"eval.json: {k}", k in m and np.isfinite(m[k]), str(m))
    res.check("eval: all components reconstruct better than none",
              m["recon/all_components"] < m["recon/zero"], str(m))
    res.check("eval: top-k keeps topk per sample on average",
              abs(ev["components_per_sample"] - int(0.211 * 256) / 256) < 1e-6,
              str(ev["components_per_sample"]))
    w = ev["sites"]["W"]
    res.check("eval: MMCS/ML2R of W", 0 < w["mmcs"] <= 1 and w["ml2r"] > 0
              and len(w["component_norms"]) == 5, str(w))
    res.check("eval: the paper's TMS 5-2 numbers beside",
              ev["paper"]["mmcs"] == 0.998 and ev["paper"]["ml2r"] == 0.893
              and "APD paper" in p.stdout and "MMCS" in p.stdout, p.stdout)
    p = run_pdc(args.pdc, ["inspect", out])
    res.check("inspect DIR shows the APD components",
              p.returncode == 0 and "method apd" in p.stdout and "APD components (m = 3" in p.stdout,
              p.stdout + p.stderr)
    x = os.path.join(out, "x.onnx")  # export itself: tests/py/test_export_apd.py
    p = run_pdc(args.pdc, ["export", out, "-o", x, "--form", "ci"])
    res.check("export --form ci refuses an APD DIR by name",
              p.returncode != 0 and "APD decomposition" in p.stderr and "--form ci" in p.stderr
              and not os.path.exists(x), p.stderr)


def check_defaults(args, res, tmp):
    out = os.path.join(tmp, "defaults")
    p = run_pdc(args.pdc, [MODEL, "-o", out, "--method", "apd", "--steps", "3", "--batch", "64",
                           "--sites", "W:4"])
    if not res.check("--method apd with defaults runs", p.returncode == 0, p.stderr):
        return
    cfg = json.load(open(os.path.join(out, "decomposition.json")))["config"]
    res.check("--method apd defaults (paper TMS 5-2 run)",
              cfg["topk"] == 0.211 and cfg["schatten_coeff"] == 0.7 and cfg["m"] is None
              and cfg["lr_schedule"]["start_val"] == 0.03, str(cfg))
    t = read_safetensors(os.path.join(out, "components.safetensors"))
    res.check("m defaults to min(d_in, d_out)", t["W.V"].shape == (5, 8), str(t["W.V"].shape))


def check_flat_schedule(args, res, tmp):
    """the APD code's flat lr / lr_schedule / lr_warmup_pct spelling is read"""
    path = os.path.join(tmp, "flat.yaml")
    with open(path, "w") as f:
        f.write(CONFIG.replace("lr_schedule: {start_val: 3.0e-2, fn_type: constant, "
                               "warmup_pct: 0.05, final_val_frac: 1.0}",
                               "lr: 0.01\nlr_schedule: cosine\nlr_warmup_pct: 0.1")
                .replace("steps: 60", "steps: 3"))
    out = os.path.join(tmp, "flat")
    p = run_pdc(args.pdc, [MODEL, "-o", out, "--config", path])
    if not res.check("flat lr_schedule: cosine runs", p.returncode == 0, p.stderr):
        return
    lr = json.load(open(os.path.join(out, "decomposition.json")))["config"]["lr_schedule"]
    res.check("flat keys: lr, cosine, lr_warmup_pct", lr["start_val"] == 0.01
              and lr["fn_type"] == "cosine" and lr["warmup_pct"] == 0.1, str(lr))


def check_errors(args, res, tmp):
    base = CONFIG
    cases = [
        ("topk not > 0", base.replace("topk: 0.211", "topk: 0"), "topk"),
        ("schatten_pnorm negative", base.replace("schatten_pnorm: 1.0", "schatten_pnorm: -1"),
         "schatten_pnorm"),
        ("attribution_type", base.replace('"gradient"', '"ablation"'), "attribution_type"),
        ("per-sample top-k", base.replace("batch_topk: true", "batch_topk: false"), "batch_topk"),
        ("act_recon not implemented", base.replace("act_recon_coeff: null", "act_recon_coeff: 1"),
         "act_recon_coeff"),
        ("m not a rank", base.replace("m: 3", "m: 0"), "m: 0"),
        ("APD key under spd", base.replace("method: apd", "method: spd"), "APD setting"),
        ("SPD losses in an APD config",
         base + "loss_metric_configs:\n  - {classname: \"StochasticReconLoss\", coeff: 1.0}\n",
         "loss_metric_configs"),
        ("unknown key", base + "topk_typo: 3\n", "topk_typo"),
        ("topk huge", base.replace("topk: 0.211", "topk: 1e300"), "topk"),
        ("topk more than C", base.replace("topk: 0.211", "topk: 6"), "more than C = 5"),
        ("lr_warmup_pct out of [0, 1)", base + "lr_warmup_pct: 1.5\n", "lr_warmup_pct"),
        ("an APD schedule pdc lacks", base.replace(
            "lr_schedule: {start_val: 3.0e-2, fn_type: constant, warmup_pct: 0.05, "
            "final_val_frac: 1.0}", "lr: 0.03\nlr_schedule: exponential"),
         "constant, linear, cosine"),
    ]
    for what, text, needle in cases:
        path = os.path.join(tmp, "bad.yaml")
        with open(path, "w") as f:
            f.write(text)
        p = run_pdc(args.pdc, [MODEL, "-o", os.path.join(tmp, "bad"), "--config", path])
        res.check(f"config error named: {what}", p.returncode not in (0, None) and needle in p.stderr,
                  p.stderr)
        res.check(f"config error leaves no DIR: {what}", not os.path.exists(
            os.path.join(tmp, "bad", "decomposition.json")), "written")


def main():
    args = parse_args(__doc__)
    res = Results(args.only)
    with TempDir(args.keep) as tmp:
        with open(os.path.join(tmp, "cfg.yaml"), "w") as f:
            f.write(CONFIG)
        full = check_run(args, res, tmp)
        if full:
            check_resume(args, res, tmp, full)
            check_eval(args, res, full)
            check_malformed_eval(args.pdc, res, tmp, full, "W@1.U", "[15, 5]")
        check_defaults(args, res, tmp)
        check_flat_schedule(args, res, tmp)
        check_errors(args, res, tmp)
    res.finish()


if __name__ == "__main__":
    main()
