// data/tokenizer: text <-> token ids behind one interface. Implementations:
// SentencePiece (tokenizer.model, Llama 1/2 style; the library is loaded as an isolated
// module, see src/data/spm_module/), byte-level BPE (tokenizer.json) joins later.
// Knows nothing of models beyond the files in a model directory.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sq {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Ids of the text alone: no BOS/EOS added.
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::string kind() const = 0;  // "sentencepiece", ...

  // What the model's files say (tokenizer_config.json add_bos_token / add_eos_token,
  // config.json or the tokenizer's own bos/eos ids). -1 when there is none.
  int64_t bos_id = -1;
  int64_t eos_id = -1;
  bool add_bos = true;
  bool add_eos = false;

  // encode() plus BOS/EOS as the model's configuration asks.
  std::vector<int64_t> encode_for_model(const std::string& text) const;
};

// PATH: a model directory, a folder holding tokenizer files, or a tokenizer.model file.
// Chooses the implementation from the files present; throws Error naming PATH otherwise.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// Where the SentencePiece module was found (for --version / diagnostics); "" if not found.
std::string spm_module_path();

}  // namespace sq
