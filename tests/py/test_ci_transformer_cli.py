"""test_ci_transformer_cli.py — a decomposition with ci_fn_type
global_shared_transformer from the outside: a short run on models/default.onnx,
the transformer's weights saved under ci.transformer.*, `pdc eval DIR` and
`pdc inspect DIR` on the result (eval rebuilds the CI function from the saved
config and weights), the saved config.yaml run again giving a bit-identical
decomposition (the config round trip), a model with a sequence axis ([B, T, d]
inputs from an .npy, attention over T = 4), and config errors naming the key.

Run by CTest as: .venv/bin/python tests/py/test_ci_transformer_cli.py --pdc PATH
"""
import json
import math
import os

from common import Results, TempDir, init, make_model, np, parse_args, run_pdc
from test_decompose_cli import read_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "models", "default.onnx")

CONFIG = """\
seed: 7
batch_size: 64
ci_fn_type: global_shared_transformer
simple_transformer_ci_cfg:
  d_model: 16
  n_blocks: 2
  mlp_hidden_dim: [32]
  attn_config:
    n_heads: 2
    max_len: 16
    rope_base: 10000.0
module_info:
  - module_pattern: "W"
    C: 6
faithfulness_warmup_steps: 10
checkpoint_every: 0
log_freq: 10
"""

# the same in the ci_config spelling of the reference's later configs
CONFIG_NESTED = CONFIG.replace("""\
ci_fn_type: global_shared_transformer
simple_transformer_ci_cfg:
  d_model: 16
  n_blocks: 2
  mlp_hidden_dim: [32]
  attn_config:
    n_heads: 2
    max_len: 16
    rope_base: 10000.0
""", """\
ci_config:
  mode: global
  fn_type: global_shared_transformer
  hidden_dims: null
  simple_transformer_ci_cfg:
    d_model: 16
    n_blocks: 2
    mlp_hidden_dim:
    - 32
    attn_config: {n_heads: 2, max_len: 16, rope_base: 10000.0}
""")
assert CONFIG_NESTED != CONFIG


def decompose(args, tmp, name, cfg_text=None, cfg_path=None):
    if cfg_text is not None:
        cfg_path = os.path.join(tmp, name + ".yaml")
        with open(cfg_path, "w") as f:
            f.write(cfg_text)
    out = os.path.join(tmp, name)
    return out, run_pdc(args.pdc, [MODEL, "-o", out, "--config", cfg_path, "--steps", "50"])


def check_run(args, res, tmp):
    out, p = decompose(args, tmp, "tf", CONFIG)
    if not res.check("run exits 0", p.returncode == 0, p.stderr):
        return None
    dj = json.load(open(os.path.join(out, "decomposition.json")))
    cfg = dj["config"]
    res.check("json: ci_fn_type", cfg["ci_fn_type"] == "global_shared_transformer", str(cfg))
    res.check("json: transformer settings", cfg.get("simple_transformer_ci_cfg") == {
        "d_model": 16, "n_blocks": 2, "mlp_hidden_dim": [32],
        "attn_config": {"n_heads": 2, "max_len": 16, "rope_base": 10000}}, str(cfg))
    comp = read_safetensors(os.path.join(out, "components.safetensors"))
    ci = {k: v.shape for k, v in comp.items() if k.startswith("ci.")}
    # Σ d_in = 5 + 2 (W and its tied transposed use), Σ C = 6 + 6
    want = {"ci.transformer.proj_in.W": (7, 16), "ci.transformer.proj_in.b": (16,),
            "ci.transformer.proj_out.W": (16, 12), "ci.transformer.proj_out.b": (12,)}
    for blk in range(2):
        for w in "qkvo":
            want[f"ci.transformer.block{blk}.attn.{w}"] = (16, 16)
        want[f"ci.transformer.block{blk}.mlp.0.W"] = (16, 32)
        want[f"ci.transformer.block{blk}.mlp.0.b"] = (32,)
        want[f"ci.transformer.block{blk}.mlp.1.W"] = (32, 16)
        want[f"ci.transformer.block{blk}.mlp.1.b"] = (16,)
    res.check("ci weights saved (and nothing else)", ci == want, str(ci))
    res.check("ci weights trained and finite",
              all(math.isfinite(float(abs(v).sum())) for v in comp.values())
              and float(abs(comp["ci.transformer.proj_out.b"]).sum()) > 0, "zero or non-finite")
    lines = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
    last = [x for x in lines if x["phase"] == "spd"][-1]
    res.check("metrics: finite loss at the last step", last["step"] == 49
              and math.isfinite(last["loss/total"]), str(last))
    return out


def check_eval_inspect(args, res, out):
    p = run_pdc(args.pdc, ["eval", out])
    if res.check("eval exits 0", p.returncode == 0, p.stderr):
        ev = json.load(open(os.path.join(out, "eval.json")))
        res.check("eval: finite metrics", all(math.isfinite(v) for v in ev["metrics"].values()),
                  str(ev["metrics"]))
        res.check("eval: per-site L0", set(ev["sites"]) == {"W", "W@1"}, str(ev["sites"]))
    p = run_pdc(args.pdc, ["inspect", out])
    res.check("inspect exits 0", p.returncode == 0 and "site W:" in p.stdout, p.stdout + p.stderr)


