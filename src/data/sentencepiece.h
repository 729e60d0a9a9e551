// data/sentencepiece (internal to src/data): the SentencePiece Tokenizer, backed by the
// isolated module libsq_spm.so (C API in spm_module/spm_module.h). The module is found and
// dlopen'ed once per process; load_tokenizer() (tokenizer_load.cpp) is the public entry.
#pragma once
#include <memory>
#include <string>

#include "sliderquant/data/tokenizer.h"

namespace sq {

// Loads a tokenizer.model file. bos_id/eos_id come from the model itself (-1 when it has
// none); add_bos = true, add_eos = false. Throws Error naming the path or the module paths.
// With SQ_SPM_NATIVE=1 (spm_native_requested) it returns load_sentencepiece_native instead.
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path);

// SQ_SPM_NATIVE=1: tokenizer.model read without the module (spm_native.cpp): BPE models with
// the identity normalizer through the native SentencePiece-style engine (llama_spm.cpp), for
// builds that cannot load the module (ASan refuses its RTLD_DEEPBIND).
bool spm_native_requested();
std::unique_ptr<Tokenizer> load_sentencepiece_native(const std::string& model_path);

}  // namespace sq
