"""Word-level tokenizer for the testbed models, built with the `tokenizers` library.

One token per word or punctuation mark, so every testbed answer is one token. The
vocabulary covers every word the testbed world can produce, whatever the world's seed, so
all testbed models share it. It is saved with `save_pretrained` and reloaded from disk
(TransformerLens refuses a tokenizer object that was only built in memory).
"""
from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")


def build_tokenizer(words: list[str], out_dir: Path) -> PreTrainedTokenizerFast:
    pre = pre_tokenizers.Whitespace()
    pieces = sorted({p for w in words for p, _ in pre.pre_tokenize_str(w)})
    vocab = {tok: i for i, tok in enumerate([*SPECIALS, *pieces])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        unk_token="<unk>", padding_side="left", model_max_length=128,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return PreTrainedTokenizerFast.from_pretrained(out_dir)
