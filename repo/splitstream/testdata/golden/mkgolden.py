#!/usr/bin/env python3
"""Build the golden split streams in this directory from cases.json.

This is a second, separate implementation of the composefs-rs split stream
writer, written from the format's description (composefs-rs
crates/composefs/src/splitstream_format.rs, and the SplitStreamWriter in
splitstream.rs for the layout and the zstd calls), sharing no code with the
Go package. It compresses with the system's libzstd through ctypes, called
the way composefs-rs calls it through the zstd crate: a fresh context per
section, compression level 0 (libzstd's default, 3), every write fed with
ZSTD_e_continue, then ZSTD_e_end. Run it from this directory:

    python3 mkgolden.py

It needs only python3 and libzstd.so.1; it prints libzstd's version, which
README.md records for the committed files.
"""

import ctypes
import json
import struct

ZSTD = ctypes.CDLL("libzstd.so.1")


class InBuffer(ctypes.Structure):
    _fields_ = [("src", ctypes.c_void_p), ("size", ctypes.c_size_t), ("pos", ctypes.c_size_t)]


class OutBuffer(ctypes.Structure):
    _fields_ = [("dst", ctypes.c_void_p), ("size", ctypes.c_size_t), ("pos", ctypes.c_size_t)]


ZSTD.ZSTD_createCCtx.restype = ctypes.c_void_p
ZSTD.ZSTD_freeCCtx.argtypes = [ctypes.c_void_p]
ZSTD.ZSTD_CCtx_setParameter.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
ZSTD.ZSTD_CCtx_setParameter.restype = ctypes.c_size_t
ZSTD.ZSTD_compressStream2.argtypes = [ctypes.c_void_p, ctypes.POINTER(OutBuffer), ctypes.POINTER(InBuffer), ctypes.c_int]
ZSTD.ZSTD_compressStream2.restype = ctypes.c_size_t
ZSTD.ZSTD_isError.argtypes = [ctypes.c_size_t]
ZSTD.ZSTD_versionString.restype = ctypes.c_char_p

ZSTD_C_COMPRESSION_LEVEL = 100
ZSTD_E_CONTINUE = 0
ZSTD_E_END = 2


def compress(pieces):
    """One zstd frame of the pieces, written one ZSTD_e_continue call each."""
    cctx = ZSTD.ZSTD_createCCtx()
    assert not ZSTD.ZSTD_isError(ZSTD.ZSTD_CCtx_setParameter(cctx, ZSTD_C_COMPRESSION_LEVEL, 0))
    out = bytearray()
    buf = ctypes.create_string_buffer(1 << 20)

    def run(src, mode):
        data = ctypes.create_string_buffer(bytes(src), len(src))
        inb = InBuffer(ctypes.cast(data, ctypes.c_void_p), len(src), 0)
        while True:
            outb = OutBuffer(ctypes.cast(buf, ctypes.c_void_p), len(buf), 0)
            left = ZSTD.ZSTD_compressStream2(cctx, ctypes.byref(outb), ctypes.byref(inb), mode)
            assert not ZSTD.ZSTD_isError(left)
            out.extend(buf.raw[: outb.pos])
            if mode == ZSTD_E_CONTINUE and inb.pos == inb.size:
                return
            if mode == ZSTD_E_END and left == 0:
                return

    for p in pieces:
        if p:  # Rust's write_all never calls write with nothing
            run(p, ZSTD_E_CONTINUE)
    run(b"", ZSTD_E_END)
    ZSTD.ZSTD_freeCCtx(cctx)
    return bytes(out)


def content_type(v):
    if isinstance(v, str):
        return struct.unpack("<Q", v.encode())[0]  # 8 ASCII bytes, little-endian
    return v


def build(case):
    chunks = []  # each write the chunk encoder gets
    inline = bytearray()
    objects, object_index = [], {}
    streams, stream_index = [], {}
    named = {}
    size = 0

    def object_ref(h):
        if h not in object_index:
            object_index[h] = len(objects)
            objects.append(bytes.fromhex(h))
        return object_index[h]

    def flush():
        if inline:
            chunks.append(struct.pack("<q", -len(inline)))
            chunks.append(bytes(inline))
            inline.clear()

    for op in case["ops"]:
        if "inline" in op or "inline_hex" in op:
            data = op["inline"].encode() if "inline" in op else bytes.fromhex(op["inline_hex"])
            data *= op.get("repeat", 1)
            inline.extend(data)
            size += len(data)
        elif "external" in op:
            size += op["size"]
            flush()
            chunks.append(struct.pack("<q", object_ref(op["external"])))
        elif "object_ref" in op:
            object_ref(op["object_ref"])
        elif "named" in op:
            h = op["stream"]
            if h not in stream_index:
                stream_index[h] = len(streams)
                streams.append(bytes.fromhex(h))
            named[op["named"]] = stream_index[h]
        else:
            raise ValueError(op)
    flush()

    pieces = []
    for name in sorted(named, key=lambda n: n.encode()):
        pieces += [str(named[name]).encode(), b":", name.encode(), b"\0"]
    named_z = compress(pieces)
    stream_z = compress(chunks)
    stream_refs = b"".join(streams)
    object_refs = b"".join(objects)

    # header (32) | info (80) | stream refs | object refs | named refs | stream
    pos = 32 + 80
    ranges = {}
    for key, blob in [("stream_refs", stream_refs), ("object_refs", object_refs),
                      ("named_refs", named_z), ("stream", stream_z)]:
        ranges[key] = (pos, pos + len(blob))
        pos += len(blob)
    info = struct.pack("<10Q", *ranges["stream_refs"], *ranges["object_refs"], *ranges["stream"],
                       *ranges["named_refs"], content_type(case["content_type"]), size)
    alg = {"sha256": 1, "sha512": 2}[case["algorithm"]]
    if case.get("old_layout"):
        header = struct.pack("<QQH11sBBB", 32, 112, 0, b"SplitStream", 0, alg, 12)
    else:
        header = struct.pack("<11sBHBBQQ", b"SplitStream", 0, 0, alg, 12, 32, 112)
    assert len(header) == 32 and len(info) == 80
    return header + info + stream_refs + object_refs + named_z + stream_z


def main():
    print("libzstd", ZSTD.ZSTD_versionString().decode())
    with open("cases.json") as f:
        cases = json.load(f)
    for case in cases:
        data = build(case)
        with open(case["name"] + ".splitstream", "wb") as f:
            f.write(data)
        print(case["name"], len(data))


if __name__ == "__main__":
    main()
