// `--where` filters: the grammar, the bound values, and injection attempts that must fail or stay
// inert (bound as a value, never pasted into SQL).

#include "reports/filter.h"
#include "reports/queries.h"
#include "report_fixture.h"

#include <gtest/gtest.h>

namespace mixlab::reports {
namespace MIXLAB_UNITY_ID {

std::string error_of(const std::string& text) {
  try {
    parse_filter(text);
  } catch (const ReportError& error) {
    return error.what();
  }
  return "";
}

TEST(ReportFilter, ParsesInListsEqualityAndConjunction) {
  Filter filter = parse_filter("mixer in ('swa','checkpoint_attention') AND seq_len = 1024 and label != \"full attention\"");
  ASSERT_EQ(filter.clauses.size(), 3u);
  EXPECT_EQ(filter.clauses[0].field, "mixer");
  ASSERT_EQ(filter.clauses[0].values.size(), 2u);
  EXPECT_EQ(std::get<std::string>(filter.clauses[0].values[1]), "checkpoint_attention");
  EXPECT_EQ(std::get<int64_t>(filter.clauses[1].values[0]), 1024);
  EXPECT_TRUE(filter.clauses[2].negated);
  std::vector<BoundValue> bound;
  const std::string sql = filter.sql(bound, true);
  EXPECT_EQ(bound.size(), 4u);
  EXPECT_EQ(std::count(sql.begin(), sql.end(), '?'), 4);
  EXPECT_EQ(sql.find("swa"), std::string::npos);  // values are never in the SQL text
  EXPECT_TRUE(parse_filter("   ").empty());
  EXPECT_EQ(std::get<std::string>(parse_filter("label = 'it''s'").clauses[0].values[0]), "it's");
}

TEST(ReportFilter, UnknownFieldsAreListed) {
  const std::string message = error_of("colour = 'red'");
  EXPECT_NE(message.find("unknown field 'colour'"), std::string::npos) << message;
  EXPECT_NE(message.find("label, mixer, mixers, point_id, sweep, status, seq_len"), std::string::npos) << message;
  EXPECT_NE(error_of("seq_len = 'long'").find("takes integers"), std::string::npos);
}

TEST(ReportFilter, RejectsInjectionAttempts) {
  for (const char* attack : {"label = 'x' or 1=1", "label = 'x'; DROP TABLE points", "label = x -- comment",
                             "label in ('a') union select * from points", "label = 'x' /* */", "(label = 'a')",
                             "label = 'unterminated", "label in ('a', )", "seq_len = 1 or 1", "label = 'a' and",
                             "1 = 1", "label == 'a'"}) {
    EXPECT_NE(error_of(attack), "") << attack;
  }
}

TEST(ReportFilter, QuotesInValuesStayInertAgainstARealDatabase) {
  fixture::TempDir dir("filter");
  {
    fixture::Fixture db(dir.path("f.db"));
    fixture::fill_scaling_study(db);
  }
  Database database(dir.path("f.db"), false);
  // A classic injection inside a quoted string is one (odd) label, bound as a value: nothing matches.
  EXPECT_TRUE(load_points(database, parse_filter("label = 'x'' OR ''1''=''1'")).empty());
  EXPECT_TRUE(load_points(database, parse_filter("label = 'a''; DROP TABLE points; --'")).empty());
  EXPECT_EQ(load_points(database, Filter{}).size(), 3u);  // the table is intact
  // mixer matches one registry name inside the comma list, not a substring.
  auto swa = load_points(database, parse_filter("mixer = swa"));
  ASSERT_EQ(swa.size(), 2u);
  EXPECT_EQ(swa[0].label, "scout-swa S=64");
  EXPECT_EQ(swa[1].label, "swa W=128");
  EXPECT_TRUE(load_points(database, parse_filter("mixer = sw")).empty());
  EXPECT_EQ(load_points(database, parse_filter("mixer in ('checkpoint_attention', 'attention')")).size(), 2u);
  // Measurement fields filter measurements, and are refused where there are none.
  auto rows = load_metric(database, metric_by_name("fwd_ms"), parse_filter("seq_len in (256, 512) and label = 'swa W=128'"),
                          load_points(database, Filter{}));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].seq_len, 512);
  std::vector<BoundValue> bound;
  EXPECT_THROW(parse_filter("seq_len = 256").sql(bound, false), ReportError);
}

}  // namespace mixlab::reports

}  // namespace
