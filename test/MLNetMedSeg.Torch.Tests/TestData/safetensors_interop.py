#!/usr/bin/python3
"""Safetensors interop check between PyTorch and MLNetMedSeg.Torch, without the `safetensors` package.

  safetensors_interop.py write PATH   writes the reference tensors (and metadata source=python) to PATH
  safetensors_interop.py check PATH   reads PATH (written by C#), checks the format and every value against
                                      the reference tensors and metadata writer=csharp; exit 0 when all match

The format is handled by hand (struct + json + numpy bytes): 8-byte little-endian header length N, N bytes of
JSON {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the raw little-endian data.
Run with Debian's /usr/bin/python3 (python3-torch, python3-numpy).
"""
import json
import math
import struct
import sys

import numpy as np
import torch

CODES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}
NUMPY = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
         "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
# The reference writer's order: dtype (larger alignment first), then name.
RANK = {"BOOL": 0, "U8": 1, "I8": 2, "I16": 5, "F16": 7, "BF16": 8, "I32": 9, "F32": 11, "F64": 12, "I64": 13}


def reference():
    """The tensors both sides agree on (the C# test builds the same ones)."""
    return {
        "f32": torch.tensor([[1.5, -2.25, 3.0], [0.0, 1e-3, -7.5]], dtype=torch.float32),
        "f64": torch.tensor([math.pi, -1e300, 2.5], dtype=torch.float64),
        "bf16": torch.tensor([1.0, -2.5, 0.15625, 256.0], dtype=torch.bfloat16),
        "i64": torch.tensor([-(2 ** 62), 0, 2 ** 40 + 1], dtype=torch.int64),
        "u8": torch.tensor([0, 7, 255], dtype=torch.uint8),
        "mask": torch.tensor([[True, False], [True, True]]),
        "scalar": torch.tensor(42.5, dtype=torch.float32),
        "empty": torch.zeros((0, 3), dtype=torch.float32),
    }


def to_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def from_bytes(code, shape, data):
    if code == "BF16":
        return torch.from_numpy(np.frombuffer(data, dtype=np.int16).copy()).view(torch.bfloat16).reshape(shape)
    return torch.from_numpy(np.frombuffer(data, dtype=NUMPY[code]).copy()).reshape(shape)


def write(path, tensors, metadata):
    items = sorted(tensors.items(), key=lambda kv: (-RANK[CODES[kv[1].dtype]], kv[0].encode("utf-8")))
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, t in items:
        b = to_bytes(t)
        header[name] = {"dtype": CODES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", raw[:8])
    if n % 8 != 0:
        raise ValueError(f"header length {n} is not a multiple of 8")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", None)
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    expected = 0
    for begin, end, name in spans:
        if begin != expected:
            raise ValueError(f"tensor {name} starts at {begin}, expected {expected}")
        expected = end
    if expected != len(data):
        raise ValueError(f"data section has {len(data)} bytes, tensors cover {expected}")
    order = [k for k in header]
    want_order = sorted(order, key=lambda k: (-RANK[header[k]["dtype"]], k.encode("utf-8")))
    if order != want_order:
        raise ValueError(f"header order {order} differs from the reference writer's {want_order}")
    tensors = {}
    for name, v in header.items():
        begin, end = v["data_offsets"]
        if end - begin != SIZES[v["dtype"]] * math.prod(v["shape"]):
            raise ValueError(f"tensor {name}: {end - begin} bytes do not match shape {v['shape']} {v['dtype']}")
        tensors[name] = from_bytes(v["dtype"], v["shape"], data[begin:end])
    return tensors, metadata


def check(path):
    tensors, metadata = read(path)
    ref = reference()
    problems = []
    if set(tensors) != set(ref):
        problems.append(f"names {sorted(tensors)} != {sorted(ref)}")
    for name, want in ref.items():
        got = tensors.get(name)
        if got is None:
            continue
        if got.dtype != want.dtype:
            problems.append(f"{name}: dtype {got.dtype} != {want.dtype}")
        elif tuple(got.shape) != tuple(want.shape):
            problems.append(f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}")
        elif not torch.equal(got, want):
            problems.append(f"{name}: values {got.tolist()} != {want.tolist()}")
    if metadata != {"writer": "csharp"}:
        problems.append(f"metadata {metadata} != {{'writer': 'csharp'}}")
    if problems:
        print("safetensors interop check FAILED:\n  " + "\n  ".join(problems))
        return 1
    print(f"ok: {len(tensors)} tensors match")
    return 0


def main(argv):
    if len(argv) != 3 or argv[1] not in ("write", "check"):
        print(__doc__)
        return 2
    if argv[1] == "write":
        write(argv[2], reference(), {"source": "python", "format": "pt"})
        print("written")
        return 0
    try:
        return check(argv[2])
    except Exception as e:  # report any parse error as a failed check
        print(f"safetensors interop check FAILED: {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
