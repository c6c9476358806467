#include "data/corpus.h"

#include "data/rng.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <unistd.h>

namespace mixlab::data {
namespace fs = std::filesystem;

namespace {

std::string read_file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void write_file_bytes(const fs::path& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) throw std::runtime_error(path.string() + ": cannot write");
}

std::string tokens_folder_name(const std::string& tokenizer, int64_t bpe_vocab) {
  return tokenizer == "byte" ? "tokens-byte" : "tokens-bpe" + std::to_string(bpe_vocab);
}

std::string fingerprint(const std::vector<Document>& documents) {
  uint64_t h = 0;
  for (const auto& doc : documents) h = mix_seed({h, fnv1a64(doc.name), fnv1a64(doc.text), doc.text.size()});
  std::ostringstream out;
  out << std::hex << h;
  return out.str();
}

// One split: documents joined by the separator, tokenised document by document.
struct EncodedSplit {
  std::vector<int32_t> tokens;
  std::vector<uint64_t> starts;
  int64_t bytes = 0;
};

EncodedSplit encode_split(const std::vector<const Document*>& documents, const Tokenizer& tokenizer) {
  std::vector<std::string> texts;
  for (const auto* doc : documents) texts.push_back(doc->text + kDocumentSeparator);
  EncodedSplit split;
  const auto encoded = tokenizer.encode_many(texts);
  for (size_t i = 0; i < encoded.size(); ++i) {
    split.starts.push_back(split.tokens.size());
    split.tokens.insert(split.tokens.end(), encoded[i].begin(), encoded[i].end());
    split.bytes += static_cast<int64_t>(texts[i].size());
  }
  return split;
}

void write_split(const fs::path& folder, const std::string& name, const EncodedSplit& split, int64_t vocab) {
  if (vocab <= 256) {
    std::vector<uint8_t> narrow(split.tokens.begin(), split.tokens.end());
    write_file_bytes(folder / (name + ".bin"), narrow.data(), narrow.size());
  } else {
    std::vector<uint16_t> narrow(split.tokens.begin(), split.tokens.end());  // little-endian hosts
    write_file_bytes(folder / (name + ".bin"), narrow.data(), narrow.size() * 2);
  }
  write_file_bytes(folder / (name + ".starts"), split.starts.data(), split.starts.size() * 8);
}

TokenSplit read_split(const fs::path& folder, const std::string& name, int64_t vocab, int64_t bytes) {
  TokenSplit split;
  std::string raw = read_file_bytes(folder / (name + ".bin"));
  if (vocab <= 256) {
    split.tokens = torch::empty({static_cast<int64_t>(raw.size())}, torch::kUInt8);
    std::memcpy(split.tokens.data_ptr(), raw.data(), raw.size());
  } else {
    const int64_t count = static_cast<int64_t>(raw.size() / 2);
    split.tokens = torch::empty({count}, torch::kInt32);
    auto* out = split.tokens.data_ptr<int32_t>();
    const auto* in = reinterpret_cast<const uint16_t*>(raw.data());
    for (int64_t i = 0; i < count; ++i) out[i] = in[i];
  }
  std::string starts = read_file_bytes(folder / (name + ".starts"));
  split.document_starts.resize(starts.size() / 8);
  for (size_t i = 0; i < split.document_starts.size(); ++i) {
    uint64_t value;
    std::memcpy(&value, starts.data() + 8 * i, 8);
    split.document_starts[i] = static_cast<int64_t>(value);
  }
  split.bytes = bytes;
  return split;
}

}  // namespace

std::vector<Document> read_documents(const std::string& docs_dir) {
  std::vector<Document> documents;
  std::error_code error;
  if (!fs::is_directory(docs_dir, error))
    throw std::runtime_error(docs_dir + ": no such folder (build the corpus with data/fetch_corpus.sh)");
  for (const auto& item : fs::recursive_directory_iterator(docs_dir)) {
    if (!item.is_regular_file() || item.path().extension() != ".txt") continue;
    documents.push_back({fs::relative(item.path(), docs_dir).generic_string(), read_file_bytes(item.path())});
  }
  if (documents.empty()) throw std::runtime_error(docs_dir + ": holds no *.txt documents");
  std::sort(documents.begin(), documents.end(),
            [](const Document& a, const Document& b) { return a.name < b.name; });
  return documents;
}