def check_round_trip(args, res, tmp, out):
    """the run's own config.yaml gives the same run: every setting survived"""
    again, p = decompose(args, tmp, "again", cfg_path=os.path.join(out, "config.yaml"))
    if not res.check("run from the saved config.yaml exits 0", p.returncode == 0, p.stderr):
        return
    a = json.load(open(os.path.join(out, "decomposition.json")))["config"]
    b = json.load(open(os.path.join(again, "decomposition.json")))["config"]
    res.check("round trip: same resolved config", a == b, f"{a}\n{b}")
    same = open(os.path.join(out, "components.safetensors"), "rb").read() == open(
        os.path.join(again, "components.safetensors"), "rb").read()
    res.check("round trip: bit-identical components", same, "differ")
    nested, p = decompose(args, tmp, "nested", CONFIG_NESTED)
    if res.check("ci_config spelling runs", p.returncode == 0, p.stderr):
        c = json.load(open(os.path.join(nested, "decomposition.json")))["config"]
        res.check("ci_config spelling: same resolved config", c == a, f"{c}\n{a}")


def check_sequence_model(args, res, tmp):
    """[B, 4, 6] → MatMul [6, 8] → Relu → MatMul [8, 6]: sites with [B, T] positions"""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError as e:
        print(f"skip sequence model: {e}")
        return
    rng = np.random.default_rng(3)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 6])
    nodes = [helper.make_node("MatMul", ["x", "w_in"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w_out"], ["y"])]
    inits = [init("w_in", rng.normal(0, 0.4, (6, 8)).astype(np.float32)),
             init("w_out", rng.normal(0, 0.4, (8, 6)).astype(np.float32))]
    model = os.path.join(tmp, "seq.onnx")
    onnx.save(make_model(helper.make_graph(nodes, "seq", [x], [y], inits)), model)
    data = os.path.join(tmp, "seq.npy")
    np.save(data, rng.normal(0, 1, (96, 4, 6)).astype(np.float32))
    cfg = os.path.join(tmp, "seq.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG.replace('module_pattern: "W"', 'module_pattern: "w_*"')
                .replace("max_len: 16", "max_len: 4"))
    out = os.path.join(tmp, "seq")
    p = run_pdc(args.pdc, [model, "-o", out, "--config", cfg, "--steps", "30", "--batch", "8",
                           "--data", data])
    if not res.check("sequence model: run exits 0", p.returncode == 0, p.stderr):
        return
    comp = read_safetensors(os.path.join(out, "components.safetensors"))
    res.check("sequence model: proj_in reads both sites",
              comp["ci.transformer.proj_in.W"].shape == (6 + 8, 16), str(
                  {k: v.shape for k, v in comp.items()}))
    p = run_pdc(args.pdc, ["eval", out])
    res.check("sequence model: eval exits 0", p.returncode == 0, p.stderr)
    cfg2 = os.path.join(tmp, "seq_short.yaml")
    with open(cfg2, "w") as f:
        f.write(open(cfg).read().replace("max_len: 4", "max_len: 3"))
    p = run_pdc(args.pdc, [model, "-o", out + "_short", "--config", cfg2, "--steps", "3",
                           "--batch", "8", "--data", data])
    res.check("sequence model: T > max_len refused", p.returncode not in (0, None)
              and "exceed simple_transformer_ci_cfg.attn_config.max_len 3" in p.stderr, p.stderr)


def check_errors(args, res, tmp):
    bad = CONFIG.replace("  n_blocks: 2\n", "  n_blocks: 2\n  n_layer: 2\n")
    _, p = decompose(args, tmp, "bad_key", bad)
    res.check("unknown transformer key rejected by name", p.returncode not in (0, None)
              and "simple_transformer_ci_cfg.n_layer" in p.stderr, p.stderr)
    bad = CONFIG.replace("n_heads: 2", "n_heads: 3")
    _, p = decompose(args, tmp, "bad_heads", bad)
    res.check("n_heads not dividing d_model rejected", p.returncode not in (0, None)
              and "n_heads: 3 does not divide d_model 16" in p.stderr, p.stderr)
    bad = CONFIG.replace("max_len: 16", "max_len: 0")
    _, p = decompose(args, tmp, "bad_len", bad)
    res.check("bad max_len rejected by name", p.returncode not in (0, None)
              and "attn_config.max_len" in p.stderr, p.stderr)


def main():
    args = parse_args(__doc__)
    res = Results(args.only)
    with TempDir(args.keep) as tmp:
        out = check_run(args, res, tmp)
        if out:
            check_eval_inspect(args, res, out)
            check_round_trip(args, res, tmp, out)
        check_sequence_model(args, res, tmp)
        check_errors(args, res, tmp)
    res.finish()


if __name__ == "__main__":
    main()
