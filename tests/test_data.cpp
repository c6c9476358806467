// Corpus split, token files and tokenizers (data/corpus.h, data/tokenizer.h).  The tests write
// their own small corpus; the 21 MB download is not needed.

#include "data/corpus.h"
#include "data/rng.h"
#include "data/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <unistd.h>

namespace fs = std::filesystem;
using namespace mixlab::data;

namespace MIXLAB_UNITY_ID {

// A made-up prose document of a few hundred bytes, different for each index.
std::string made_up_text(int index) {
  static const char* words[] = {"the", "whale", "sea", "captain", "ship", "and", "of", "a", "letter", "Emma",
                                "said", "was", "in", "her", "his", "very", "good", "morning", "Mr.", "house"};
  SplitMix64 rng(1000 + index);
  std::string text;
  for (int line = 0; line < 4 + index % 5; ++line) {
    for (int w = 0; w < 12; ++w) text += std::string(w ? " " : "") + words[rng.below(20)];
    text += ".\n";
  }
  return text;
}

struct TemporaryCorpus {
  fs::path root;
  std::vector<Document> written;
  explicit TemporaryCorpus(const std::string& name, int documents = 120) {
    root = fs::temp_directory_path() / ("mixlab_test_corpus_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(root);
    for (int i = 0; i < documents; ++i) {
      const std::string rel = (i % 3 == 0 ? "books/" : "letters/") + ("doc_" + std::to_string(i) + ".txt");
      fs::create_directories((root / "docs" / rel).parent_path());
      std::ofstream(root / "docs" / rel, std::ios::binary) << made_up_text(i);
      written.push_back({rel, made_up_text(i)});
    }
    std::ofstream(root / "docs" / "README") << "not a document";
  }
  ~TemporaryCorpus() { fs::remove_all(root); }
};

std::string split_text(const TokenSplit& split, const Tokenizer& tokenizer, int64_t document) {
  const int64_t begin = split.document_starts[document];
  const int64_t end = document + 1 < split.documents() ? split.document_starts[document + 1] : split.size();
  auto slice = split.tokens.narrow(0, begin, end - begin).to(torch::kInt32).contiguous();
  std::vector<int32_t> ids(slice.data_ptr<int32_t>(), slice.data_ptr<int32_t>() + slice.numel());
  return tokenizer.decode(ids);
}


TEST(DataCorpus, ReadsEveryTextDocumentSortedByName) {
  TemporaryCorpus corpus("read", 12);
  auto documents = read_documents((corpus.root / "docs").string());
  ASSERT_EQ(documents.size(), 12u);
  for (size_t i = 1; i < documents.size(); ++i) EXPECT_LT(documents[i - 1].name, documents[i].name);
  std::set<std::string> names;
  for (const auto& doc : documents) names.insert(doc.name);
  for (const auto& doc : corpus.written) EXPECT_TRUE(names.count(doc.name)) << doc.name;
}

TEST(DataCorpus, SplitIsFixedDisjointAndByWholeDocuments) {
  TemporaryCorpus corpus("split");
  const auto prepared = prepare_corpus(corpus.root.string(), "byte");
  auto bytes = make_byte_tokenizer();

  // Reconstruct each side document by document and compare with the files that were written.
  std::map<std::string, std::string> by_name;
  for (const auto& doc : corpus.written) by_name[doc.name] = doc.text;
  std::vector<std::string> train_names, validation_names;
  for (const auto& [name, text] : by_name) (is_validation_document(name) ? validation_names : train_names).push_back(name);
  ASSERT_EQ(prepared.train.documents(), static_cast<int64_t>(train_names.size()));
  ASSERT_EQ(prepared.validation.documents(), static_cast<int64_t>(validation_names.size()));
  for (size_t i = 0; i < train_names.size(); ++i)
    EXPECT_EQ(split_text(prepared.train, *bytes, i), by_name[train_names[i]] + kDocumentSeparator);
  for (size_t i = 0; i < validation_names.size(); ++i)
    EXPECT_EQ(split_text(prepared.validation, *bytes, i), by_name[validation_names[i]] + kDocumentSeparator);

  // Roughly a tenth held out, neither side empty, every byte accounted for once.
  EXPECT_GT(validation_names.size(), 3u);
  EXPECT_LT(validation_names.size(), 30u);
  int64_t total = 0;
  for (const auto& doc : corpus.written) total += doc.text.size() + 1;
  EXPECT_EQ(prepared.train.bytes + prepared.validation.bytes, total);
  EXPECT_EQ(prepared.train.size() + prepared.validation.size(), total);
  EXPECT_DOUBLE_EQ(prepared.validation_bytes_per_token(), 1.0);

  // The rule depends on the name alone: a renamed sibling or a new document moves nothing else.
  fs::rename(corpus.root / "docs" / corpus.written[1].name, corpus.root / "docs" / "letters/renamed.txt");
  std::ofstream(corpus.root / "docs" / "letters/new.txt") << made_up_text(999);
  const auto again = prepare_corpus(corpus.root.string(), "byte");
  std::set<std::string> before(validation_names.begin(), validation_names.end());
  for (const auto& name : validation_names)
    if (name != corpus.written[1].name) EXPECT_TRUE(is_validation_document(name));
  EXPECT_EQ(again.train.bytes + again.validation.bytes, total + static_cast<int64_t>(made_up_text(999).size()) + 1);
}

TEST(DataCorpus, ConvertsOnceThenLoads) {
  TemporaryCorpus corpus("once", 30);
  const auto first = prepare_corpus(corpus.root.string(), "byte");
  const auto info = corpus.root / "tokens-byte" / "info.json";
  ASSERT_TRUE(fs::exists(info));
  const auto written_at = fs::last_write_time(info);
  const auto second = prepare_corpus(corpus.root.string(), "byte");
  EXPECT_EQ(fs::last_write_time(info), written_at);  // not rebuilt
  EXPECT_TRUE(torch::equal(first.train.tokens, second.train.tokens));
  EXPECT_EQ(first.validation.document_starts, second.validation.document_starts);
  EXPECT_EQ(first.train.tokens.scalar_type(), torch::kUInt8);
}

TEST(DataTokenizer, ByteTokenizerRoundTripsEveryByte) {
  auto tokenizer = make_byte_tokenizer();
  std::string text;
  for (int b = 0; b < 256; ++b) text += static_cast<char>(b);
  const auto ids = tokenizer->encode(text);
  ASSERT_EQ(ids.size(), 256u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(ids[b], b);
  EXPECT_EQ(tokenizer->decode(ids), text);
  EXPECT_EQ(tokenizer->vocab_size(), 256);
}

TEST(DataTokenizer, BpeRoundTripsExactlyAndCompresses) {
  if (!sentencepiece_available()) GTEST_SKIP() << "built without SentencePiece";
  TemporaryCorpus corpus("bpe", 60);
  const auto prepared = prepare_corpus(corpus.root.string(), "bpe", 360);
  auto tokenizer = corpus_tokenizer(corpus.root.string(), "bpe", 360);
  EXPECT_EQ(tokenizer->vocab_size(), 360);
  EXPECT_EQ(prepared.vocab_size, 360);
  EXPECT_EQ(prepared.train.tokens.scalar_type(), torch::kInt32);
  // Text the model never saw: doubled and leading spaces, tabs, CR, UTF-8, control bytes and a
  // long line without a newline at the end.  (The one exception to the exact round trip is
  // SentencePiece's own space marker U+2581, which decodes to a space.)
  const std::string awkward = "  Two  spaces,\ttab\r\n\nCaf\xC3\xA9 na\xC3\xAFve \xF0\x9F\x90\x8B marker\x01\x1e\n" +
                              std::string(5000, 'x') + " the whale said";
  EXPECT_EQ(tokenizer->decode(tokenizer->encode(awkward)), awkward);
  for (int64_t d = 0; d < prepared.validation.documents(); ++d)
    EXPECT_EQ(split_text(prepared.validation, *tokenizer, d).back(), kDocumentSeparator);
  const std::string prose = made_up_text(7);
  EXPECT_EQ(tokenizer->decode(tokenizer->encode(prose)), prose);
  EXPECT_LT(tokenizer->encode(prose).size() * 2, prose.size());  // more than 2 bytes per token
  EXPECT_GT(prepared.validation_bytes_per_token(), 2.0);
}

}  // namespace
