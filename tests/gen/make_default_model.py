"""make_default_model.py — writes models/default.onnx and models/default_input.npy,
the embedded default model of the README demo.

It has the shape of Anthropic's "toy model of superposition" (TMS): 5 sparse
features squeezed through a 2-dimensional hidden layer and read back out with
the same (tied) weights,

    h = x . W                 x [batch, 5], W [5, 2]   (initializer "W")
    y = Relu(h . W^T + b)     W^T from a Transpose node of the same W, b [5]

so the one weight W is used twice: directly, and through Transpose. That is the
case parameter decomposition has to handle (one parameter, two use sites).

The weights are not trained; they are made to look like a trained TMS: each
feature's 2-D embedding (a row of this [5, 2] W, i.e. a column of the paper's
W in h = W x) has unit norm, and b = -0.1 for every feature, the small negative
bias trained models learn to filter interference. The input is a batch of 8
sparse feature vectors (1 or 2 active features each, values in [0.25, 1)).
Everything comes from a fixed seed, so rerunning reproduces the files exactly.

Usage: .venv/bin/python tests/gen/make_default_model.py [--out-dir models]
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

N_FEATURES, N_HIDDEN, BATCH = 5, 2, 8
SEED = 0


def make_weights(rng):
    w = rng.standard_normal((N_FEATURES, N_HIDDEN))
    w /= np.linalg.norm(w, axis=1, keepdims=True)  # one unit vector per feature
    b = np.full(N_FEATURES, -0.1)
    return w.astype(np.float32), b.astype(np.float32)


def make_input(rng):
    x = np.zeros((BATCH, N_FEATURES), np.float32)
    for i in range(BATCH):
        k = 1 + (i % 2)  # alternate 1 and 2 active features
        feats = rng.choice(N_FEATURES, size=k, replace=False)
        # values in [0.25, 1): an active feature is clearly visible in the demo
        x[i, feats] = (0.25 + 0.75 * rng.random(k)).astype(np.float32)
    return x


def make_model(w, b):
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"], name="encode"),
        helper.make_node("Transpose", ["W"], ["W_T"], name="W_transpose", perm=[1, 0]),
        helper.make_node("MatMul", ["h", "W_T"], ["hWt"], name="decode"),
        helper.make_node("Add", ["hWt", "b"], ["pre"], name="add_bias"),
        helper.make_node("Relu", ["pre"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "tms",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", N_FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", N_FEATURES])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
        doc_string="toy model of superposition: y = relu(x W W^T + b), W tied")
    ops = [helper.make_opsetid("", 17)]
    model = helper.make_model(graph, opset_imports=ops, producer_name="pdc make_default_model.py")
    model.ir_version = helper.find_min_ir_version_for(ops)
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=os.path.join(root, "models"))
    args = ap.parse_args()

    rng = np.random.default_rng(SEED)
    w, b = make_weights(rng)
    x = make_input(rng)
    model = make_model(w, b)

    os.makedirs(args.out_dir, exist_ok=True)
    mpath = os.path.join(args.out_dir, "default.onnx")
    xpath = os.path.join(args.out_dir, "default_input.npy")
    onnx.save_model(model, mpath)
    np.save(xpath, x)

    y = np.maximum(x @ w @ w.T + b, 0)
    try:  # cross-check with onnxruntime when it is installed
        import onnxruntime as ort
        sess = ort.InferenceSession(mpath, providers=["CPUExecutionProvider"])
        y_ort = sess.run(["y"], {"x": x})[0]
        if not np.allclose(y_ort, y, rtol=1e-5, atol=1e-6):
            sys.exit("make_default_model: onnxruntime disagrees with numpy")
    except ImportError:
        pass
    print(f"wrote {mpath} ({os.path.getsize(mpath)} bytes) and {xpath} "
          f"({os.path.getsize(xpath)} bytes)")
    np.set_printoptions(precision=3, suppress=True)
    print("W =\n", w, "\nx =\n", x, "\ny =\n", y)


if __name__ == "__main__":
    main()
