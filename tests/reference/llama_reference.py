#!/usr/bin/python3
"""An independent LLaMA forward pass in float64, for checking the C++ decoder.

Run with Debian's interpreter (/usr/bin/python3: python3-torch, python3-numpy, python3-sentencepiece).
It shares no code with core/model: it parses safetensors itself (struct + json + numpy), reads the
Hugging Face config.json, and computes RMSNorm, half-split ("rotate_half") RoPE, grouped-query
attention, the SwiGLU MLP and a tied or untied head, all in float64.

  llama_reference.py forward  --model DIR --input IN.json --output OUT.json
      IN:  {"prompts": [[ids...], ...], "max_new_tokens": N}
      OUT: {"results": [{"last_logits": [V floats], "argmax": [T ids], "all_logits": [[V]...],
                         "greedy": [ids], "greedy_margin": min top1-top2 gap}], "config": {...}}
      Greedy decoding recomputes the whole sequence each step and stops at EOS or BOS (the C++
      Generate's convention). With a byte-fallback tokenizer.model in DIR, greedy picks only ids
      that keep the text well-formed UTF-8 (inside a character its continuation bytes only;
      elsewhere no continuation byte or impossible lead byte), as Generate does.
  llama_reference.py tokenize --tokenizer tokenizer.model --input IN.json --output OUT.json
      IN:  {"texts": [str...]}   OUT: {"ids": [[ids]...], "decoded": [str...]}
Exit status 3 means a needed Python package is missing (the caller skips).
"""
import argparse
import json
import os
import struct
import sys

try:
    import numpy as np
    import torch
    _IMPORT_ERROR = None
except ImportError as e:  # the tokenize command needs neither
    _IMPORT_ERROR = e

_DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2), "F64": ("<f8", 8)}


def read_safetensors(path):
    """Returns {name: float64 numpy array} for every tensor of a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    data = memoryview(raw)[8 + hlen:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, size = _DTYPES[info["dtype"]]
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        n = int(np.prod(shape)) if shape else 1
        assert e - b == n * size, f"{path}: {name}: bad byte range"
        arr = np.frombuffer(data[b:e], dtype=dtype).reshape(shape)
        if info["dtype"] == "BF16":  # bf16 is the upper half of an fp32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.astype(np.float64)
    return out


def load_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for name in files:
        weights.update(read_safetensors(os.path.join(model_dir, name)))
    return {k: torch.from_numpy(v) for k, v in weights.items()}


class Llama:
    def __init__(self, model_dir):
        self.model_dir = model_dir
        with open(os.path.join(model_dir, "config.json")) as f:
            c = json.load(f)
        self.d = c["hidden_size"]
        self.n_layers = c["num_hidden_layers"]
        self.n_heads = c["num_attention_heads"]
        self.n_kv = c.get("num_key_value_heads") or self.n_heads
        self.head_dim = c.get("head_dim") or self.d // self.n_heads
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        self.bos = c.get("bos_token_id", 1)
        self.eos = c.get("eos_token_id", 2)
        self.w = load_weights(model_dir)
        self.tied = c.get("tie_word_embeddings", False)
        self.head = self.w["model.embed_tokens.weight"] if self.tied else self.w["lm_head.weight"]
        self.config = c

    def rmsnorm(self, x, weight):
        return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + self.eps) * weight

    def rope(self, x):
        """x: [heads, T, hd]; pairs (i, i + hd/2) rotate by pos * theta^(-2i/hd)."""
        T, hd = x.shape[1], x.shape[2]
        half = hd // 2
        i = torch.arange(half, dtype=torch.float64)
        ang = torch.arange(T, dtype=torch.float64)[:, None] * (self.theta ** (-2.0 * i / hd))[None, :]  # [T, half]
        c, s = torch.cos(ang), torch.sin(ang)
        a, b = x[..., :half], x[..., half:]
        return torch.cat([a * c - b * s, b * c + a * s], dim=-1)

    def forward(self, ids):
        """ids: list of ints -> logits [T, V] float64."""
        w = self.w
        T = len(ids)
        h = w["model.embed_tokens.weight"][torch.tensor(ids, dtype=torch.long)]  # [T, d]
        group = self.n_heads // self.n_kv
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        for l in range(self.n_layers):
            p = f"model.layers.{l}."
            x = self.rmsnorm(h, w[p + "input_layernorm.weight"])
            q = (x @ w[p + "self_attn.q_proj.weight"].T).reshape(T, self.n_heads, self.head_dim).permute(1, 0, 2)
            k = (x @ w[p + "self_attn.k_proj.weight"].T).reshape(T, self.n_kv, self.head_dim).permute(1, 0, 2)
            v = (x @ w[p + "self_attn.v_proj.weight"].T).reshape(T, self.n_kv, self.head_dim).permute(1, 0, 2)
            q, k = self.rope(q), self.rope(k)
            heads = []
            for hh in range(self.n_heads):
                kv = hh // group
                sc = (q[hh] @ k[kv].T) / np.sqrt(self.head_dim)  # [T, T]
                sc = sc.masked_fill(~causal, float("-inf"))
                heads.append(torch.softmax(sc, dim=-1) @ v[kv])  # [T, hd]
            att = torch.cat(heads, dim=-1)  # [T, H*hd]
            h = h + att @ w[p + "self_attn.o_proj.weight"].T
            x = self.rmsnorm(h, w[p + "post_attention_layernorm.weight"])
            g = x @ w[p + "mlp.gate_proj.weight"].T
            u = x @ w[p + "mlp.up_proj.weight"].T
            h = h + (g * torch.sigmoid(g) * u) @ w[p + "mlp.down_proj.weight"].T
        return self.rmsnorm(h, w["model.norm.weight"]) @ self.head.T

    def byte_pieces(self, vocab):
        """{id: byte} for the tokenizer's <0xNN> pieces; empty without a tokenizer.model."""
        path = os.path.join(self.model_dir, "tokenizer.model")
        if not os.path.exists(path):
            return {}
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=path)
        out = {}
        for i in range(min(sp.get_piece_size(), vocab)):
            if sp.is_byte(i):
                out[i] = int(sp.id_to_piece(i)[3:5], 16)
        return out

    def greedy(self, ids, max_new):
        seq, out, margin = list(ids), [], float("inf")
        limit = self.config.get("max_position_embeddings", 1 << 30)
        vocab = self.head.shape[0]
        bytes_of = self.byte_pieces(vocab)
        inside = torch.zeros(vocab, dtype=torch.bool)  # allowed inside a character
        outside = torch.ones(vocab, dtype=torch.bool)  # allowed between characters
        for i, b in bytes_of.items():
            inside[i] = 0x80 <= b <= 0xBF
            outside[i] = not (0x80 <= b <= 0xC1 or b >= 0xF5)
        pending = 0
        for _ in range(min(max_new, max(limit - len(ids), 0))):
            logits = self.forward(seq)[-1]
            if bytes_of:
                logits = logits.masked_fill(~(inside if pending else outside), float("-inf"))
            top2 = torch.topk(logits, 2).values
            margin = min(margin, float(top2[0] - top2[1]))
            nxt = int(torch.argmax(logits))
            b = bytes_of.get(nxt)
            if b is None:
                pending = 0
            elif pending:
                pending -= 1
            else:
                pending = 3 if b >= 0xF0 else 2 if b >= 0xE0 else 1 if b >= 0xC0 else 0
            if nxt in (self.eos, self.bos):
                break
            out.append(nxt)
            seq.append(nxt)
        return out, margin


