// The corpus of inputs that crashed mixlab or failed unclearly (tests/cases/cases.json): each must
// now end with exit status 2 and exactly one line on stderr that says what is wrong.

#include "tests/subprocess.h"
#include "tests/temp_dir.h"
#include "harness/config.h"
#include "harness/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

namespace fs = std::filesystem;
using mixlab::testing::TempDir;

#ifdef MIXLAB_BINARY
const std::string kCases = std::string(MIXLAB_SOURCE_DIR) + "/tests/cases";

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

// "caf\u00ff" as the bytes c a f 0xff (each code point below 256 one byte).
std::string latin1_bytes(const std::string& utf8) {
  std::string out;
  for (size_t i = 0; i < utf8.size(); ++i) {
    const unsigned char c = utf8[i];
    if (c < 0x80) out += static_cast<char>(c);
    else out += static_cast<char>(((c & 0x03) << 6) | (utf8[++i] & 0x3f));  // two-byte forms only
  }
  return out;
}

void write_generated_inputs(const TempDir& dir) {
  const int depth = 100000;
  std::ofstream(dir.file("deep_spec.json")) << std::string(depth, '[') << std::string(depth, ']');
  const std::string header = "{\"x\":" + std::string(depth, '[') + std::string(depth, ']') + "}";
  std::string length(8, '\0');
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  std::ofstream(dir.file("deep_header.safetensors"), std::ios::binary) << length << header;
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir.file("foreign.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); "
                             "INSERT INTO notes (text) VALUES ('not mixlab');", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  Store created(dir.file("mixlab.db"));
}

TEST(CaseCorpusTest, EveryCaseExitsWithStatusTwoAndOneLine) {
  TempDir dir("case_corpus");
  write_generated_inputs(dir);
  const std::string foreign_before = mixlab::testing::slurp(dir.file("foreign.db"));
  const json cases = read_json_file(kCases + "/cases.json");
  ASSERT_GE(cases.size(), 16u);
  for (const auto& item : cases) {
    const std::string name = item["name"];
    std::vector<std::string> args;
    for (const auto& arg : item["args"]) {
      std::string text = replace_all(arg.get<std::string>(), "{cases}", kCases);
      text = replace_all(text, "{tmp}", dir.path.string());
      text = replace_all(text, "{deep_value}", std::string(60000, '['));
      args.push_back(item.value("latin1_args", false) ? latin1_bytes(text) : text);
    }
    const auto result = mixlab::testing::run_process(MIXLAB_BINARY, args, dir.file("run"));
    EXPECT_TRUE(result.exited_with(2)) << name << ": status " << result.status << "\n" << result.err;
    ASSERT_FALSE(result.err.empty()) << name;
    EXPECT_EQ(result.err.find('\n'), result.err.size() - 1) << name << ": more than one line:\n" << result.err;
    EXPECT_NE(result.err.find(item["expect"].get<std::string>()), std::string::npos) << name << ":\n" << result.err;
  }
  // The commands that were refused changed nothing.
  EXPECT_EQ(mixlab::testing::slurp(dir.file("foreign.db")), foreign_before);
  EXPECT_FALSE(fs::exists(dir.file("foreign.db-wal")));
  EXPECT_FALSE(fs::exists(dir.file("merged.db")));
}
#endif

}  // namespace
}  // namespace mixlab
