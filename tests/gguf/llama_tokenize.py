#!/usr/bin/env python3
"""Prints as JSON the token ids llama.cpp gives a text with the tokenizer of a GGUF file.

Usage: llama_tokenize.py MODEL.gguf TEXT_FILE [--add-bos]
Loads the vocabulary only (llama-cpp-python) and tokenizes without parsing special tokens
(llama_tokenize(..., parse_special=false)), as perplexity tools do. Exit status 2 with a
message on stderr when llama_cpp cannot be imported.
"""
import json
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: llama_tokenize.py MODEL.gguf TEXT_FILE [--add-bos]")
    try:
        import llama_cpp
    except ImportError as e:
        sys.stderr.write(f"llama_cpp (llama-cpp-python) is not importable by {sys.executable}: {e}\n")
        sys.exit(2)
    model, text_file = sys.argv[1], sys.argv[2]
    add_bos = "--add-bos" in sys.argv[3:]
    with open(text_file, "rb") as f:
        text = f.read()
    llm = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
    ids = llm.tokenize(text, add_bos=add_bos, special=False)
    json.dump({"ids": ids}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
