#include "data/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <cstdlib>
#include <cstring>

#include <sys/wait.h>
#include <unistd.h>

namespace mixlab::data {
namespace {

class ByteTokenizer : public Tokenizer {
 public:
  std::string name() const override { return "byte"; }
  int64_t vocab_size() const override { return 256; }
  std::vector<int32_t> encode(const std::string& text) const override {
    std::vector<int32_t> ids(text.size());
    for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string text(ids.size(), '\0');
    for (size_t i = 0; i < ids.size(); ++i) text[i] = static_cast<char>(ids[i]);
    return text;
  }
};

// Split a text into lines that keep their '\n'; lines longer than `max_bytes` are further cut
// after sentence ends (". ", "! ", "? ") and, failing that, at `max_bytes`.
std::vector<std::string> lines_for_training(const std::string& text, size_t max_bytes) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    end = end == std::string::npos ? text.size() : end;
    std::string line = text.substr(start, end - start);
    start = end + 1;
    while (line.size() > max_bytes) {
      size_t cut = std::string::npos;
      for (size_t i = max_bytes - 1; i > 0 && cut == std::string::npos; --i)
        if ((line[i - 1] == '.' || line[i - 1] == '!' || line[i - 1] == '?') && line[i] == ' ') cut = i;
      if (cut == std::string::npos) cut = max_bytes;
      lines.push_back(line.substr(0, cut));
      line = line.substr(cut + (line[cut] == ' ' ? 1 : 0));
    }
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

// ---------------------------------------------------------------- SentencePiece through mixlab-spm
namespace {

namespace fs = std::filesystem;

// $MIXLAB_SPM, else the helper built with mixlab; empty when there is none.
std::string sentencepiece_tool() {
  if (const char* env = std::getenv("MIXLAB_SPM")) return env;
#ifdef MIXLAB_SENTENCEPIECE_TOOL
  if (fs::exists(MIXLAB_SENTENCEPIECE_TOOL)) return MIXLAB_SENTENCEPIECE_TOOL;
#endif
  return "";
}

std::string require_tool() {
  const std::string tool = sentencepiece_tool();
  if (tool.empty())
    throw std::runtime_error("BPE needs SentencePiece: install libsentencepiece-dev and rebuild mixlab "
                             "(it builds the helper mixlab-spm), or set MIXLAB_SPM to that helper");
  return tool;
}

// Run the helper with `arguments` (no shell); stdout into `output` when given.
void run_tool(const std::vector<std::string>& arguments, std::string* output = nullptr) {
  const std::string tool = require_tool();
  int pipe_ends[2] = {-1, -1};
  if (output && ::pipe(pipe_ends) != 0) throw std::runtime_error("mixlab-spm: cannot create a pipe");
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(tool.c_str()));
  for (const auto& a : arguments) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t child = ::fork();
  if (child < 0) throw std::runtime_error("mixlab-spm: fork failed");
  if (child == 0) {
    if (output) {
      ::dup2(pipe_ends[1], STDOUT_FILENO);
      ::close(pipe_ends[0]);
      ::close(pipe_ends[1]);
    }
    ::execv(tool.c_str(), argv.data());
    ::_exit(127);
  }
  if (output) {
    ::close(pipe_ends[1]);
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(pipe_ends[0], buffer, sizeof buffer)) > 0) output->append(buffer, static_cast<size_t>(n));
    ::close(pipe_ends[0]);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(tool + " " + (arguments.empty() ? "" : arguments[0]) + " failed (status " +
                             std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
}

// A scratch file pair beside the model, removed on scope exit.
struct ScratchFiles {
  std::string in, out;
  explicit ScratchFiles(const std::string& beside) {
    static int counter = 0;
    const std::string stem = beside + ".io-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    in = stem + ".in";
    out = stem + ".out";
  }
  ~ScratchFiles() {
    std::error_code ignored;
    fs::remove(in, ignored);
    fs::remove(out, ignored);
  }
};

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& model_file) : model_file_(model_file) {
    if (!fs::exists(model_file)) throw std::runtime_error(model_file + ": no such SentencePiece model");
    std::string printed;
    run_tool({"size", model_file_}, &printed);
    vocab_size_ = std::stoll(printed);
  }
  std::string name() const override { return "bpe" + std::to_string(vocab_size_); }
  int64_t vocab_size() const override { return vocab_size_; }

  std::vector<int32_t> encode(const std::string& text) const override { return encode_many({text}).front(); }

  // One helper run for many texts (e.g. all documents of a split).
  std::vector<std::vector<int32_t>> encode_many(const std::vector<std::string>& texts) const override {
    ScratchFiles files(model_file_);
    {
      std::ofstream in(files.in, std::ios::binary);
      for (const auto& text : texts) write_record(in, text.data(), text.size());
    }
    run_tool({"encode", model_file_, files.in, files.out});
    std::ifstream out(files.out, std::ios::binary);
    std::vector<std::vector<int32_t>> ids(texts.size());
    for (auto& one : ids) {
      std::string bytes = read_record(out);
      one.resize(bytes.size() / sizeof(int32_t));
      std::memcpy(one.data(), bytes.data(), bytes.size());
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    ScratchFiles files(model_file_);
    {
      std::ofstream in(files.in, std::ios::binary);
      write_record(in, ids.data(), ids.size() * sizeof(int32_t));
    }
    run_tool({"decode", model_file_, files.in, files.out});
    std::ifstream out(files.out, std::ios::binary);
    return read_record(out);
  }

 private:
  // Records as mixlab-spm reads and writes them: [uint64 bytes][payload].
  static void write_record(std::ostream& out, const void* data, size_t bytes) {
    uint64_t n = bytes;
    out.write(reinterpret_cast<const char*>(&n), sizeof n);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  }
  static std::string read_record(std::istream& in) {
    uint64_t n = 0;
    if (!in.read(reinterpret_cast<char*>(&n), sizeof n)) throw std::runtime_error("mixlab-spm: short output");
    std::string bytes(n, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(n));
    return bytes;
  }

  std::string model_file_;
  int64_t vocab_size_ = 0;
};

}  // namespace

bool sentencepiece_available() { return !sentencepiece_tool().empty(); }

void train_bpe(const std::vector<std::string>& texts, int64_t vocab_size, const std::string& model_file,
               const std::string& work_dir) {
  require_tool();
  fs::create_directories(work_dir);
  const std::string input = work_dir + "/bpe_training_lines.txt";
  {
    std::ofstream out(input, std::ios::binary);
    for (const auto& text : texts)
      for (const auto& line : lines_for_training(text, 4000)) out << line << '\n';
  }
  const bool has_suffix = model_file.size() > 6 && model_file.compare(model_file.size() - 6, 6, ".model") == 0;
  const std::string prefix = has_suffix ? model_file.substr(0, model_file.size() - 6) : model_file;
  run_tool({"train", "--input=" + input, "--model_prefix=" + prefix, "--model_type=bpe",
            "--vocab_size=" + std::to_string(vocab_size), "--normalization_rule_name=identity",
            "--remove_extra_whitespaces=false", "--add_dummy_prefix=false", "--byte_fallback=true",
            "--character_coverage=1.0", "--max_sentence_length=4096", "--num_threads=2", "--minloglevel=2"},
           /*output=*/nullptr);
  fs::remove(input);
}

std::unique_ptr<Tokenizer> load_bpe(const std::string& model_file) {
  return std::make_unique<SentencePieceTokenizer>(model_file);
}

}  // namespace mixlab::data
