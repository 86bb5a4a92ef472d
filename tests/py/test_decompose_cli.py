"""test_decompose_cli.py — `pdc MODEL -o DIR` and `pdc eval DIR` from the outside:
the files a run writes and what is in them, --resume ending bit-identical to an
uninterrupted run, the config file's reference field names (and an unknown key
rejected by name), and the evaluation report.

Run by CTest as: .venv/bin/python tests/py/test_decompose_cli.py --pdc PATH
"""
import json
import os
import struct

from common import Results, TempDir, check_malformed_eval, np, parse_args, run_pdc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "models", "default.onnx")

CONFIG = """\
seed: 3
steps: 60
batch_size: 128
lr_schedule: {start_val: 1.0e-3, fn_type: cosine, warmup_pct: 0.0, final_val_frac: 0.0}
ci_fn_type: "mlp"
ci_fn_hidden_dims: [8]
sigmoid_type: "leaky_hard"
module_info:
  - module_pattern: "W"
    C: 6
loss_metric_configs:
  - classname: "ImportanceMinimalityLoss"
    coeff: 3e-3
    pnorm: 1.0
  - {classname: "StochasticReconLoss", coeff: 1.0}
  - {classname: "StochasticReconLayerwiseLoss", coeff: 1.0}
faithfulness_warmup_steps: 20
checkpoint_every: 25
log_freq: 10
wandb_project: "ignored-by-pdc"
task_config:
  feature_probability: 0.05
  data_generation_type: "at_least_zero_active"
"""