bool is_validation_document(const std::string& name) {
  return fnv1a64("mixlab-split-v1:" + name) % 100 < 10;
}

std::string default_corpus_dir() {
  if (const char* cache = std::getenv("MIXLAB_CACHE")) return std::string(cache) + "/corpus";
  if (fs::is_directory(".cache/corpus")) return ".cache/corpus";
  return std::string(MIXLAB_SOURCE_DIR) + "/.cache/corpus";
}

std::unique_ptr<Tokenizer> corpus_tokenizer(const std::string& corpus_dir, const std::string& tokenizer,
                                            int64_t bpe_vocab) {
  if (tokenizer == "byte") return make_byte_tokenizer();
  if (tokenizer != "bpe") throw std::runtime_error("unknown tokenizer '" + tokenizer + "'; valid: byte, bpe");
  return load_bpe((fs::path(corpus_dir) / tokens_folder_name(tokenizer, bpe_vocab) / "bpe.model").string());
}

TokenizedCorpus prepare_corpus(const std::string& corpus_dir, const std::string& tokenizer, int64_t bpe_vocab) {
  if (tokenizer != "byte" && tokenizer != "bpe")
    throw std::runtime_error("unknown tokenizer '" + tokenizer + "'; valid: byte, bpe");
  const fs::path folder = fs::path(corpus_dir) / tokens_folder_name(tokenizer, bpe_vocab);
  const auto documents = read_documents((fs::path(corpus_dir) / "docs").string());
  const std::string print = fingerprint(documents);

  nlohmann::json info = nlohmann::json::object();
  if (fs::exists(folder / "info.json")) info = nlohmann::json::parse(read_file_bytes(folder / "info.json"));
  if (info.value("fingerprint", "") != print) {
    // Convert into a fresh folder, then move it into place: readers never see half a conversion.
    const fs::path building = folder.string() + ".building-" + std::to_string(::getpid());
    fs::remove_all(building);
    fs::create_directories(building);
    std::vector<const Document*> train_docs, validation_docs;
    for (const auto& doc : documents) (is_validation_document(doc.name) ? validation_docs : train_docs).push_back(&doc);
    if (train_docs.empty() || validation_docs.empty())
      throw std::runtime_error(corpus_dir + ": the split left one side empty (" + std::to_string(train_docs.size()) +
                               " training, " + std::to_string(validation_docs.size()) + " validation documents)");
    std::unique_ptr<Tokenizer> tok;
    if (tokenizer == "byte") {
      tok = make_byte_tokenizer();
    } else {
      std::vector<std::string> texts;
      for (const auto* doc : train_docs) texts.push_back(doc->text);
      train_bpe(texts, bpe_vocab, (building / "bpe.model").string(), building.string());
      tok = load_bpe((building / "bpe.model").string());
    }
    const EncodedSplit train = encode_split(train_docs, *tok), validation = encode_split(validation_docs, *tok);
    nlohmann::json names = nlohmann::json::array();
    for (const auto* doc : validation_docs) names.push_back(doc->name);
    write_split(building, "train", train, tok->vocab_size());
    write_split(building, "validation", validation, tok->vocab_size());
    info = {{"tokenizer", tok->name()}, {"vocab_size", tok->vocab_size()}, {"fingerprint", print},
            {"train", {{"documents", train_docs.size()}, {"bytes", train.bytes}, {"tokens", train.tokens.size()}}},
            {"validation", {{"documents", validation_docs.size()}, {"bytes", validation.bytes},
                            {"tokens", validation.tokens.size()}, {"names", names}}}};
    const std::string text = info.dump(2);
    write_file_bytes(building / "info.json", text.data(), text.size());
    fs::remove_all(folder);
    fs::rename(building, folder);
  }
  TokenizedCorpus corpus;
  corpus.tokenizer = info["tokenizer"].get<std::string>();
  corpus.vocab_size = info["vocab_size"].get<int64_t>();
  corpus.train = read_split(folder, "train", corpus.vocab_size, info["train"]["bytes"].get<int64_t>());
  corpus.validation = read_split(folder, "validation", corpus.vocab_size, info["validation"]["bytes"].get<int64_t>());
  return corpus;
}

}  // namespace mixlab::data
