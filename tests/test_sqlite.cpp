// The one SQLite layer (sqlite/): what a statement binds and reads back, transactions that roll
// back on an exception, and errors that name the file and the statement.

#include "sqlite/database.h"
#include "sqlite/statement.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

namespace mixlab::sqlite {
namespace MIXLAB_UNITY_ID {

TEST(Sqlite, NonFiniteRealsAreStoredAsNullAndNullReadsAsNaNOrTheGivenValue) {
  Database db(":memory:", {Access::create, 1000, false});
  db.execute("CREATE TABLE t (x REAL, s TEXT, i INTEGER)");
  Statement insert(db, "INSERT INTO t VALUES (?, ?, ?)");
  insert.bind(1, std::nan("")).bind(2, std::optional<std::string>()).bind(3, int64_t{7}).run();
  insert.reset();
  insert.bind_all({2.5, std::string("a'b"), nullptr}).run();
  Statement nulls(db, "SELECT COUNT(*) FROM t WHERE x IS NULL AND s IS NULL");
  ASSERT_TRUE(nulls.step());
  EXPECT_EQ(nulls.integer(0), 1);
  Statement rows(db, "SELECT x, s, i FROM t ORDER BY rowid");
  ASSERT_TRUE(rows.step());
  EXPECT_TRUE(std::isnan(rows.real(0)));
  EXPECT_EQ(rows.real(0, 0.0), 0.0);
  EXPECT_EQ(rows.text(1), "");
  EXPECT_EQ(rows.integer(2), 7);
  ASSERT_TRUE(rows.step());
  EXPECT_EQ(rows.real(0), 2.5);
  EXPECT_EQ(rows.text(1), "a'b");
  EXPECT_TRUE(rows.is_null(2));
  EXPECT_FALSE(rows.step());
}

TEST(Sqlite, TransactionRollsBackWhenItsBodyThrows) {
  Database db(":memory:", {Access::create, 1000, false});
  db.execute("CREATE TABLE t (x INTEGER)");
  EXPECT_THROW(db.transaction([&] {
    Statement(db, "INSERT INTO t VALUES (1)").run();
    throw std::runtime_error("stop");
  }),
               std::runtime_error);
  db.transaction([&] { Statement(db, "INSERT INTO t VALUES (2)").run(); });
  Statement count(db, "SELECT group_concat(x) FROM t");
  ASSERT_TRUE(count.step());
  EXPECT_EQ(count.text(0), "2");
  EXPECT_TRUE(db.has_table("t"));
  EXPECT_FALSE(db.has_table("u"));
  EXPECT_EQ(db.table_columns("t"), std::vector<std::string>{"x"});
}

TEST(Sqlite, ErrorsNameTheFileAndTheStatement) {
  Database db(":memory:", {Access::create, 1000, false});
  try {
    Statement(db, "SELECT nosuch FROM nowhere");
    FAIL() << "no error";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(":memory:"), std::string::npos) << message;
    EXPECT_NE(message.find("no such table: nowhere"), std::string::npos) << message;
    EXPECT_NE(message.find("in: SELECT nosuch FROM nowhere"), std::string::npos) << message;
  }
  EXPECT_THROW(Database("/nonexistent-folder/x.db", {Access::read_only, 1000, false}), Error);
}

}  // namespace mixlab::sqlite

}  // namespace
