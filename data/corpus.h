#pragma once
// A text corpus as a folder of documents, split into training and validation by whole documents,
// converted once into token files.
//
// Split rule (fixed, no RNG): a document is held out for validation when
//     fnv1a64("mixlab-split-v1:" + name) mod 100 < 10,
// name = its path relative to the docs folder ("austen/persuasion.txt").  The rule depends
// only on the name, so adding documents never moves an old one to the other side.
//
// Token files (under CORPUS_DIR/tokens-<tokenizer>/, written once, atomically by rename):
//   train.bin, validation.bin      little-endian tokens: uint8 (vocab ≤ 256) or uint16
//   train.starts, validation.starts  uint64 offset of each document's first token
//   info.json                      tokenizer, vocab, documents, bytes and tokens per split,
//                                  and the fingerprint of the documents they were made from
// Documents are joined with the separator byte 0x1E (ASCII record separator), tokenised like
// text, so a window that crosses a boundary sees where one document ends.

#include "data/tokenizer.h"

#include <torch/torch.h>

#include <string>
#include <vector>

namespace mixlab::data {

struct Document {
  std::string name;  // relative path, '/'-separated
  std::string text;
};

constexpr char kDocumentSeparator = '\x1e';

// Every *.txt below `docs_dir`, sorted by name.  Throws std::runtime_error naming the folder
// when it holds none.
std::vector<Document> read_documents(const std::string& docs_dir);

bool is_validation_document(const std::string& name);

struct TokenSplit {
  torch::Tensor tokens;                  // [T] uint8 or int32 (CPU)
  std::vector<int64_t> document_starts;  // token offset of each document
  int64_t bytes = 0;                     // text bytes the tokens encode (separators included)
  int64_t documents() const { return static_cast<int64_t>(document_starts.size()); }
  int64_t size() const { return tokens.defined() ? tokens.size(0) : 0; }
};

struct TokenizedCorpus {
  std::string tokenizer;  // "byte" or "bpeN"
  int64_t vocab_size = 256;
  TokenSplit train, validation;
  // Text bytes per token on the validation split: bits/byte = loss/ln2 / bytes_per_token.
  double validation_bytes_per_token() const {
    return static_cast<double>(validation.bytes) / static_cast<double>(validation.size());
  }
};

// The corpus folder: $MIXLAB_CACHE/corpus, else ./.cache/corpus, else <source>/.cache/corpus.
std::string default_corpus_dir();

// Tokenise CORPUS_DIR/docs once with `tokenizer` ("byte" or "bpe"; bpe_vocab pieces trained on
// the training documents only) and load the token files; later calls only load.  The files are
// rebuilt when the documents change (fingerprint of names and sizes and contents).
TokenizedCorpus prepare_corpus(const std::string& corpus_dir, const std::string& tokenizer,
                               int64_t bpe_vocab = 4096);

// The tokenizer a prepared corpus was made with (for decoding and bits-per-byte).
std::unique_ptr<Tokenizer> corpus_tokenizer(const std::string& corpus_dir, const std::string& tokenizer,
                                            int64_t bpe_vocab = 4096);

}  // namespace mixlab::data
