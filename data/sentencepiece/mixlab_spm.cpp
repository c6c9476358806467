// mixlab-spm: SentencePiece in its own process, for data/tokenizer.cpp.
//
// Why a separate program: Debian's libsentencepiece carries its own copy of protobuf-lite and
// exports its symbols; in one process with LibTorch (which loads libprotobuf) the two copies
// interpose and the program crashes while loading.  This program links SentencePiece only.
//
//   mixlab-spm train FLAG...            SentencePieceTrainer::Train("FLAG ...")
//   mixlab-spm size MODEL               prints the number of pieces
//   mixlab-spm encode MODEL IN OUT      IN:  records [uint64 n][n bytes of text]
//                                       OUT: records [uint64 4m][m int32 ids]; each text is encoded
//                                            line by line, every line with its '\n'
//   mixlab-spm decode MODEL IN OUT      IN:  records of ids, OUT: records of text
// (host byte order: the files never leave the machine)

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

bool read_record(std::istream& in, std::string& bytes) {
  uint64_t n = 0;
  if (!in.read(reinterpret_cast<char*>(&n), sizeof n)) return false;
  bytes.resize(n);
  return static_cast<bool>(in.read(bytes.data(), static_cast<std::streamsize>(n)));
}

void write_record(std::ostream& out, const void* data, uint64_t bytes) {
  out.write(reinterpret_cast<const char*>(&bytes), sizeof bytes);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
}

int fail(const std::string& message) {
  std::cerr << "mixlab-spm: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "train") {
    std::string flags;
    for (int i = 2; i < argc; ++i) flags += (i > 2 ? " " : "") + std::string(argv[i]);
    const auto status = sentencepiece::SentencePieceTrainer::Train(flags);
    return status.ok() ? 0 : fail("training failed: " + status.ToString());
  }
  if (argc < 3) return fail("usage: mixlab-spm train FLAG... | size MODEL | encode|decode MODEL IN OUT");
  sentencepiece::SentencePieceProcessor processor;
  const auto loaded = processor.Load(argv[2]);
  if (!loaded.ok()) return fail(std::string(argv[2]) + ": " + loaded.ToString());
  if (command == "size") {
    std::cout << processor.GetPieceSize() << "\n";
    return 0;
  }
  if ((command != "encode" && command != "decode") || argc != 5) return fail("unknown command '" + command + "'");
  std::ifstream in(argv[3], std::ios::binary);
  std::ofstream out(argv[4], std::ios::binary);
  if (!in || !out) return fail("cannot open the input or output file");
  std::string record;
  while (read_record(in, record)) {
    if (command == "encode") {
      std::vector<int32_t> ids;
      size_t start = 0;
      while (start < record.size()) {
        size_t end = record.find('\n', start);
        end = end == std::string::npos ? record.size() : end + 1;
        std::vector<int> pieces;
        const auto status = processor.Encode(record.substr(start, end - start), &pieces);
        if (!status.ok()) return fail("encode: " + status.ToString());
        ids.insert(ids.end(), pieces.begin(), pieces.end());
        start = end;
      }
      write_record(out, ids.data(), ids.size() * sizeof(int32_t));
    } else {
      std::vector<int> ids(record.size() / sizeof(int32_t));
      std::copy_n(reinterpret_cast<const int32_t*>(record.data()), ids.size(), ids.begin());
      std::string text;
      const auto status = processor.Decode(ids, &text);
      if (!status.ok()) return fail("decode: " + status.ToString());
      write_record(out, text.data(), text.size());
    }
  }
  return out ? 0 : fail("cannot write the output");
}
