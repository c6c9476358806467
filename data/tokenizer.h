#pragma once
// Tokenizers: bytes (vocabulary 256, the default) and a corpus-trained BPE through SentencePiece.
//
// SentencePiece runs in the helper program mixlab-spm (data/sentencepiece/mixlab_spm.cpp): its
// library carries a protobuf that clashes with LibTorch's in one process.
//
// Both round-trip exactly: decode(encode(text)) == text for any byte string (for BPE: any text
// without U+2581 "▁", SentencePiece's own space marker, which decodes to a space).  For SentencePiece
// that needs identity normalisation, no whitespace collapsing, no dummy prefix, byte fallback
// (unknown bytes become <0xNN> pieces) and encoding line by line with each '\n' included
// (docs/training.md, "The corpus").

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mixlab::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string name() const = 0;  // "byte", "bpe4096"
  virtual int64_t vocab_size() const = 0;
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // Many texts at once (BPE runs its helper once for all of them).
  virtual std::vector<std::vector<int32_t>> encode_many(const std::vector<std::string>& texts) const {
    std::vector<std::vector<int32_t>> ids;
    for (const auto& text : texts) ids.push_back(encode(text));
    return ids;
  }
};

// Token id = byte value.
std::unique_ptr<Tokenizer> make_byte_tokenizer();

// True when mixlab was built with SentencePiece (Debian: libsentencepiece-dev).
bool sentencepiece_available();

// Train a BPE model of `vocab_size` pieces on `texts` and write it to `model_file` (a
// SentencePiece .model).  Long lines are cut at sentence ends first (SentencePiece skips lines
// longer than max_sentence_length).  Throws std::runtime_error when SentencePiece is absent.
void train_bpe(const std::vector<std::string>& texts, int64_t vocab_size, const std::string& model_file,
               const std::string& work_dir);
std::unique_ptr<Tokenizer> load_bpe(const std::string& model_file);

}  // namespace mixlab::data
