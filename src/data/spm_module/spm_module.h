// data/spm_module C API: the only interface between sqlib and SentencePiece.
// libsq_spm.so links libsentencepiece (which bundles protobuf 3.14) and is loaded by
// src/data/sentencepiece.cpp with dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND), so no
// sentencepiece/protobuf symbol ever meets libtorch's protobuf. Plain C types only.
// Memory returned through out-pointers (ids, text, error strings) is malloc'ed by the
// module and must be released with sq_spm_free_buffer.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define SQ_SPM_ABI_VERSION 2

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_spm_model sq_spm_model;  // opaque

// Must return SQ_SPM_ABI_VERSION; the loader refuses a module with another version.
int sq_spm_abi_version(void);

// Loads a SentencePiece model file. Returns NULL on failure and sets *err (if err is
// non-NULL) to a malloc'ed one-line message.
sq_spm_model* sq_spm_load(const char* path, char** err);
void sq_spm_free(sq_spm_model* m);
void sq_spm_free_buffer(void* p);

int32_t sq_spm_vocab_size(const sq_spm_model* m);
int32_t sq_spm_bos_id(const sq_spm_model* m);  // -1 when the model has none
int32_t sq_spm_eos_id(const sq_spm_model* m);
int32_t sq_spm_unk_id(const sq_spm_model* m);
int32_t sq_spm_pad_id(const sq_spm_model* m);

// UTF-8 text (len bytes, need not be NUL-terminated) -> ids, no BOS/EOS.
// Returns 0 and sets *ids (malloc'ed, NULL when *n == 0) and *n; nonzero on error with *err.
int sq_spm_encode(const sq_spm_model* m, const char* text, size_t len, int32_t** ids,
                  size_t* n, char** err);

// ids -> UTF-8 text. Returns 0 and sets *text (malloc'ed, NUL-terminated) and *len;
// nonzero on error (e.g. an id out of range) with *err.
int sq_spm_decode(const sq_spm_model* m, const int32_t* ids, size_t n, char** text,
                  size_t* len, char** err);

#ifdef __cplusplus
}
#endif