def cmd_forward(args):
    if _IMPORT_ERROR is not None:
        print(f"missing python package: {_IMPORT_ERROR}", file=sys.stderr)
        sys.exit(3)
    with open(args.input) as f:
        req = json.load(f)
    model = Llama(args.model)
    results = []
    with torch.no_grad():
        for ids in req["prompts"]:
            logits = model.forward(ids)
            greedy, margin = model.greedy(ids, int(req.get("max_new_tokens", 0)))
            results.append({
                "last_logits": logits[-1].tolist(),
                "argmax": torch.argmax(logits, dim=-1).tolist(),
                "all_logits": logits.tolist(),
                "greedy": greedy,
                "greedy_margin": margin if greedy or margin != float("inf") else None,
            })
    with open(args.output, "w") as f:
        json.dump({"results": results, "config": model.config}, f)


def cmd_tokenize(args):
    try:
        import sentencepiece as spm
    except ImportError as e:
        print(f"missing python package: {e}", file=sys.stderr)
        sys.exit(3)
    with open(args.input, encoding="utf-8") as f:
        texts = json.load(f)["texts"]
    sp = spm.SentencePieceProcessor(model_file=args.tokenizer)
    ids = [sp.encode(t) for t in texts]
    decoded = [sp.decode(i) for i in ids]
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump({"ids": ids, "decoded": decoded, "vocab_size": sp.get_piece_size()}, f, ensure_ascii=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    fw = sub.add_parser("forward")
    fw.add_argument("--model", required=True)
    fw.add_argument("--input", required=True)
    fw.add_argument("--output", required=True)
    tk = sub.add_parser("tokenize")
    tk.add_argument("--tokenizer", required=True)
    tk.add_argument("--input", required=True)
    tk.add_argument("--output", required=True)
    args = ap.parse_args()
    if _IMPORT_ERROR is None:
        torch.set_num_threads(1)
    {"forward": cmd_forward, "tokenize": cmd_tokenize}[args.cmd](args)


if __name__ == "__main__":
    main()