def read_safetensors(path):
    """Minimal reader (the format is a u64 header length, a JSON header, raw data)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"])
    return out


def decompose(args, res, tmp, name, extra=()):
    out = os.path.join(tmp, name)
    p = run_pdc(args.pdc, [MODEL, "-o", out, "--config", os.path.join(tmp, "cfg.yaml"), *extra])
    return out, p


def check_run(args, res, tmp):
    out, p = decompose(args, res, tmp, "full")
    if not res.check("run exits 0", p.returncode == 0, p.stderr):
        return None
    files = sorted(os.listdir(out))
    for f in ("decomposition.json", "components.safetensors", "metrics.jsonl", "config.yaml"):
        res.check(f"writes {f}", f in files, f"files: {files}")
    dj = json.load(open(os.path.join(out, "decomposition.json")))
    res.check("json: model hash", len(dj["model"]["sha256"]) == 64, str(dj["model"]))
    sites = {s["name"]: s for s in dj["sites"]}
    res.check("json: tied sites", set(sites) == {"W", "W@1"} and sites["W@1"]["tied_to"] == "W",
              str(dj["sites"]))
    res.check("json: shapes [d_in, d_out]",
              sites["W"]["shape"] == [5, 2] and sites["W@1"]["shape"] == [2, 5], str(sites))
    res.check("json: resolved config", dj["config"]["module_info"][0]["C"] == 6
              and dj["config"]["loss_metric_configs"][0]["coeff"] == 3e-3, str(dj["config"]))
    comp = read_safetensors(os.path.join(out, "components.safetensors"))
    res.check("factors: V [d_in,C], U [C,d_out]",
              comp["W.V"].shape == (5, 6) and comp["W.U"].shape == (6, 2), str(
                  {k: v.shape for k, v in comp.items()}))
    # the tied use reads Wᵀ ≈ Uᵀ·Vᵀ: its saved factors are exactly the transposes
    res.check("factors: tied view", np.array_equal(comp["W@1.V"], comp["W.U"].T)
              and np.array_equal(comp["W@1.U"], comp["W.V"].T), "tied factors differ")
    res.check("ci weights saved", any(k.startswith("ci.W.") for k in comp), str(list(comp)))
    lines = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
    phases = {x["phase"] for x in lines}
    res.check("metrics: both phases", phases == {"warmup", "spd"}, str(phases))
    last = [x for x in lines if x["phase"] == "spd"][-1]
    res.check("metrics: last step logged", last["step"] == 59, str(last))
    for k in ("loss/total", "loss/ImportanceMinimalityLoss", "l0/W", "lr", "steps_per_s"):
        res.check(f"metrics: has {k}", k in last, str(sorted(last)))
    return out


def check_resume(args, res, tmp, full):
    out, p = decompose(args, res, tmp, "resumed", ["--run-steps", "47"])
    res.check("--run-steps stops early", p.returncode == 0 and "resume" in p.stdout,
              p.stdout + p.stderr)
    res.check("stopped run wrote no result", not os.path.exists(
        os.path.join(out, "components.safetensors")), "components written early")
    out, p = decompose(args, res, tmp, "resumed", ["--resume"])
    if not res.check("--resume exits 0", p.returncode == 0, p.stderr):
        return
    for f in ("components.safetensors", "decomposition.json"):
        a = open(os.path.join(full, f), "rb").read()
        b = open(os.path.join(out, f), "rb").read()
        res.check(f"resume: {f} bit-identical", a == b, "differs")
    strip = lambda path: [{k: v for k, v in json.loads(x).items() if k != "steps_per_s"}
                          for x in open(path)]
    res.check("resume: metrics log identical", strip(os.path.join(full, "metrics.jsonl"))
              == strip(os.path.join(out, "metrics.jsonl")), "metrics differ")


def check_errors(args, res, tmp):
    bad = os.path.join(tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write(CONFIG + "lerning_rate: 0.1\n")
    p = run_pdc(args.pdc, [MODEL, "-o", os.path.join(tmp, "x"), "--config", bad])
    res.check("unknown config key rejected by name",
              p.returncode != 0 and "lerning_rate" in p.stderr, p.stderr)
    p = run_pdc(args.pdc, [MODEL, "-o", os.path.join(tmp, "y"), "--sites", "nothing*:4"])
    res.check("--sites without a match fails clearly",
              p.returncode != 0 and "no decomposable site" in p.stderr, p.stderr)
    p = run_pdc(args.pdc, [MODEL, "-o", os.path.join(tmp, "z"), "--steps", "zero"])
    res.check("bad --steps rejected", p.returncode != 0 and "--steps" in p.stderr, p.stderr)


def check_no_overwrite(args, res, tmp, full):
    before = {f: open(os.path.join(full, f), "rb").read() for f in os.listdir(full)}
    p = run_pdc(args.pdc, [MODEL, "-o", full, "--config", os.path.join(tmp, "cfg.yaml"),
                           "--steps", "1"])
    res.check("re-run into a finished DIR is refused", p.returncode != 0 and "--resume" in p.stderr
              and "--force" in p.stderr, p.stderr)
    after = {f: open(os.path.join(full, f), "rb").read() for f in os.listdir(full)}
    res.check("refused re-run leaves the DIR untouched", before == after, "files changed")


def check_force(args, res, tmp, full):
    """--force: the earlier result goes first; a re-run stopped early leaves only its own
    partial files, and --resume finishes it into the same result as an uninterrupted run"""
    import shutil  # noqa: E402
    forced = os.path.join(tmp, "forced")
    shutil.copytree(full, forced)
    open(os.path.join(forced, "eval.json"), "w").write("{}")
    p = run_pdc(args.pdc, [MODEL, "-o", forced, "--config", os.path.join(tmp, "cfg.yaml"),
                           "--force", "--run-steps", "5"])
    res.check("--force re-run starts", p.returncode == 0, p.stderr)
    left = sorted(os.listdir(forced))
    res.check("--force: no earlier result beside the stopped re-run",
              not any(f in left for f in ("decomposition.json", "components.safetensors",
                                          "eval.json", "config.yaml")), str(left))
    p = run_pdc(args.pdc, [MODEL, "-o", forced, "--config", os.path.join(tmp, "cfg.yaml"),
                           "--resume"])
    res.check("--force then --resume exits 0", p.returncode == 0, p.stderr)
    a = open(os.path.join(full, "components.safetensors"), "rb").read()
    b = open(os.path.join(forced, "components.safetensors"), "rb").read()
    res.check("--force then --resume: the same components", a == b, "differs")


def check_eval(args, res, full):
    p = run_pdc(args.pdc, ["eval", full])
    if not res.check("eval exits 0", p.returncode == 0, p.stderr):
        return
    ev = json.load(open(os.path.join(full, "eval.json")))
    keys = ["recon/" + k for k in ("unmasked", "stochastic", "ci", "rounded_0", "rounded_0.1",
                                   "rounded_0.5", "zero")]
    res.check("eval.json: every mask kind", all(k in ev["metrics"] for k in keys),
              str(sorted(ev["metrics"])))
    res.check("eval: zero mask is worst", ev["metrics"]["recon/zero"] >= max(
        ev["metrics"][k] for k in keys[:-1]) - 1e-12, str(ev["metrics"]))
    res.check("eval: per-site metrics", set(ev["sites"]) == {"W", "W@1"} and
              "identity_ci_error" in ev["sites"]["W"], str(ev["sites"]))
    res.check("eval: table printed", "MMCS" in p.stdout and "unmasked" in p.stdout, p.stdout)


def main():
    args = parse_args(__doc__)
    res = Results(args.only)
    with TempDir(args.keep) as tmp:
        with open(os.path.join(tmp, "cfg.yaml"), "w") as f:
            f.write(CONFIG)
        full = check_run(args, res, tmp)
        if full:
            check_resume(args, res, tmp, full)
            check_no_overwrite(args, res, tmp, full)
            check_force(args, res, tmp, full)
            check_eval(args, res, full)
            check_malformed_eval(args.pdc, res, tmp, full, "W@1.V", "[2, 6]")
        check_errors(args, res, tmp)
    res.finish()


if __name__ == "__main__":
    main()
